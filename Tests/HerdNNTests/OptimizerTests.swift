import CVector
import Foundation
import HerdMath
import HerdNN
import HerdTestSupport
import Testing

/// Parameters holding one flat vector, as the fixtures' single tensor.
func flatParameters(_ values: [Float]) throws -> Parameters {
  var layout = ParameterLayout()
  _ = layout.declare("p", shape: [values.count], initializer: .constant(0))
  let p = Parameters(layout: layout)
  try p.load(flatValues: values)
  return p
}

@Suite struct OptimizerTests {
  @Test(arguments: ["rmsprop", "rmsprop_momentum_centered", "adam", "adam_weight_decay"])
  func agreesWithPyTorch(name: String) throws {
    let f = try Fixture(name)
    let p = try flatParameters(try f.tensor("initial").scalars)
    let opt: Optimizer
    if name.hasPrefix("rmsprop") {
      opt = RMSProp(
        count: p.count, alpha: Float(try f.number("alpha")), eps: Float(try f.number("eps")),
        momentum: Float(try f.number("momentum")), centered: name.contains("centered"))
    } else {
      let betas = name == "adam" ? (Float(0.9), Float(0.999)) : (Float(0.8), Float(0.9))
      opt = Adam(
        count: p.count, beta1: betas.0, beta2: betas.1, eps: Float(try f.number("eps")),
        weightDecay: Float(try f.number("weight_decay")))
    }
    let lr = Float(try f.number("lr"))
    for (step, (g, expected)) in zip(try f.tensors("grads"), try f.tensors("params")).enumerated() {
      g.scalars.withPointer { p.grads.baseAddress!.update(from: $0, count: p.count) }
      opt.step(p, lr: lr)
      let r = closeness(p.flatValues, expected.scalars, rtol: 1e-5, atol: 1e-6)
      #expect(r.ok, "\(name) step \(step + 1): \(r)")
    }
    #expect(opt.stepCount == 4)
  }

  /// Adam's and RMSProp's (IMPALA's setting: not centred, no momentum) eight-lane
  /// loops give the bits of their one-parameter tails: 21 parameters (two vectors
  /// and a tail of 5) against 21 optimisers of one parameter each, over steps with
  /// gradients from 1e-20 (squares below the normal range) to 1e3 and zeros. Their
  /// square root is one vector instruction (CVector), not a scalar root per lane.
  @Test(arguments: ["adam", "rmsprop"])
  func vectorLoopMatchesItsScalarTail(name: String) throws {
    let n = 21
    func make(_ count: Int) -> any Optimizer {
      name == "adam"
        ? Adam(count: count, beta1: 0.8, beta2: 0.9, eps: 1e-6, weightDecay: 0.01)
        : RMSProp(count: count, alpha: 0.9, eps: 1e-7)
    }
    var rng = SeededGenerator(seed: 7)
    let start = (0..<n).map { _ in 2 * rng.nextUnitFloat() - 1 }
    let whole = try flatParameters(start)
    let wholeOpt = make(n)
    let singles = try start.map { try flatParameters([$0]) }
    let singleOpts = (0..<n).map { _ in make(1) }
    for step in 0..<5 {
      let g = (0..<n).map { i -> Float in
        i % 7 == 6 ? 0 : (2 * rng.nextUnitFloat() - 1) * Float(step + 1) * [1e-20, 1e-4, 1, 1e3][i % 4]
      }
      _ = whole.grads.update(fromContentsOf: g)
      wholeOpt.step(whole, lr: 0.01)
      for i in 0..<n {
        singles[i].grads[0] = g[i]
        singleOpts[i].step(singles[i], lr: 0.01)
      }
      #expect(whole.flatValues == singles.map { $0.flatValues[0] }, "\(name) step \(step + 1)")
    }
    #expect(whole.flatValues != start)
  }

  /// The vector square root is IEEE 754's, lane by lane: the bits of
  /// `Float.squareRoot()` for zeros of both signs, subnormals, the largest finite
  /// value, infinity, NaN for negative inputs, and random values over many binades.
  @Test func vectorSquareRootHasTheBitsOfTheScalarOne() {
    var rng = SeededGenerator(seed: 5)
    var xs: [Float] = [0, -0.0, .leastNonzeroMagnitude, .leastNormalMagnitude, Float(1e-40 as Double), 1, 2, 4, .greatestFiniteMagnitude, .infinity, -1, -.infinity, .nan]
    while xs.count < 8 * 80 { xs.append(Float(exp(Double(rng.nextUnitFloat() * 170 - 85)))) }
    for start in stride(from: 0, to: xs.count, by: 8) {
      let r = herd_sqrt8(SIMD8<Float>(xs[start..<(start + 8)]))
      for j in 0..<8 {
        let want = xs[start + j].squareRoot()
        #expect(r[j].bitPattern == want.bitPattern || (r[j].isNaN && want.isNaN), "sqrt8(\(xs[start + j]))")
      }
    }
  }

  /// An update applied in ranges (uneven, one of them not a multiple of the vector
  /// width, two at once on two threads) has the bits of one whole step, for every
  /// optimiser and setting; a range outside the parameters is refused before
  /// anything is written.
  @Test(arguments: ["rmsprop", "rmsprop_momentum_centered", "adam"])
  func rangesOnTwoThreadsGiveTheBitsOfOneStep(name: String) throws {
    let n = 45
    var rng = SeededGenerator(seed: 11)
    let start = (0..<n).map { _ in 2 * rng.nextUnitFloat() - 1 }
    func make() -> Optimizer {
      switch name {
      case "rmsprop": return RMSProp(count: n)
      case "rmsprop_momentum_centered": return RMSProp(count: n, momentum: 0.9, centered: true)
      default: return Adam(count: n, beta1: 0.8, beta2: 0.9, eps: 1e-6, weightDecay: 0.01)
      }
    }
    let (whole, split) = (try flatParameters(start), try flatParameters(start))
    let (wholeOpt, splitOpt) = (make(), make())
    for step in 0..<4 {
      let g = (0..<n).map { _ in (2 * rng.nextUnitFloat() - 1) * Float(step + 1) }
      _ = whole.grads.update(fromContentsOf: g)
      _ = split.grads.update(fromContentsOf: g)
      wholeOpt.step(whole, lr: 0.01)
      splitOpt.beginStep(split)
      let ranges = [0..<13, 13..<30, 30..<45]
      // Parameters and optimisers are owned by one thread; these ranges are disjoint.
      nonisolated(unsafe) let (o, p) = (splitOpt, split)
      DispatchQueue.concurrentPerform(iterations: 2) { i in o.apply(p, lr: 0.01, range: ranges[i]) }
      splitOpt.apply(split, lr: 0.01, range: ranges[2])
      #expect(split.flatValues == whole.flatValues, "\(name) step \(step + 1)")
    }
    #expect(splitOpt.stepCount == 4 && whole.flatValues != start)
    let saved = Dictionary(uniqueKeysWithValues: wholeOpt.stateBuffers().map { ($0.name, $0.values) })
    #expect(saved == Dictionary(uniqueKeysWithValues: splitOpt.stateBuffers().map { ($0.name, $0.values) }))
  }

  /// The blocks' squared norms of a vector cut at multiples of the block give the
  /// whole vector's norm bit for bit.
  @Test func blockSquaresOfPartsAddUpToTheNorm() {
    let n = 3 * Kernels.normBlock + 123
    var rng = SeededGenerator(seed: 3)
    let x = (0..<n).map { _ in (2 * rng.nextUnitFloat() - 1) * 1e3 }
    let blocks = 4
    var squares = [Double](repeating: -1, count: blocks)
    x.withPointer { px in
      squares.withUnsafeMutableBufferPointer { sq in
        let cut = 2 * Kernels.normBlock
        Kernels.blockSquares(px + cut, count: n - cut, into: sq.baseAddress! + 2)
        Kernels.blockSquares(px, count: cut, into: sq.baseAddress!)
      }
      #expect(squares.allSatisfy { $0 > 0 })
      let norm = squares.withUnsafeBufferPointer { Kernels.sumOfSquares($0.baseAddress!, blocks: blocks) }.squareRoot()
      #expect(norm == Kernels.norm2(px, count: n))
      let direct = x.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
      #expect(abs(norm - direct) <= 1e-6 * direct)
    }
  }

  @Test func clippingScalesToTheMaximumNormAndReportsTheNormBefore() throws {
    let p = try flatParameters([0, 0, 0])
    _ = p.grads.update(fromContentsOf: [3, 4, 0] as [Float])
    let norm = try GradientClipping.clipGlobalNorm(p.grads, maxNorm: 1)
    #expect(norm == 5)
    #expect(closeness(p.flatGrads, [0.6, 0.8, 0], rtol: 1e-5).ok)
    // Under the maximum: untouched.
    _ = p.grads.update(fromContentsOf: [0.3, 0.4, 0] as [Float])
    #expect(try GradientClipping.clipGlobalNorm(p.grads, maxNorm: 40) == 0.5)
    #expect(p.flatGrads == [0.3, 0.4, 0])
  }

  @Test func nonFiniteGradientIsReportedAndLeftUntouched() throws {
    let p = try flatParameters([0, 0, 0, 0])
    for bad: Float in [.nan, .infinity] {
      _ = p.grads.update(fromContentsOf: [1, bad, 2, 3] as [Float])
      #expect(throws: NNError.self) { try GradientClipping.clipGlobalNorm(p.grads, maxNorm: 1) }
      #expect(p.grads[0] == 1 && p.grads[2] == 2 && p.grads[3] == 3, "not rescaled into garbage")
    }
    // Overflowing squares of finite values must not be mistaken for NaN either.
    _ = p.grads.update(fromContentsOf: [3e30, 4e30, 0, 0] as [Float])
    let norm = try GradientClipping.clipGlobalNorm(p.grads, maxNorm: 1)
    #expect(abs(norm - 5e30) / 5e30 < 1e-5)
  }

  @Test func linearDecayGoesFromInitialToFinal() {
    let d = LinearDecay(initial: 0.01, final: 0, totalSteps: 100)
    #expect(d.rate(at: 0) == 0.01)
    #expect(abs(d.rate(at: 50) - 0.005) < 1e-9)
    #expect(d.rate(at: 100) == 0)
    #expect(d.rate(at: 500) == 0)
    #expect(LinearDecay(initial: 0.3, totalSteps: 0).rate(at: 10) == 0.3)
  }

  @Test func stateRoundTripsThroughRestore() throws {
    let p = try flatParameters([1, 2])
    let a = RMSProp(count: 2, momentum: 0.9, centered: true)
    _ = p.grads.update(fromContentsOf: [0.5, -0.5] as [Float])
    a.step(p, lr: 0.1)
    let b = RMSProp(count: 2, momentum: 0.9, centered: true)
    try b.restore(
      buffers: Dictionary(uniqueKeysWithValues: a.stateBuffers().map { ($0.name, $0.values) }), stepCount: a.stepCount)
    let q = try flatParameters(p.flatValues)
    _ = q.grads.update(fromContentsOf: [0.5, -0.5] as [Float])
    a.step(p, lr: 0.1)
    b.step(q, lr: 0.1)
    #expect(p.flatValues == q.flatValues)
    #expect(throws: NNError.self) { try b.restore(buffers: ["square_avg": [0]], stepCount: 1) }
  }
}
