import HerdMath

#if canImport(Glibc)
  import Glibc
#endif

/// What the policy's head parameterises, chosen by the environment's action space:
///
/// - ``categorical(_:)``: Discrete and MultiDiscrete spaces. The head's outputs are
///   logits (``ActionHeads``); an action is one packed Int32.
/// - ``gaussian(dims:freeLogStd:)``: Box spaces. A diagonal Gaussian over the
///   space's D flattened elements; an action is D floats.
///
/// Either way a step's *distribution inputs* are A floats, what fragments carry as
/// `behaviourLogits` and what V-trace's ratios are computed from:
/// `[logits]` (A = the heads' sizes summed) or `[mean (D) | log std (D)]` (A = 2D).
/// With `freeLogStd` the log std is one learned parameter vector shared by every
/// state (`pi.log_std`), written into each row; without it the head outputs both.
public enum ActionDistribution: Sendable, Equatable, CustomStringConvertible {
  case categorical(ActionHeads)
  case gaussian(dims: Int, freeLogStd: Bool)

  /// Distribution inputs per step A.
  public var inputs: Int {
    switch self {
    case .categorical(let heads): return heads.logits
    case .gaussian(let d, _): return 2 * d
    }
  }

  /// Floats per action (D) for a Gaussian; 0 for categorical actions (one Int32).
  public var actionWidth: Int {
    if case .gaussian(let d, _) = self { return d }
    return 0
  }

  /// Floats of the previous action as a core input: every head's one-hot
  /// (the logits' count), or a Gaussian's D.
  public var prevActionWidth: Int {
    switch self {
    case .categorical(let heads): return heads.logits
    case .gaussian(let d, _): return d
    }
  }

  /// Whether actions are float vectors.
  public var isContinuous: Bool { actionWidth > 0 }

  /// The categorical heads (nil for a Gaussian).
  public var heads: ActionHeads? {
    if case .categorical(let h) = self { return h }
    return nil
  }

  public var description: String {
    switch self {
    case .categorical(let heads): return "categorical, \(heads)"
    case .gaussian(let d, let free):
      return "diagonal Gaussian over \(d) dims, log std \(free ? "a learned vector" : "from the state")"
    }
  }
}

/// The diagonal Gaussian's formulas on one step's inputs `[mean (D) | log std (D)]`.
///
/// ```
/// log p(a) = sum_d -0.5 ((a_d - mu_d) / sigma_d)^2 - log sigma_d - 0.5 log(2 pi)
/// H        = sum_d log sigma_d + 0.5 log(2 pi e)
/// ```
/// The log std is clamped to [``minLogStd``, ``maxLogStd``] where it is read, so a
/// runaway parameter cannot give a zero or infinite scale. Beyond a bound the
/// value read is the bound's, and its gradient reaches the raw input only when it
/// points back inside (a descent step would move the input toward the range): the
/// clamp stops a log std from running further out, and never freezes one that
/// ran past it. (With no gradient at all outside, a log std output per state that
/// crossed 2 stayed there for good: the policy acted at the widest spread for the
/// rest of the run.)
public enum DiagGaussian {
  public static let minLogStd: Float = -20
  public static let maxLogStd: Float = 2
  /// 0.5 log(2 pi).
  public static let halfLog2Pi: Float = 0.918_938_53
  /// 0.5 log(2 pi e).
  public static let entropyConstant: Float = 1.418_938_5

  @inlinable
  static func clampedLogStd(_ x: Float) -> Float { min(max(x, minLogStd), maxLogStd) }

  /// log p(`action`) under `inputs`.
  @inlinable
  public static func logProb(_ inputs: UnsafePointer<Float>, action: UnsafePointer<Float>, dims d: Int) -> Float {
    var s: Float = 0
    for j in 0..<d {
      let ls = clampedLogStd(inputs[d &+ j])
      let z = (action[j] - inputs[j]) * expf(-ls)
      s += -0.5 * z * z - ls - halfLog2Pi
    }
    return s
  }

  /// The entropy H of `inputs`.
  @inlinable
  public static func entropy(_ inputs: UnsafePointer<Float>, dims d: Int) -> Float {
    var s: Float = 0
    for j in 0..<d { s += clampedLogStd(inputs[d &+ j]) + entropyConstant }
    return s
  }

  /// Writes `g = scale * (-weight * d log p(action) / d inputs - entropyCoeff * dH / d inputs)`
  /// into `g[2D]` (the loss's gradient for one step).
  @inlinable
  public static func lossGradient(
    _ inputs: UnsafePointer<Float>, action: UnsafePointer<Float>, dims d: Int, weight: Float, entropyCoeff: Float,
    scale: Float, into g: UnsafeMutablePointer<Float>
  ) {
    for j in 0..<d {
      let raw = inputs[d &+ j]
      let ls = clampedLogStd(raw)
      let inv = expf(-ls)
      let z = (action[j] - inputs[j]) * inv
      // d log p / d mu = z / sigma; d log p / d log sigma = z^2 - 1; dH / d log sigma = 1.
      g[j] = -weight * z * inv * scale
      let atBound = (-weight * (z * z - 1) - entropyCoeff) * scale
      // Outside the range only an inward gradient passes (descent subtracts it).
      g[d &+ j] = raw > maxLogStd ? max(atBound, 0) : raw < minLogStd ? min(atBound, 0) : atBound
    }
  }

  /// Draws `mean + sigma * eps` into `out[D]` (the unclipped sample), or the mean
  /// itself when `greedy`.
  @inlinable
  public static func sample<G: RandomNumberGenerator>(
    _ inputs: UnsafePointer<Float>, dims d: Int, greedy: Bool, rng: inout G, into out: UnsafeMutablePointer<Float>
  ) {
    for j in 0..<d {
      out[j] = greedy ? inputs[j] : inputs[j] + expf(clampedLogStd(inputs[d &+ j])) * rng.nextGaussian()
    }
  }
}
