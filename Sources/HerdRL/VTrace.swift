#if canImport(Glibc)
  import Glibc
#endif

/// V-trace targets and policy-gradient advantages (Espeholt et al. 2018, "IMPALA",
/// section 4.1, eq. 1 and the recursion below it).
///
/// For one sequence of n steps, with importance ratios `pi(a_t|x_t) / mu(a_t|x_t)`:
/// ```
/// rho_t = min(rho_bar, ratio_t)           c_t = lambda * min(c_bar, ratio_t)
/// delta_t = rho_t (r_t + gamma_t V(x_{t+1}) - V(x_t))       with V(x_n) = bootstrap
/// v_s = V(x_s) + delta_s + gamma_s c_s (v_{s+1} - V(x_{s+1}))   computed backwards, v_n = V(x_n)
/// pg_advantage_s = min(rho_bar_pg, ratio_s) (r_s + gamma_s v_{s+1} - V(x_s))
/// ```
/// With `gaeAdvantages` the advantage bootstraps from `lambda v_{s+1} + (1 - lambda) V(x_{s+1})`
/// instead of `v_{s+1}`: on-policy with c-bar >= 1 that is GAE(lambda),
/// `sum_t (prod gamma lambda) delta_t`, PPO's advantage.
/// `gamma_t` is the discount after step t: 0 after a terminal step (and then the
/// bootstrap is irrelevant). Everything here is a constant for the gradient.
public enum VTrace {
  /// Clipping constants.
  public struct Clipping: Sendable, Equatable {
    /// rho-bar for the value targets.
    public var rho: Float
    /// rho-bar for the policy-gradient advantages.
    public var pgRho: Float
    /// c-bar.
    public var c: Float
    /// lambda (multiplies c).
    public var lambda: Float
    /// The advantage bootstraps from `lambda v_{s+1} + (1 - lambda) V(x_{s+1})` (GAE's form).
    public var gaeAdvantages: Bool

    /// IMPALA's defaults: all 1.
    public init(rho: Float = 1, pgRho: Float = 1, c: Float = 1, lambda: Float = 1, gaeAdvantages: Bool = false) {
      self.rho = rho
      self.pgRho = pgRho
      self.c = c
      self.lambda = lambda
      self.gaeAdvantages = gaeAdvantages
    }

    /// The value the advantage of a step bootstraps from, given the next step's
    /// target `v_{s+1}` and value `V(x_{s+1})`.
    @inline(__always)
    public func advantageBootstrap(nextVs: Float, nextV: Float) -> Float {
      gaeAdvantages ? lambda * nextVs + (1 - lambda) * nextV : nextVs
    }
  }

  /// Computes `vs [n]` and `pgAdvantages [n]` for one sequence.
  ///
  /// - Parameters:
  ///   - logRhos: `log pi(a_t) - log mu(a_t)`, `[n]`.
  ///   - discounts: `gamma_t`, `[n]`.
  ///   - rewards, values: `[n]`.
  ///   - bootstrapValue: `V(x_n)`.
  public static func compute(
    logRhos: [Float], discounts: [Float], rewards: [Float], values: [Float], bootstrapValue: Float,
    clipping: Clipping = Clipping()
  ) -> (vs: [Float], pgAdvantages: [Float]) {
    let n = values.count
    precondition(
      logRhos.count == n && discounts.count == n && rewards.count == n, "V-trace inputs of different lengths")
    var vs = [Float](repeating: 0, count: n)
    var adv = [Float](repeating: 0, count: n)
    var nextV = bootstrapValue  // V(x_{s+1})
    var nextVs = bootstrapValue  // v_{s+1}
    for s in stride(from: n - 1, through: 0, by: -1) {
      let ratio = expf(logRhos[s])
      let rho = min(clipping.rho, ratio)
      let c = clipping.lambda * min(clipping.c, ratio)
      let delta = rho * (rewards[s] + discounts[s] * nextV - values[s])
      vs[s] = values[s] + delta + discounts[s] * c * (nextVs - nextV)
      let next = clipping.advantageBootstrap(nextVs: nextVs, nextV: nextV)
      adv[s] = min(clipping.pgRho, ratio) * (rewards[s] + discounts[s] * next - values[s])
      nextV = values[s]
      nextVs = vs[s]
    }
    return (vs, adv)
  }
}
