import Foundation
import HerdMath
@testable import HerdRL
import HerdTestSupport
import Testing

/// The paper's definition (Espeholt et al. 2018, eq. 1), as a double sum:
/// v_s = V(x_s) + sum_{t=s}^{n-1} (prod_{i=s}^{t-1} gamma_i c_i) rho_t delta_t V,
/// with delta_t V = r_t + gamma_t V(x_{t+1}) - V(x_t) and V(x_n) = bootstrap.
func textbookVTrace(
  logRhos: [Float], discounts: [Float], rewards: [Float], values: [Float], bootstrap: Float, clipping: VTrace.Clipping
) -> (vs: [Double], adv: [Double]) {
  let n = values.count
  let ratio = logRhos.map { Foundation.exp(Double($0)) }
  let rho = ratio.map { min(Double(clipping.rho), $0) }
  let c = ratio.map { Double(clipping.lambda) * min(Double(clipping.c), $0) }
  func V(_ t: Int) -> Double { t == n ? Double(bootstrap) : Double(values[t]) }
  var vs = [Double](repeating: 0, count: n + 1)
  vs[n] = Double(bootstrap)
  for s in 0..<n {
    var total = V(s)
    for t in s..<n {
      var prod = 1.0
      for i in s..<t { prod *= Double(discounts[i]) * c[i] }
      total += prod * rho[t] * (Double(rewards[t]) + Double(discounts[t]) * V(t + 1) - V(t))
    }
    vs[s] = total
  }
  // With gaeAdvantages the advantage bootstraps from lambda v_{s+1} + (1 - lambda) V(x_{s+1}).
  let lambda = Double(clipping.lambda)
  let adv = (0..<n).map { s in
    let next = clipping.gaeAdvantages ? lambda * vs[s + 1] + (1 - lambda) * V(s + 1) : vs[s + 1]
    return min(Double(clipping.pgRho), ratio[s]) * (Double(rewards[s]) + Double(discounts[s]) * next - V(s))
  }
  return (Array(vs[0..<n]), adv)
}

@Suite struct VTraceTests {
  @Test(arguments: [1, 2, 5, 20], [UInt64(1), 2, 3])
  func recursionMatchesThePapersDoubleSum(n: Int, seed: UInt64) {
    var rng = SeededGenerator(seed: seed)
    let logRhos = randomArray(n, low: -1.5, high: 1.5, rng: &rng)
    var discounts = randomArray(n, low: 0.8, high: 1, rng: &rng)
    if n > 2 { discounts[n / 2] = 0 }  // a terminal step in the middle
    let rewards = randomArray(n, low: -2, high: 2, rng: &rng)
    let values = randomArray(n, low: -3, high: 3, rng: &rng)
    let bootstrap: Float = 1.7
    for clipping in [
      VTrace.Clipping(), VTrace.Clipping(rho: 2, pgRho: 0.5, c: 0.9, lambda: 0.95),
      VTrace.Clipping(rho: 2, pgRho: 0.5, c: 0.9, lambda: 0.8, gaeAdvantages: true),
    ] {
      let (vs, adv) = VTrace.compute(
        logRhos: logRhos, discounts: discounts, rewards: rewards, values: values, bootstrapValue: bootstrap, clipping: clipping)
      let ref = textbookVTrace(logRhos: logRhos, discounts: discounts, rewards: rewards, values: values, bootstrap: bootstrap, clipping: clipping)
      #expect(closeness(vs, ref.vs.map(Float.init), rtol: 1e-5, atol: 1e-5).ok)
      #expect(closeness(adv, ref.adv.map(Float.init), rtol: 1e-5, atol: 1e-5).ok)
    }
  }

  /// On-policy (pi = mu) with rho-bar = c-bar = 1, v_s is the n-step return.
  @Test(arguments: [1, 3, 10])
  func onPolicyItIsTheNStepReturn(n: Int) {
    var rng = SeededGenerator(seed: UInt64(n))
    let rewards = randomArray(n, rng: &rng)
    let values = randomArray(n, rng: &rng)
    let gamma: Float = 0.9
    let (vs, _) = VTrace.compute(
      logRhos: [Float](repeating: 0, count: n), discounts: [Float](repeating: gamma, count: n), rewards: rewards,
      values: values, bootstrapValue: 2.5)
    for s in 0..<n {
      var ret = 0.0
      for t in s..<n { ret += Foundation.pow(Double(gamma), Double(t - s)) * Double(rewards[t]) }
      ret += Foundation.pow(Double(gamma), Double(n - s)) * 2.5
      #expect(abs(Double(vs[s]) - ret) < 1e-5, "v_\(s)")
    }
  }

  /// On-policy with lambda < 1, the GAE-form advantage is GAE(lambda),
  /// `sum_t (prod_{i<t} gamma_i lambda) delta_t`, and v_s - V(x_s) is the same sum;
  /// IMPALA's advantage is not.
  @Test(arguments: [1, 4, 12])
  func gaeFormIsGAEOnPolicy(n: Int) {
    var rng = SeededGenerator(seed: UInt64(40 + n))
    var discounts = randomArray(n, low: 0.9, high: 0.99, rng: &rng)
    if n > 3 { discounts[n / 2] = 0 }
    let rewards = randomArray(n, rng: &rng)
    let values = randomArray(n, low: -2, high: 2, rng: &rng)
    let bootstrap: Float = -0.6
    let lambda: Float = 0.8
    func V(_ t: Int) -> Double { t == n ? Double(bootstrap) : Double(values[t]) }
    let gae = (0..<n).map { s in
      var total = 0.0
      var weight = 1.0
      for t in s..<n {
        total += weight * (Double(rewards[t]) + Double(discounts[t]) * V(t + 1) - V(t))
        weight *= Double(discounts[t]) * Double(lambda)
      }
      return Float(total)
    }
    let zeros = [Float](repeating: 0, count: n)
    let form = VTrace.compute(
      logRhos: zeros, discounts: discounts, rewards: rewards, values: values, bootstrapValue: bootstrap,
      clipping: VTrace.Clipping(lambda: lambda, gaeAdvantages: true))
    #expect(closeness(form.pgAdvantages, gae, rtol: 1e-5, atol: 1e-5).ok)
    #expect(closeness(zip(form.vs, values).map { $0 - $1 }, gae, rtol: 1e-5, atol: 1e-5).ok)
    if n > 1 {
      let impala = VTrace.compute(
        logRhos: zeros, discounts: discounts, rewards: rewards, values: values, bootstrapValue: bootstrap,
        clipping: VTrace.Clipping(lambda: lambda))
      #expect(!closeness(impala.pgAdvantages, gae, rtol: 1e-3, atol: 1e-3).ok)
    }
  }

  /// A terminal last step ignores the bootstrap entirely.
  @Test func terminalDiscountIgnoresTheBootstrap() {
    let a = VTrace.compute(logRhos: [0.3, -0.2], discounts: [0.99, 0], rewards: [1, 2], values: [0.5, 0.1], bootstrapValue: 100)
    let b = VTrace.compute(logRhos: [0.3, -0.2], discounts: [0.99, 0], rewards: [1, 2], values: [0.5, 0.1], bootstrapValue: -7)
    #expect(a.vs == b.vs && a.pgAdvantages == b.pgAdvantages)
  }
}
