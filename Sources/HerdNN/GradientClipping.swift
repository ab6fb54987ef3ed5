import HerdMath

/// Global-norm gradient clipping (PyTorch's `clip_grad_norm_`, IMPALA's default 40).
public enum GradientClipping {
  /// Scales `grads` so their global L2 norm is at most `maxNorm` and returns the norm
  /// before clipping. The scale is `maxNorm / (norm + 1e-6)` when the norm exceeds
  /// `maxNorm`, as PyTorch does.
  ///
  /// - Throws: ``NNError/nonFiniteGradient(norm:)`` when any gradient is NaN or
  ///   infinite. The gradients are left as they are (never rescaled into garbage):
  ///   the caller skips the update and reports it.
  @discardableResult
  public static func clipGlobalNorm(_ grads: UnsafeMutableBufferPointer<Float>, maxNorm: Float) throws -> Float {
    guard let base = grads.baseAddress, grads.count > 0 else { return 0 }
    let norm = Kernels.norm2(base, count: grads.count)
    guard norm.isFinite else { throw NNError.nonFiniteGradient(norm: norm) }
    if let factor = factor(norm: norm, maxNorm: maxNorm) { BLAS.scale(factor, base, count: grads.count) }
    return Float(norm)
  }

  /// The factor ``clipGlobalNorm(_:maxNorm:)`` scales by when the global norm is
  /// `norm` (finite), or nil when it leaves the gradients as they are: for callers
  /// that compute the norm and scale in parts (``Kernels/blockSquares(_:count:into:)``).
  public static func factor(norm: Double, maxNorm: Float) -> Float? {
    guard maxNorm > 0, norm > Double(maxNorm) else { return nil }
    return Float(Double(maxNorm) / (norm + 1e-6))
  }
}

/// Linear decay of a rate from `initial` to `final` over `totalSteps`, constant
/// after: the learning rate's (IMPALA's schedule decays it to zero over the run)
/// and the entropy bonus weight's.
public struct LinearDecay: Sendable, Equatable, Codable {
  /// Learning rate at step 0.
  public var initial: Float
  /// Learning rate at and after `totalSteps`.
  public var final: Float
  /// Steps over which to decay; 0 means constant `initial`.
  public var totalSteps: Int

  /// A schedule; `totalSteps` 0 keeps the rate constant.
  public init(initial: Float, final: Float = 0, totalSteps: Int) {
    self.initial = initial
    self.final = final
    self.totalSteps = totalSteps
  }

  /// The learning rate at `step`.
  public func rate(at step: Int) -> Float {
    guard totalSteps > 0 else { return initial }
    let frac = min(1, max(0, Double(step) / Double(totalSteps)))
    return Float(Double(initial) + (Double(final) - Double(initial)) * frac)
  }
}
