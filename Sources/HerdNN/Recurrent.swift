import HerdMath

/// A recurrent layer over packed sequences (``LSTM`` or ``GRU``).
///
/// The core works on the packed layout of ``PackedSequences``: x `[P, I]` ->
/// h `[P, H]`. Initial states are per sequence, in the caller's order, `[N, H]`
/// each (h, and c for the LSTM). They are constants: backward can report their
/// gradient but nothing flows further (BPTT is truncated at the sequence).
/// The Tensor API in the extension adds padding, unpacking and final states.
public protocol RecurrentLayer: Sendable {
  /// Input features I.
  var inputSize: Int { get }
  /// Cell size H.
  var hiddenSize: Int { get }
  /// State vectors per sequence: 2 for the LSTM (h, c), 1 for the GRU (h).
  var stateCount: Int { get }

  /// Runs over all packed rows and returns packed outputs `[P, H]` (in `cache`).
  ///
  /// - Parameters:
  ///   - x: packed inputs `[P, I]`; must stay valid until ``backward`` is done.
  ///   - h0, c0: initial states `[N, H]` in the caller's order, nil for zeros
  ///     (c0 is ignored by the GRU).
  @discardableResult
  func forward(
    _ p: Parameters, x: UnsafePointer<Float>, packing: PackedSequences,
    h0: UnsafePointer<Float>?, c0: UnsafePointer<Float>?, cache: RecurrentCache
  ) -> UnsafePointer<Float>

  /// Backpropagation through time after ``forward``: accumulates every parameter
  /// gradient and writes the gradients w.r.t. inputs and initial states when asked.
  ///
  /// - Parameters:
  ///   - dH: gradient of the loss w.r.t. each packed output, `[P, H]`.
  ///   - dx: where to write `[P, I]`, or nil.
  ///   - dh0, dc0: where to write `[N, H]` in the caller's order, or nil.
  func backward(
    _ p: Parameters, x: UnsafePointer<Float>, dH: UnsafePointer<Float>, cache: RecurrentCache,
    dx: UnsafeMutablePointer<Float>?, dh0: UnsafeMutablePointer<Float>?,
    dc0: UnsafeMutablePointer<Float>?
  )

  /// One rollout step for K rows: updates `h` (and `c` for the LSTM) in place.
  ///
  /// Gives bit for bit the numbers ``forward`` gives for the same inputs and states.
  /// - Parameters: x `[K, I]`; h, c `[K, H]`.
  func step(
    _ p: Parameters, x: UnsafePointer<Float>, rows: Int, h: UnsafeMutablePointer<Float>,
    c: UnsafeMutablePointer<Float>?, cache: RecurrentCache
  )
}

/// Workspaces of a recurrent layer: forward activations kept for backward and
/// backward scratch, grown on first use and reused (no allocation per step).
public final class RecurrentCache {
  /// The packing of the last forward.
  public internal(set) var packing: PackedSequences?
  let gates = FloatBuffer()  // LSTM: i,f,g,o [P,4H]; GRU: r,z,n [P,3H] (post-activation)
  let hidden = FloatBuffer()  // GRU: hidden projections W_hh h + b_hh [P,3H]
  let cell = FloatBuffer()  // LSTM: c_t [P,H]
  let tanhCell = FloatBuffer()  // LSTM: tanh(c_t) [P,H]
  let hPrev = FloatBuffer()  // h_{t-1} per packed row [P,H]
  let h = FloatBuffer()  // outputs h_t [P,H]
  let h0 = FloatBuffer()  // initial h in rank order [N,H]
  let c0 = FloatBuffer()  // initial c in rank order [N,H]
  let bias = FloatBuffer()  // LSTM: b_ih + b_hh [4H]
  let gradGates = FloatBuffer()  // dL/d(pre-activation x-side) [P,G]
  let gradHidden = FloatBuffer()  // GRU: dL/d(hidden projection) [P,3H]
  let dhCarry = FloatBuffer()  // [N,H]
  let dcCarry = FloatBuffer()  // [N,H]
  let biasGrad = FloatBuffer()  // [G]
  // Weights packed for the kernels: W_ih^T and W_hh^T for the forward products,
  // W_hh for the backward carry. Forward packs afresh; a rollout step repacks only
  // when the parameters' generation moved (process-wide unique, so it alone
  // identifies the weights).
  let packedIH: PackedMatrix
  let packedHH: PackedMatrix
  let packedHHBackward: PackedMatrix
  var packedFor: UInt64?
  // Tensor API staging.
  let xPacked = FloatBuffer()
  let dHPacked = FloatBuffer()
  let dxPacked = FloatBuffer()

  /// An empty cache whose products run on `isa` (default: the widest this build and
  /// CPU have; tests pass `.avx2` to check the 8-wide kernels on an AVX-512 machine).
  public init(isa: KernelISA = .preferred) {
    packedIH = PackedMatrix(isa: isa)
    packedHH = PackedMatrix(isa: isa)
    packedHHBackward = PackedMatrix(isa: isa)
  }

  /// Packs `W_ih^T` and `W_hh^T` (`[G, I]` and `[G, H]` as stored) for the forward
  /// products, unless they are already packed from this generation of `p` and
  /// `always` is false.
  func packForward(
    _ p: Parameters, weightIH: ParameterSlot, weightHH: ParameterSlot, gates: Int, inputSize: Int,
    hiddenSize: Int, always: Bool
  ) {
    let key = p.generation
    if !always, packedFor == key { return }
    packedIH.pack(p.value(weightIH), ld: inputSize, transposed: true, k: inputSize, n: gates)
    packedHH.pack(p.value(weightHH), ld: hiddenSize, transposed: true, k: hiddenSize, n: gates)
    packedFor = key
  }

  /// Packed outputs `[P, H]` of the last forward.
  public var outputs: UnsafePointer<Float> { UnsafePointer(h.pointer) }

  /// Puts initial states into rank order (zeros when nil).
  func rankStates(
    _ packing: PackedSequences, hiddenSize: Int,
    h0 src: UnsafePointer<Float>?, c0 csrc: UnsafePointer<Float>?, needsCell: Bool
  ) {
    let n = packing.sequenceCount &* hiddenSize
    let hr = h0.reserve(n)
    if let src { packing.gatherRows(src, features: hiddenSize, into: hr) } else { hr.update(repeating: 0, count: n) }
    if needsCell {
      let cr = c0.reserve(n)
      if let csrc {
        packing.gatherRows(csrc, features: hiddenSize, into: cr)
      } else {
        cr.update(repeating: 0, count: n)
      }
    }
  }
}

/// Initial or final states of a batch of sequences.
public struct RecurrentState: Sendable, Equatable {
  /// Hidden state `[N, H]`.
  public var h: Tensor
  /// Cell state `[N, H]` (LSTM only).
  public var c: Tensor?

  /// A state from tensors.
  public init(h: Tensor, c: Tensor? = nil) {
    self.h = h
    self.c = c
  }
}

/// Outputs of a recurrent layer over a padded batch.
public struct RecurrentOutput: Sendable {
  /// `[N, T, H]`, zero past each sequence's length.
  public var output: Tensor
  /// State after each sequence's last step (the initial state for length 0).
  public var final: RecurrentState
}

/// PyTorch's four parameters of a one-layer recurrent cell with `gates` gate blocks
/// (4 for the LSTM, 3 for the GRU): `weight_ih [G*H, I]`, `weight_hh [G*H, H]`,
/// `bias_ih [G*H]`, `bias_hh [G*H]`, all ~ U(-1/sqrt(H), 1/sqrt(H)).
struct RecurrentWeights {
  let weightIH: ParameterSlot
  let weightHH: ParameterSlot
  let biasIH: ParameterSlot
  let biasHH: ParameterSlot

  init(_ name: String, gates: Int, inputSize: Int, hiddenSize: Int, layout: inout ParameterLayout) {
    precondition(inputSize > 0 && hiddenSize > 0, "\(name): \(inputSize) -> \(hiddenSize)")
    let k = ParameterInit.uniform(bound: 1 / Float(hiddenSize).squareRoot())
    weightIH = layout.declare("\(name).weight_ih", shape: [gates * hiddenSize, inputSize], initializer: k)
    weightHH = layout.declare("\(name).weight_hh", shape: [gates * hiddenSize, hiddenSize], initializer: k)
    biasIH = layout.declare("\(name).bias_ih", shape: [gates * hiddenSize], initializer: k)
    biasHH = layout.declare("\(name).bias_hh", shape: [gates * hiddenSize], initializer: k)
  }
}
