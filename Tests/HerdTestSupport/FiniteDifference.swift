/// Central finite difference of `loss` w.r.t. the Float at `target` (a pointer into
/// live parameter or input storage), restoring the value afterwards.
public func numericDerivative(
  _ target: UnsafeMutablePointer<Float>, eps: Float = 1e-2, _ loss: () throws -> Double
) rethrows -> Double {
  let saved = target.pointee
  target.pointee = saved + eps
  let plus = try loss()
  target.pointee = saved - eps
  let minus = try loss()
  target.pointee = saved
  return (plus - minus) / Double(2 * eps)
}

/// `sum(w * y)` in Double: a scalar loss with a known upstream gradient `w`.
public func weightedSum(_ y: [Float], _ w: [Float]) -> Double {
  zip(y, w).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
}

/// True when an analytic derivative agrees with a finite difference of a Float32
/// forward (absolute 2e-3 plus 2% relative: rounding in the forward limits more).
public func gradientAgrees(_ analytic: Float, _ numeric: Double) -> Bool {
  abs(Double(analytic) - numeric) <= 2e-3 + 2e-2 * abs(numeric)
}
