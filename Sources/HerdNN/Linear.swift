import HerdMath

/// A fully connected layer, `y = x W^T + b` (PyTorch's `nn.Linear`).
///
/// Shapes: x `[M, in]`, W `[out, in]`, b `[out]`, y `[M, out]`; M is any number of
/// rows (a rollout batch `[K]` or packed training steps `[P]`).
public struct Linear: Sendable, Equatable {
  /// Input features.
  public let inFeatures: Int
  /// Output features.
  public let outFeatures: Int
  /// `[out, in]`.
  public let weight: ParameterSlot
  /// `[out]`.
  public let bias: ParameterSlot

  /// Declares `name.weight` and `name.bias` in `layout`, initialised as PyTorch's
  /// default: U(-1/sqrt(in), 1/sqrt(in)) for both. `weightBound` overrides the
  /// weight's bound (heads are often started small).
  public init(
    _ name: String, inFeatures: Int, outFeatures: Int, layout: inout ParameterLayout,
    weightBound: Float? = nil
  ) {
    precondition(inFeatures > 0 && outFeatures > 0, "Linear \(name): \(inFeatures) -> \(outFeatures)")
    self.inFeatures = inFeatures
    self.outFeatures = outFeatures
    let bound = 1 / Float(inFeatures).squareRoot()
    weight = layout.declare(
      "\(name).weight", shape: [outFeatures, inFeatures], initializer: .uniform(bound: weightBound ?? bound))
    bias = layout.declare("\(name).bias", shape: [outFeatures], initializer: .uniform(bound: bound))
  }

  /// `y[rows, out] = x[rows, in] W^T + b`.
  public func forward(
    _ p: Parameters, x: UnsafePointer<Float>, rows: Int, y: UnsafeMutablePointer<Float>
  ) {
    let b = p.value(bias)
    for r in 0..<rows { (y + r &* outFeatures).update(from: b, count: outFeatures) }
    BLAS.gemm(
      .none, .transposed, m: rows, n: outFeatures, k: inFeatures,
      a: x, lda: inFeatures, b: p.value(weight), ldb: inFeatures, beta: 1, c: y, ldc: outFeatures)
  }

  /// Packs `W^T` (`[in, out]`) into `packed` for ``forward(_:x:rows:y:packed:)``.
  public func pack(_ p: Parameters, into packed: PackedMatrix) {
    packed.pack(p.value(weight), ld: inFeatures, transposed: true, k: inFeatures, n: outFeatures)
  }

  /// ``forward(_:x:rows:y:)`` on weights packed by ``pack(_:into:)`` from these
  /// parameters: the same bits as the general product on Herd's kernels.
  public func forward(
    _ p: Parameters, x: UnsafePointer<Float>, rows: Int, y: UnsafeMutablePointer<Float>, packed: PackedMatrix
  ) {
    precondition(packed.k == inFeatures && packed.n == outFeatures, "Linear.forward: packing is [\(packed.k), \(packed.n)]")
    let b = p.value(bias)
    for r in 0..<rows { (y + r &* outFeatures).update(from: b, count: outFeatures) }
    packed.multiply(x, lda: inFeatures, rows: rows, into: y, ldc: outFeatures, accumulate: true)
  }

  /// Accumulates `dW += dy^T x`, `db += sum_rows dy`, and writes `dx = dy W` when asked.
  ///
  /// - Parameters:
  ///   - x: the forward input `[rows, in]`.
  ///   - dy: gradient of the loss w.r.t. y, `[rows, out]`.
  ///   - dx: where to write the gradient w.r.t. x (`[rows, in]`), or nil.
  ///   - accumulateInput: add into `dx` instead of overwriting it.
  public func backward(
    _ p: Parameters, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, rows: Int,
    dx: UnsafeMutablePointer<Float>?, accumulateInput: Bool = false
  ) {
    BLAS.gemm(
      .transposed, .none, m: outFeatures, n: inFeatures, k: rows,
      a: dy, lda: outFeatures, b: x, ldb: inFeatures, beta: 1, c: p.grad(weight), ldc: inFeatures)
    Kernels.columnSums(dy, rows: rows, cols: outFeatures, lda: outFeatures, into: p.grad(bias), accumulate: true)
    if let dx {
      BLAS.gemm(
        .none, .none, m: rows, n: inFeatures, k: outFeatures,
        a: dy, lda: outFeatures, b: p.value(weight), ldb: inFeatures,
        beta: accumulateInput ? 1 : 0, c: dx, ldc: inFeatures)
    }
  }
}

extension Linear {
  /// Tensor form of ``forward(_:x:rows:y:)``: x `[M, in]` -> `[M, out]`.
  public func forward(_ p: Parameters, _ x: Tensor) throws -> Tensor {
    guard x.rank == 2, x.shape[1] == inFeatures else {
      throw NNError.shapeMismatch(context: "Linear input", expected: [x.shape.first ?? 0, inFeatures], actual: x.shape)
    }
    var y = Tensor(shape: [x.shape[0], outFeatures])
    x.scalars.withPointer { px in y.scalars.withMutablePointer { forward(p, x: px, rows: x.shape[0], y: $0) } }
    return y
  }

  /// Tensor form of ``backward(_:x:dy:rows:dx:accumulateInput:)``; returns dx.
  public func backward(_ p: Parameters, x: Tensor, gradOutput dy: Tensor) throws -> Tensor {
    guard x.rank == 2, x.shape[1] == inFeatures else {
      throw NNError.shapeMismatch(context: "Linear input", expected: [x.shape.first ?? 0, inFeatures], actual: x.shape)
    }
    try dy.require([x.shape[0], outFeatures], "Linear gradOutput")
    var dx = Tensor(shape: x.shape)
    x.scalars.withPointer { px in
      dy.scalars.withPointer { pdy in
        dx.scalars.withMutablePointer { backward(p, x: px, dy: pdy, rows: x.shape[0], dx: $0) }
      }
    }
    return dx
  }
}
