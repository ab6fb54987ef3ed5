import HerdMath
import Synchronization

/// How a parameter is initialised.
///
/// Herd follows PyTorch's defaults so that a config moved from PyTorch behaves the
/// same at step 0:
/// - `nn.Linear(in, out)`: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming
///   uniform with a = sqrt(5) reduces to this bound for the weight).
/// - `nn.LSTM` / `nn.GRU` with hidden size H: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)).
public enum ParameterInit: Sendable, Equatable, Codable {
  /// Uniform on `[-bound, bound)`.
  case uniform(bound: Float)
  /// Every entry equal to `value`.
  case constant(Float)
  /// `gain` times a random matrix with orthonormal rows or columns (whichever are
  /// fewer), the first dimension against the rest flattened, as PyTorch's
  /// `nn.init.orthogonal_` (Saxe et al. 2014); a vector is the one-row case.
  case orthogonal(gain: Float)
  /// `first` for the whole slot, then its last `count` entries set to `value`:
  /// `first` takes all its random draws, so the entries declared after this one
  /// start as they would under `first` alone (a head whose last outputs are log
  /// standard deviations starting at `log_std_init`).
  indirect case lastEntries(ParameterInit, count: Int, value: Float)
}

/// Where one named parameter sits in a model's contiguous buffer.
public struct ParameterSlot: Sendable, Equatable {
  /// Offset of the first scalar in the buffer.
  public let offset: Int
  /// Number of scalars.
  public let count: Int
  /// Shape, row-major.
  public let shape: [Int]
}

/// The names, shapes and offsets of every parameter of a model, in one buffer.
///
/// Layers declare their parameters into a layout as they are built; the layout then
/// sizes one ``Parameters`` buffer. Names follow PyTorch's `state_dict` keys
/// (`encoder.0.weight`, `lstm.weight_ih`, ...).
public struct ParameterLayout: Sendable, Equatable {
  /// One declared parameter.
  public struct Entry: Sendable, Equatable {
    /// Unique dotted name.
    public let name: String
    /// Position in the buffer.
    public let slot: ParameterSlot
    /// Initialiser.
    public let initializer: ParameterInit
  }

  /// Entries in declaration order (also buffer order).
  public private(set) var entries: [Entry] = []
  /// Total scalars.
  public private(set) var count = 0

  /// An empty layout.
  public init() {}

  /// Declares a parameter and returns its slot; names must be unique.
  public mutating func declare(_ name: String, shape: [Int], initializer: ParameterInit) -> ParameterSlot {
    precondition(!entries.contains { $0.name == name }, "parameter \(name) declared twice")
    precondition(shape.allSatisfy { $0 > 0 }, "parameter \(name) has shape \(shape)")
    let n = shape.reduce(1, *)
    let slot = ParameterSlot(offset: count, count: n, shape: shape)
    entries.append(Entry(name: name, slot: slot, initializer: initializer))
    count += n
    return slot
  }

  /// The entry called `name`, if any.
  public func entry(named name: String) -> Entry? { entries.first { $0.name == name } }

  /// Replaces the initialiser of every entry for which `rule` returns one; shapes,
  /// offsets and order stay as declared.
  public mutating func reinitialize(_ rule: (Entry) -> ParameterInit?) {
    entries = entries.map { e in
      rule(e).map { Entry(name: e.name, slot: e.slot, initializer: $0) } ?? e
    }
  }
}

/// A model's parameters and their gradients, each in one contiguous buffer.
///
/// One blob per model, so weights go over the wire and into checkpoints as a single
/// array, and optimisers and clipping run over flat memory. Owned by one thread.
public final class Parameters {
  /// What is where.
  public let layout: ParameterLayout
  /// All parameter values, `layout.count` scalars.
  public let values: UnsafeMutableBufferPointer<Float>
  /// Gradients, same layout as `values`; layers accumulate into them.
  public let grads: UnsafeMutableBufferPointer<Float>

  /// Whether `values` is this object's own storage (false for a gradient shard).
  private let ownsValues: Bool
  /// Keeps the owner of shared values alive.
  private let valueOwner: Parameters?
  private var ownGeneration: UInt64 = Parameters.nextGeneration()
  private static let generations = Atomic<UInt64>(0)
  private static func nextGeneration() -> UInt64 { generations.add(1, ordering: .relaxed).newValue }

  /// Changes with every change to `values` made through Herd (initialisation,
  /// ``load(flatValues:)``, ``set(_:_:)``, an optimiser step); a shard reports its
  /// owner's. Drawn from one process-wide counter, so no two states of any two
  /// `Parameters` share a value. Layers key what they derive from the weights (the
  /// packed recurrent weights a rollout step reuses) on it. Code that writes
  /// `values` directly calls ``valuesChanged()``.
  public var generation: UInt64 { valueOwner?.generation ?? ownGeneration }

  /// Records a change to `values` made outside Herd's own methods.
  public func valuesChanged() {
    if let valueOwner { valueOwner.valuesChanged() } else { ownGeneration = Self.nextGeneration() }
  }

  /// Zero-filled parameters and gradients for `layout`.
  public init(layout: ParameterLayout) {
    self.layout = layout
    let n = max(layout.count, 1)
    values = .allocate(capacity: n)
    values.initialize(repeating: 0)
    grads = .allocate(capacity: n)
    grads.initialize(repeating: 0)
    ownsValues = true
    valueOwner = nil
  }

  /// A gradient shard: the same values as `owner` (shared, not copied) with
  /// gradients of its own, so threads can backpropagate parts of one batch at once.
  public init(sharingValuesWith owner: Parameters) {
    layout = owner.layout
    values = owner.values
    grads = .allocate(capacity: max(layout.count, 1))
    grads.initialize(repeating: 0)
    ownsValues = false
    valueOwner = owner
  }

  /// Parameters initialised per entry (PyTorch's defaults, see ``ParameterInit``),
  /// in declaration order from `rng`.
  public convenience init<G: RandomNumberGenerator>(layout: ParameterLayout, rng: inout G) {
    self.init(layout: layout)
    for entry in layout.entries {
      Self.fill(values.baseAddress.unsafelyUnwrapped + entry.slot.offset, entry.slot, entry.initializer, rng: &rng)
    }
    valuesChanged()
  }

  /// Writes `slot`'s initial values at `p` by `initializer`, drawing from `rng`.
  static func fill<G: RandomNumberGenerator>(
    _ p: UnsafeMutablePointer<Float>, _ slot: ParameterSlot, _ initializer: ParameterInit, rng: inout G
  ) {
    switch initializer {
    case .uniform(let bound):
      for i in 0..<slot.count { p[i] = bound * (2 * rng.nextUnitFloat() - 1) }
    case .constant(let v):
      p.update(repeating: v, count: slot.count)
    case .orthogonal(let gain):
      let rows = slot.shape.count > 1 ? slot.shape[0] : 1
      fillOrthogonal(p, rows: rows, columns: slot.count / rows, gain: gain, rng: &rng)
    case .lastEntries(let first, let count, let value):
      precondition(count >= 0 && count <= slot.count, "lastEntries: \(count) of a slot of \(slot.count)")
      fill(p, slot, first, rng: &rng)
      (p + slot.count - count).update(repeating: value, count: count)
    }
  }

  /// Writes `gain` times a random `rows x columns` matrix (row-major) whose rows
  /// (if fewer than the columns) or columns are orthonormal: Gaussian vectors made
  /// orthonormal by modified Gram-Schmidt in Double, which is what a QR
  /// decomposition with a positive diagonal of R gives.
  static func fillOrthogonal<G: RandomNumberGenerator>(
    _ out: UnsafeMutablePointer<Float>, rows: Int, columns: Int, gain: Float, rng: inout G
  ) {
    let vectors = min(rows, columns)
    let length = max(rows, columns)
    var q = [Double](repeating: 0, count: vectors * length)
    for i in 0..<q.count { q[i] = Double(rng.nextGaussian()) }
    q.withUnsafeMutableBufferPointer { q in
      for v in 0..<vectors {
        let a = q.baseAddress.unsafelyUnwrapped + v * length
        for u in 0..<v {
          let b = q.baseAddress.unsafelyUnwrapped + u * length
          var dot = 0.0
          for i in 0..<length { dot += a[i] * b[i] }
          for i in 0..<length { a[i] -= dot * b[i] }
        }
        var norm = 0.0
        for i in 0..<length { norm += a[i] * a[i] }
        // A Gaussian vector lies in the span of the others with probability 0.
        let scale = 1 / max(norm.squareRoot(), .leastNormalMagnitude)
        for i in 0..<length { a[i] *= scale }
      }
    }
    let g = Double(gain)
    for r in 0..<rows {
      for c in 0..<columns {
        // Rows are the vectors when they are the fewer; otherwise columns are.
        let x = rows <= columns ? q[r * length + c] : q[c * length + r]
        out[r * columns + c] = Float(g * x)
      }
    }
  }

  deinit {
    if ownsValues { values.deallocate() }
    grads.deallocate()
  }

  /// Total scalars.
  public var count: Int { layout.count }

  /// Pointer to a parameter's values.
  @inlinable public func value(_ slot: ParameterSlot) -> UnsafeMutablePointer<Float> {
    values.baseAddress.unsafelyUnwrapped + slot.offset
  }

  /// Pointer to a parameter's gradient.
  @inlinable public func grad(_ slot: ParameterSlot) -> UnsafeMutablePointer<Float> {
    grads.baseAddress.unsafelyUnwrapped + slot.offset
  }

  /// Sets every gradient to zero.
  public func zeroGrads() { grads.update(repeating: 0) }

  /// All values as one array (the blob that travels and is saved).
  public var flatValues: [Float] { Array(values.prefix(count)) }

  /// All gradients as one array.
  public var flatGrads: [Float] { Array(grads.prefix(count)) }

  /// Replaces all values from a blob of exactly ``count`` scalars.
  public func load(flatValues blob: [Float]) throws {
    guard blob.count == count else {
      throw NNError.shapeMismatch(context: "parameter blob", expected: [count], actual: [blob.count])
    }
    blob.withPointer { src in values.baseAddress.unsafelyUnwrapped.update(from: src, count: count) }
    valuesChanged()
  }

  /// A copy of the parameter called `name` as a tensor.
  public func tensor(named name: String) throws -> Tensor {
    guard let e = layout.entry(named: name) else {
      throw NNError.invalidValue(
        name: "parameter", value: name,
        reason: "no such parameter; known: \(layout.entries.map(\.name).joined(separator: ", "))")
    }
    return try Tensor(
      shape: e.slot.shape, scalars: Array(UnsafeBufferPointer(start: value(e.slot), count: e.slot.count)))
  }

  /// A copy of the gradient of the parameter called `name` as a tensor.
  public func gradTensor(named name: String) throws -> Tensor {
    guard let e = layout.entry(named: name) else {
      throw NNError.invalidValue(name: "parameter", value: name, reason: "no such parameter")
    }
    return try Tensor(
      shape: e.slot.shape, scalars: Array(UnsafeBufferPointer(start: grad(e.slot), count: e.slot.count)))
  }

  /// Overwrites the parameter called `name`; the tensor's shape must match.
  public func set(_ name: String, _ tensor: Tensor) throws {
    guard let e = layout.entry(named: name) else {
      throw NNError.invalidValue(name: "parameter", value: name, reason: "no such parameter")
    }
    guard tensor.shape == e.slot.shape else {
      throw NNError.shapeMismatch(context: "parameter \(name)", expected: e.slot.shape, actual: tensor.shape)
    }
    tensor.scalars.withPointer { value(e.slot).update(from: $0, count: e.slot.count) }
    valuesChanged()
  }
}
