/// Elementwise kernels over contiguous Float32 buffers.
///
/// Shapes: every function takes `count` scalars; `input` and `output` may be the
/// same buffer. The activations run sixteen lanes at a time with the functions in
/// FastMath.swift; the tail is padded into one more vector so each value takes the
/// same path wherever it sits.
public enum Kernels {
  /// Applies `f` lane-wise from `input` to `output` over `count` scalars.
  @inlinable @inline(__always)
  public static func map16(
    _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, count: Int,
    _ f: (Float16s) -> Float16s
  ) {
    var i = 0
    while i &+ 16 <= count {
      f(Float16s.load(input + i, count: 16)).store(output + i, count: 16)
      i &+= 16
    }
    if i < count { f(Float16s.load(input + i, count: count &- i)).store(output + i, count: count &- i) }
  }

  /// `output = sigmoid(input)`.
  @inlinable
  public static func sigmoid(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, count: Int) {
    map16(input, output, count: count, simdSigmoid)
  }

  /// `output = tanh(input)`.
  @inlinable
  public static func tanh(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, count: Int) {
    map16(input, output, count: count, simdTanh)
  }

  /// `output = exp(input)`.
  @inlinable
  public static func exp(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, count: Int) {
    map16(input, output, count: count, simdExp)
  }

  /// `output = input * factor`; in place allowed.
  @inlinable
  public static func scale(
    _ input: UnsafePointer<Float>, by factor: Float, into output: UnsafeMutablePointer<Float>, count: Int
  ) {
    map16(input, output, count: count) { $0 * factor }
  }

  /// `output = max(input, 0)`.
  @inlinable
  public static func relu(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, count: Int) {
    map16(input, output, count: count) { $0.replacing(with: 0, where: $0 .< 0) }
  }

  // MARK: Derivatives, written in terms of the activation's output y

  /// `dx = dy * y * (1 - y)` where `y = sigmoid(x)`.
  @inlinable
  public static func sigmoidBackward(
    output y: UnsafePointer<Float>, gradOutput dy: UnsafePointer<Float>,
    gradInput dx: UnsafeMutablePointer<Float>, count: Int
  ) {
    for i in 0..<count { dx[i] = dy[i] * y[i] * (1 - y[i]) }
  }

  /// `dx = dy * (1 - y^2)` where `y = tanh(x)`.
  @inlinable
  public static func tanhBackward(
    output y: UnsafePointer<Float>, gradOutput dy: UnsafePointer<Float>,
    gradInput dx: UnsafeMutablePointer<Float>, count: Int
  ) {
    for i in 0..<count { dx[i] = dy[i] * (1 - y[i] * y[i]) }
  }

  /// `dx = dy` where `y > 0`, else 0, where `y = relu(x)`.
  @inlinable
  public static func reluBackward(
    output y: UnsafePointer<Float>, gradOutput dy: UnsafePointer<Float>,
    gradInput dx: UnsafeMutablePointer<Float>, count: Int
  ) {
    for i in 0..<count { dx[i] = y[i] > 0 ? dy[i] : 0 }
  }

  // MARK: Row-wise softmax over [rows, cols]

  /// Row-wise log-softmax of `[rows, cols]`, stabilised by the row maximum.
  public static func logSoftmax(
    _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, rows: Int, cols: Int
  ) {
    for r in 0..<rows {
      let x = input + r &* cols
      let y = output + r &* cols
      var m = -Float.infinity
      for j in 0..<cols { m = max(m, x[j]) }
      var s: Float = 0
      for j in 0..<cols { s += expf(x[j] - m) }
      let lse = m + logf(s)
      for j in 0..<cols { y[j] = x[j] - lse }
    }
  }

  /// Row-wise softmax of `[rows, cols]`, stabilised by the row maximum.
  public static func softmax(
    _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, rows: Int, cols: Int
  ) {
    logSoftmax(input, output, rows: rows, cols: cols)
    for i in 0..<(rows &* cols) { output[i] = expf(output[i]) }
  }

  /// Gradient of row-wise log-softmax: `dx = dy - softmax(x) * sum_j dy_j`.
  ///
  /// - Parameter logProbs: the forward output `log softmax(x)`, `[rows, cols]`.
  public static func logSoftmaxBackward(
    logProbs: UnsafePointer<Float>, gradOutput dy: UnsafePointer<Float>,
    gradInput dx: UnsafeMutablePointer<Float>, rows: Int, cols: Int
  ) {
    for r in 0..<rows {
      let lp = logProbs + r &* cols
      let g = dy + r &* cols
      let o = dx + r &* cols
      var s: Float = 0
      for j in 0..<cols { s += g[j] }
      for j in 0..<cols { o[j] = g[j] - expf(lp[j]) * s }
    }
  }

  // MARK: Reductions and row operations

  /// `out[j] (+)= sum_i a[i, j]` over `[rows, cols]` with row stride `lda`.
  @inlinable
  public static func columnSums(
    _ a: UnsafePointer<Float>, rows: Int, cols: Int, lda: Int,
    into out: UnsafeMutablePointer<Float>, accumulate: Bool
  ) {
    if !accumulate { out.update(repeating: 0, count: cols) }
    for r in 0..<rows {
      let row = a + r &* lda
      for j in 0..<cols { out[j] += row[j] }
    }
  }

  /// Adds the vector `bias[cols]` to every row of `a[rows, cols]` (row stride `lda`).
  @inlinable
  public static func addRowVector(
    _ bias: UnsafePointer<Float>, to a: UnsafeMutablePointer<Float>, rows: Int, cols: Int, lda: Int
  ) {
    for r in 0..<rows {
      let row = a + r &* lda
      for j in 0..<cols { row[j] += bias[j] }
    }
  }

  /// Floats per block of ``norm2(_:count:)``.
  public static let normBlock = 4096

  /// Euclidean norm of a contiguous buffer without overflow: `cblas_snrm2` (which
  /// scales) over blocks of ``normBlock``, their squares added in Double in order.
  /// NaN or infinity gives a non-finite result.
  public static func norm2(_ x: UnsafePointer<Float>, count: Int) -> Double {
    let blocks = (count &+ normBlock &- 1) / normBlock
    return withUnsafeTemporaryAllocation(of: Double.self, capacity: max(1, blocks)) { squares in
      blockSquares(x, count: count, into: squares.baseAddress.unsafelyUnwrapped)
      return sumOfSquares(squares.baseAddress.unsafelyUnwrapped, blocks: blocks).squareRoot()
    }
  }

  /// The squared norm of each block of ``normBlock`` floats of `x` (the last may be
  /// shorter), into `squares[0 ..< ceil(count / normBlock)]`. Parts of a vector split
  /// at multiples of ``normBlock`` give the blocks of the whole, so threads can
  /// compute them for their own parts and ``sumOfSquares(_:blocks:)`` adds them up
  /// in the order of one thread.
  public static func blockSquares(_ x: UnsafePointer<Float>, count: Int, into squares: UnsafeMutablePointer<Double>) {
    var i = 0
    var b = 0
    while i < count {
      let n = min(normBlock, count &- i)
      let blockNorm = Double(BLAS.norm2(x + i, count: n))
      squares[b] = blockNorm * blockNorm
      i &+= n
      b &+= 1
    }
  }

  /// The blocks' squared norms added in order.
  public static func sumOfSquares(_ squares: UnsafePointer<Double>, blocks: Int) -> Double {
    var sumSq: Double = 0
    for b in 0..<blocks { sumSq += squares[b] }
    return sumSq
  }
}

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif
