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

/// A Box action space's bounds per dimension (infinite where it has none), where
/// the environment clips the actions it is given.
public struct ActionBounds: Sendable, Equatable {
  public var low: [Float]
  public var high: [Float]

  public init(low: [Float], high: [Float]) {
    precondition(low.count == high.count, "bounds of \(low.count) and \(high.count) dimensions")
    self.low = low
    self.high = high
  }

  /// Whether some dimension has a finite bound.
  public var anyFinite: Bool { low.contains { $0.isFinite } || high.contains { $0.isFinite } }
}

/// The diagonal Gaussian's formulas on one step's inputs `[mean (D) | log std (D)]`.
///
/// ```
/// log p(a) = sum_d -0.5 ((a_d - mu_d) / sigma_d)^2 - log sigma_d - 0.5 log(2 pi)
/// H        = sum_d log sigma_d + 0.5 log(2 pi e)
/// ```
/// Given ``ActionBounds``, a dimension whose sample lies at or beyond a finite
/// bound contributes log Q(t) instead of its density term: the log-probability of
/// the whole tail the environment clips to that bound (``tail``).
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

  /// log p(`action`) under `inputs`. With `bounds`, a dimension whose sample lies
  /// at or beyond a finite bound counts the probability of that whole tail (the
  /// probability of the action the environment took); elsewhere, and everywhere
  /// when `bounds` is nil, the density. No default: a caller says which it wants.
  @inlinable
  public static func logProb(
    _ inputs: UnsafePointer<Float>, action: UnsafePointer<Float>, dims d: Int, bounds: ActionBounds?
  ) -> Float {
    var s: Float = 0
    for j in 0..<d {
      let ls = clampedLogStd(inputs[d &+ j])
      if let bounds, let tail = tail(mean: inputs[j], logStd: ls, action: action[j], bounds: bounds, dim: j) {
        s += tail.logProb
        continue
      }
      let z = (action[j] - inputs[j]) * expf(-ls)
      s += -0.5 * z * z - ls - halfLog2Pi
    }
    return s
  }

  /// For a sample at or beyond a finite bound of dimension `dim`: log P(tail) and
  /// its derivatives by the mean and by the log std; nil inside the bounds.
  ///
  /// With t the distance from the mean to the bound in standard deviations,
  /// positive toward the tail's side (t = (high - mean) / sigma above, (mean -
  /// low) / sigma below), P = Q(t) = erfc(t / sqrt 2) / 2 and, with the hazard
  /// h = phi(t) / Q(t), d log P / d mean = +-h / sigma (+ above) and d log P / d log
  /// sigma = t h. Computed in Double; where Q underflows (t > 37), from the
  /// asymptotic series.
  @inlinable
  public static func tail(
    mean: Float, logStd: Float, action: Float, bounds: ActionBounds, dim j: Int
  ) -> (logProb: Float, dMean: Float, dLogStd: Float)? {
    let high = bounds.high[j]
    let low = bounds.low[j]
    let above = high.isFinite && action >= high
    guard above || (low.isFinite && action <= low) else { return nil }
    let sigma = exp(Double(logStd))
    let t = above ? (Double(high) - Double(mean)) / sigma : (Double(mean) - Double(low)) / sigma
    let halfLog2PiD = 0.918_938_533_204_672_7
    let logQ: Double
    let hazard: Double
    if t < 37 {
      let q = 0.5 * erfc(t / 2.0.squareRoot())
      logQ = log(q)
      hazard = exp(-0.5 * t * t - halfLog2PiD - logQ)
    } else {
      // Q(t) = phi(t) / t * (1 - 1/t^2 + 3/t^4 - ...); phi / Q = t / (1 - 1/t^2 + 3/t^4).
      let series = 1 - 1 / (t * t) + 3 / (t * t * t * t)
      logQ = -0.5 * t * t - halfLog2PiD - log(t) + log(series)
      hazard = t / series
    }
    return (Float(logQ), Float((above ? hazard : -hazard) / sigma), Float(t * hazard))
  }

  /// The entropy H of `inputs`.
  @inlinable
  public static func entropy(_ inputs: UnsafePointer<Float>, dims d: Int) -> Float {
    var s: Float = 0
    for j in 0..<d { s += clampedLogStd(inputs[d &+ j]) + entropyConstant }
    return s
  }

  /// Writes `g = scale * (-weight * d log p(action) / d inputs - entropyCoeff * dH / d inputs)`
  /// into `g[2D]` (the loss's gradient for one step); log p as ``logProb`` reads it
  /// with the same `bounds`.
  @inlinable
  public static func lossGradient(
    _ inputs: UnsafePointer<Float>, action: UnsafePointer<Float>, dims d: Int, weight: Float, entropyCoeff: Float,
    scale: Float, bounds: ActionBounds?, into g: UnsafeMutablePointer<Float>
  ) {
    for j in 0..<d {
      let raw = inputs[d &+ j]
      let ls = clampedLogStd(raw)
      let inv = expf(-ls)
      let z = (action[j] - inputs[j]) * inv
      // d log p / d mu = z / sigma; d log p / d log sigma = z^2 - 1; dH / d log sigma = 1.
      var dMean = z * inv
      var dLogStd = z * z - 1
      if let bounds, let tail = tail(mean: inputs[j], logStd: ls, action: action[j], bounds: bounds, dim: j) {
        (dMean, dLogStd) = (tail.dMean, tail.dLogStd)
      }
      g[j] = -weight * dMean * scale
      let atBound = (-weight * dLogStd - entropyCoeff) * scale
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
