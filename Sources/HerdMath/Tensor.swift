/// Errors from tensor construction and shape checks.
public enum TensorError: Error, Equatable, CustomStringConvertible {
  /// The scalar count does not match the product of the shape.
  case countMismatch(shape: [Int], count: Int)
  /// A dimension is negative.
  case negativeDimension(shape: [Int])
  /// Two shapes that must agree do not; `context` names the operation and operand.
  case shapeMismatch(context: String, expected: [Int], actual: [Int])

  public var description: String {
    switch self {
    case .countMismatch(let shape, let count):
      return "shape \(shape) holds \(shape.reduce(1, *)) scalars, but \(count) were given"
    case .negativeDimension(let shape):
      return "shape \(shape) has a negative dimension"
    case .shapeMismatch(let context, let expected, let actual):
      return "\(context): expected shape \(expected), got \(actual)"
    }
  }
}

/// A row-major Float32 tensor: a shape and contiguous storage.
///
/// A value type (copy-on-write through its array). Hot loops do not index it
/// element by element: they take its storage's pointer and hand it to BLAS or a
/// kernel in ``Kernels``.
public struct Tensor: Equatable, Sendable, CustomStringConvertible {
  /// Dimensions, outermost first.
  public private(set) var shape: [Int]
  /// Scalars in row-major order; `scalars.count == shape.reduce(1, *)`.
  public var scalars: [Float]

  /// A tensor of `shape` filled with `value`.
  public init(shape: [Int], repeating value: Float = 0) {
    precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
    self.shape = shape
    self.scalars = [Float](repeating: value, count: shape.reduce(1, *))
  }

  /// A tensor of `shape` holding `scalars`; throws if the count does not fit.
  public init(shape: [Int], scalars: [Float]) throws {
    guard shape.allSatisfy({ $0 >= 0 }) else { throw TensorError.negativeDimension(shape: shape) }
    guard shape.reduce(1, *) == scalars.count else {
      throw TensorError.countMismatch(shape: shape, count: scalars.count)
    }
    self.shape = shape
    self.scalars = scalars
  }

  /// A tensor of `shape` with entries uniform in `[low, high)` from `rng`.
  public init<G: RandomNumberGenerator>(
    uniform shape: [Int], low: Float = -1, high: Float = 1, using rng: inout G
  ) {
    self.init(shape: shape)
    for i in scalars.indices { scalars[i] = low + (high - low) * rng.nextUnitFloat() }
  }

  /// Number of dimensions.
  public var rank: Int { shape.count }
  /// Number of scalars.
  public var count: Int { scalars.count }

  /// The scalar at a full multi-index (slow; for tests and tools).
  public subscript(_ index: Int...) -> Float {
    get { scalars[offset(index)] }
    set { scalars[offset(index)] = newValue }
  }

  private func offset(_ index: [Int]) -> Int {
    precondition(index.count == shape.count, "index \(index) for shape \(shape)")
    var o = 0
    for (i, d) in zip(index, shape) {
      precondition(i >= 0 && i < d, "index \(index) out of range for shape \(shape)")
      o = o * d + i
    }
    return o
  }

  /// The same scalars under another shape with the same count.
  public func reshaped(_ newShape: [Int]) throws -> Tensor {
    try Tensor(shape: newShape, scalars: scalars)
  }

  /// Throws ``TensorError/shapeMismatch(context:expected:actual:)`` unless the shape is `expected`.
  public func expectShape(_ expected: [Int], _ context: @autoclosure () -> String) throws {
    guard shape == expected else {
      throw TensorError.shapeMismatch(context: context(), expected: expected, actual: shape)
    }
  }

  /// Largest absolute difference to `other` (same shape required).
  public func maxAbsDifference(_ other: Tensor) -> Float {
    precondition(shape == other.shape, "shapes \(shape) and \(other.shape)")
    var m: Float = 0
    for (a, b) in zip(scalars, other.scalars) { m = max(m, abs(a - b)) }
    return m
  }

  public var description: String { "Tensor\(shape)" }
}

// MARK: - Matrix products on tensors

extension Tensor {
  /// `op(a) * op(b)` for rank-2 tensors through `cblas_sgemm`.
  ///
  /// - Throws: ``TensorError/shapeMismatch(context:expected:actual:)`` when the inner
  ///   dimensions differ or an operand is not a matrix.
  public static func matmul(
    _ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false
  ) throws -> Tensor {
    guard a.rank == 2 else {
      throw TensorError.shapeMismatch(context: "matmul lhs rank", expected: [-1, -1], actual: a.shape)
    }
    guard b.rank == 2 else {
      throw TensorError.shapeMismatch(context: "matmul rhs rank", expected: [-1, -1], actual: b.shape)
    }
    let (m, k) = transposeA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
    let (kb, n) = transposeB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
    guard k == kb else {
      throw TensorError.shapeMismatch(
        context: "matmul inner dimension", expected: [k, n], actual: [kb, n])
    }
    var c = Tensor(shape: [m, n])
    a.scalars.withPointer { pa in
      b.scalars.withPointer { pb in
        c.scalars.withMutablePointer { pc in
          BLAS.gemm(
            transposeA ? .transposed : .none, transposeB ? .transposed : .none,
            m: m, n: n, k: k, a: pa, lda: max(1, a.shape[1]),
            b: pb, ldb: max(1, b.shape[1]), beta: 0, c: pc, ldc: max(1, n))
        }
      }
    }
    return c
  }
}
