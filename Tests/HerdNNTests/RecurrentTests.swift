import Foundation
import HerdMath
import HerdNN
import HerdTestSupport
import Testing

@Suite struct RecurrentTests {
  /// (N, T, I, H): includes H not a multiple of 8 (vector tails) and 1x1.
  static let shapes: [(Int, Int, Int, Int)] = [(1, 1, 1, 1), (3, 5, 4, 6), (5, 7, 3, 9), (4, 4, 2, 16), (6, 9, 11, 13)]

  @Test(arguments: CellKind.allCases, [UInt64(1), 2, 3])
  func forwardMatchesStepByStepTextbookReference(kind: CellKind, seed: UInt64) throws {
    for (n, steps, inp, hs) in Self.shapes {
      let (layer, p) = makeRecurrent(kind, input: inp, hidden: hs, seed: seed)
      var rng = SeededGenerator(seed: seed &+ 99)
      // Lengths in arbitrary order, including 0 and T.
      let seqLens = (0..<n).map { i in i == 0 ? steps : Int(rng.next() % UInt64(steps + 1)) }
      var x = Tensor(uniform: [n, steps, inp], using: &rng)
      maskPadding(&x, seqLens: seqLens)
      let h0 = Tensor(uniform: [n, hs], low: -0.8, high: 0.8, using: &rng)
      let c0 = Tensor(uniform: [n, hs], low: -0.8, high: 0.8, using: &rng)
      let state = RecurrentState(h: h0, c: kind == .lstm ? c0 : nil)
      let out = try layer.forward(p, input: x, seqLens: seqLens, initialState: state, cache: RecurrentCache())

      let w = ReferenceRNN.Weights(
        wih: try p.tensor(named: "rnn.weight_ih").scalars, whh: try p.tensor(named: "rnn.weight_hh").scalars,
        bih: try p.tensor(named: "rnn.bias_ih").scalars, bhh: try p.tensor(named: "rnn.bias_hh").scalars)
      var expected = [Float](repeating: 0, count: n * steps * hs)
      var expectedH = [Float]()
      var expectedC = [Float]()
      for i in 0..<n {
        let xs = (0..<seqLens[i]).map { t in (0..<inp).map { Double(x[i, t, $0]) } }
        let hi = (0..<hs).map { Double(h0[i, $0]) }
        let ci = (0..<hs).map { Double(c0[i, $0]) }
        let outs: [[Double]]
        if kind == .lstm {
          let r = ReferenceRNN.lstm(w, xs: xs, h0: hi, c0: ci, hidden: hs)
          outs = r.outputs
          expectedH += r.h.map(Float.init)
          expectedC += r.c.map(Float.init)
        } else {
          let r = ReferenceRNN.gru(w, xs: xs, h0: hi, hidden: hs)
          outs = r.outputs
          expectedH += r.h.map(Float.init)
        }
        for (t, h) in outs.enumerated() { for k in 0..<hs { expected[(i * steps + t) * hs + k] = Float(h[k]) } }
      }
      let shape = "N\(n) T\(steps) I\(inp) H\(hs) lens \(seqLens)"
      let r = closeness(out.output.scalars, expected, rtol: 1e-5, atol: 2e-6)
      #expect(r.ok, "\(kind) outputs \(shape): \(r)")
      #expect(closeness(out.final.h.scalars, expectedH, rtol: 1e-5, atol: 2e-6).ok, "\(kind) final h \(shape)")
      if kind == .lstm {
        let finalC = out.final.c?.scalars ?? []
        let rc = closeness(finalC, expectedC, rtol: 1e-5, atol: 2e-6)
        #expect(rc.ok, "final c \(shape): \(rc)")
      }
    }
  }

  /// Finite differences of every parameter, input and initial-state gradient, on each
  /// kernel this machine has (the 8-wide one forced on an AVX-512 machine too), for
  /// lengths of 0 and 1, one sequence, and sizes that are not multiples of the vector
  /// width or the register tile.
  @Test(
    arguments: CellKind.allCases,
    [
      FDShape(n: 4, steps: 5, input: 3, hidden: 5, seqLens: [5, 2, 0, 4]),
      FDShape(n: 1, steps: 1, input: 2, hidden: 3, seqLens: [1]),
      FDShape(n: 7, steps: 3, input: 17, hidden: 9, seqLens: [3, 1, 2, 0, 3, 1, 2]),
    ])
  func gradientsMatchFiniteDifferences(kind: CellKind, shape: FDShape) throws {
    for isa in everyKernel {
      try checkGradients(kind: kind, shape: shape, isa: isa)
    }
  }

  struct FDShape: Sendable, CustomTestStringConvertible {
    let n, steps, input, hidden: Int
    let seqLens: [Int]
    var testDescription: String { "N=\(n) T=\(steps) I=\(input) H=\(hidden) lens \(seqLens)" }
  }

  func checkGradients(kind: CellKind, shape: FDShape, isa: KernelISA) throws {
    let (n, steps, inp, hs) = (shape.n, shape.steps, shape.input, shape.hidden)
    let seqLens = shape.seqLens
    let (layer, p) = makeRecurrent(kind, input: inp, hidden: hs, seed: 11)
    var rng = SeededGenerator(seed: 12)
    var x = Tensor(uniform: [n, steps, inp], using: &rng)
    maskPadding(&x, seqLens: seqLens)
    let state = RecurrentState(
      h: Tensor(uniform: [n, hs], low: -0.9, high: 0.9, using: &rng),
      c: kind == .lstm ? Tensor(uniform: [n, hs], low: -0.9, high: 0.9, using: &rng) : nil)
    var w = Tensor(uniform: [n, steps, hs], using: &rng)
    maskPadding(&w, seqLens: seqLens)

    let cache = RecurrentCache(isa: isa)
    p.zeroGrads()
    _ = try layer.forward(p, input: x, seqLens: seqLens, initialState: state, cache: cache)
    let grads = try layer.backward(p, gradOutput: w, cache: cache)

    // Parameters: every scalar of every tensor.
    for entry in p.layout.entries {
      let analytic = try p.gradTensor(named: entry.name).scalars
      for j in 0..<entry.slot.count {
        let numeric = try numericDerivative(p.value(entry.slot) + j) {
          weightedSum(
            try layer.forward(p, input: x, seqLens: seqLens, initialState: state, cache: RecurrentCache(isa: isa)).output
              .scalars, w.scalars)
        }
        #expect(gradientAgrees(analytic[j], numeric), "\(kind) \(isa) d/d\(entry.name)[\(j)]: \(analytic[j]) vs \(numeric)")
      }
    }
    // Inputs and initial states.
    func lossWith(_ x: Tensor, _ s: RecurrentState) throws -> Double {
      weightedSum(
        try layer.forward(p, input: x, seqLens: seqLens, initialState: s, cache: RecurrentCache(isa: isa)).output.scalars,
        w.scalars)
    }
    for j in 0..<x.count where seqLens[j / (steps * inp)] > (j / inp) % steps {
      var xv = x
      let numeric = try xv.scalars.withMutablePointer { px in
        try numericDerivative(px + j) {
          try lossWith(Tensor(shape: x.shape, scalars: Array(UnsafeBufferPointer(start: px, count: x.count))), state)
        }
      }
      #expect(gradientAgrees(grads.input.scalars[j], numeric), "\(kind) \(isa) d/dx[\(j)]")
    }
    // Padding gets exactly zero gradient.
    for i in 0..<n { for t in seqLens[i]..<steps { for k in 0..<inp { #expect(grads.input[i, t, k] == 0) } } }
    for j in 0..<(n * hs) {
      var s = state
      s.h.scalars[j] += 1e-2
      let plus = try lossWith(x, s)
      s.h.scalars[j] -= 2e-2
      let minus = try lossWith(x, s)
      #expect(gradientAgrees(grads.initialState.h.scalars[j], (plus - minus) / 2e-2), "\(kind) d/dh0[\(j)]")
      if kind == .lstm, var c = state.c {
        var sc = state
        c.scalars[j] += 1e-2
        sc.c = c
        let cplus = try lossWith(x, sc)
        c.scalars[j] -= 2e-2
        sc.c = c
        let cminus = try lossWith(x, sc)
        #expect(gradientAgrees(grads.initialState.c?.scalars[j] ?? .nan, (cplus - cminus) / 2e-2), "d/dc0[\(j)]")
      }
    }
  }

  @Test(arguments: CellKind.allCases)
  func agreesWithPyTorch(kind: CellKind) throws {
    let f = try Fixture(kind.rawValue)
    let inp = Int(try f.number("input_size"))
    let hs = Int(try f.number("hidden_size"))
    let seqLens = try f.ints("seq_lens")
    let (layer, p) = makeRecurrent(kind, input: inp, hidden: hs, seed: 0)
    for name in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] { try p.set("rnn.\(name)", try f.tensor(name)) }
    let state = RecurrentState(h: try f.tensor("h0"), c: kind == .lstm ? try f.tensor("c0") : nil)
    let cache = RecurrentCache()
    p.zeroGrads()
    let out = try layer.forward(p, input: try f.tensor("x"), seqLens: seqLens, initialState: state, cache: cache)
    let grads = try layer.backward(p, gradOutput: try f.tensor("dy"), cache: cache)
    func check(_ actual: [Float], _ key: String) throws {
      let r = closeness(actual, try f.tensor(key).scalars, rtol: 1e-5, atol: 1e-6)
      #expect(r.ok, "\(kind) \(key): \(r)")
    }
    try check(out.output.scalars, "y")
    try check(out.final.h.scalars, "hn")
    try check(grads.input.scalars, "grad_x")
    try check(grads.initialState.h.scalars, "grad_h0")
    for name in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] {
      try check(try p.gradTensor(named: "rnn.\(name)").scalars, "grad_\(name)")
    }
    if kind == .lstm {
      try check(out.final.c?.scalars ?? [], "cn")
      try check(grads.initialState.c?.scalars ?? [], "grad_c0")
    }
  }

  /// A rollout (one step at a time for K rows) and the training forward over the same
  /// K sequences give identical bits: what the worker acted on is what the learner
  /// recomputes. This holds with uneven lengths too, where the training side runs
  /// fewer rows at later steps than the rollout's K: each product's element depends
  /// on its own row only (``PackedMatrix``). Checked on each kernel this machine has.
  @Test(arguments: CellKind.allCases, [(4, 6, 3, 5), (32, 20, 67, 256), (8, 12, 10, 64), (13, 5, 7, 19), (1, 1, 1, 1)])
  func rolloutStepMatchesTheSequenceForward(kind: CellKind, shape: (Int, Int, Int, Int)) throws {
    for isa in everyKernel { try checkRollout(kind: kind, shape: shape, isa: isa) }
  }

  func checkRollout(kind: CellKind, shape: (Int, Int, Int, Int), isa: KernelISA) throws {
    let (k, steps, inp, hs) = shape
    let (layer, p) = makeRecurrent(kind, input: inp, hidden: hs, seed: 5)
    var rng = SeededGenerator(seed: 6)
    let uneven = (0..<k).map { _ in 1 + Int(rng.next() % UInt64(steps)) }
    for seqLens in [[Int](repeating: steps, count: k), uneven] {
      var x = Tensor(uniform: [k, steps, inp], using: &rng)
      maskPadding(&x, seqLens: seqLens)
      let h0 = Tensor(uniform: [k, hs], using: &rng)
      let c0 = Tensor(uniform: [k, hs], using: &rng)
      let out = try layer.forward(
        p, input: x, seqLens: seqLens, initialState: RecurrentState(h: h0, c: kind == .lstm ? c0 : nil),
        cache: RecurrentCache(isa: isa))
      var h = h0.scalars
      var c = c0.scalars
      let cache = RecurrentCache(isa: isa)
      var rolled = [Float]()
      var trained = [Float]()
      for t in 0..<steps {
        let xt = (0..<k).flatMap { i in (0..<inp).map { x[i, t, $0] } }
        xt.withPointer { px in
          h.withMutablePointer { ph in
            c.withMutablePointer { pc in
              layer.step(p, x: px, rows: k, h: ph, c: kind == .lstm ? pc : nil, cache: cache)
            }
          }
        }
        for i in 0..<k where t < seqLens[i] {
          rolled += h[(i * hs)..<((i + 1) * hs)]
          trained += (0..<hs).map { out.output[i, t, $0] }
        }
      }
      let differing = zip(rolled, trained).filter { $0.bitPattern != $1.bitPattern }.count
      #expect(differing == 0, "\(kind) \(isa) \(shape) lens \(seqLens): \(differing) of \(rolled.count) outputs differ in their bits")
    }
  }

  /// A rollout step reuses its packed weights only while they are current: after
  /// `load`, an optimiser step, or with other `Parameters`, it gives what a fresh
  /// cache gives.
  @Test(arguments: CellKind.allCases)
  func aRolloutStepRepacksAfterNewWeights(kind: CellKind) throws {
    let (layer, p) = makeRecurrent(kind, input: 3, hidden: 5, seed: 1)
    let (_, q) = makeRecurrent(kind, input: 3, hidden: 5, seed: 2)
    var rng = SeededGenerator(seed: 3)
    let x = randomArray(2 * 3, rng: &rng)
    func step(_ params: Parameters, _ cache: RecurrentCache) -> [Float] {
      var h = [Float](repeating: 0.1, count: 2 * 5)
      var c = [Float](repeating: -0.2, count: 2 * 5)
      x.withPointer { px in
        h.withMutablePointer { ph in
          c.withMutablePointer { pc in layer.step(params, x: px, rows: 2, h: ph, c: kind == .lstm ? pc : nil, cache: cache) }
        }
      }
      return h
    }
    let cache = RecurrentCache()
    let before = step(p, cache)
    #expect(step(p, cache) == before)
    #expect(step(q, cache) == step(q, RecurrentCache()), "other Parameters")
    try p.load(flatValues: q.flatValues.map { $0 * 0.5 })
    let loaded = step(p, cache)
    #expect(loaded == step(p, RecurrentCache()), "after load")
    #expect(loaded != before)
    for i in 0..<p.count { p.grads[i] = 0.01 }
    RMSProp(count: p.count).step(p, lr: 0.1)
    #expect(step(p, cache) == step(p, RecurrentCache()), "after an optimiser step")
  }

  /// Backward without the initial-state gradients (the learner's call: `dh0` and
  /// `dc0` nil, so the carry product at t = 0 is skipped) gives the parameter and
  /// input gradients bit for bit as the full backward does; checked on each kernel
  /// this machine has, with uneven lengths, one sequence and one step.
  @Test(arguments: CellKind.allCases)
  func backwardWithoutStateGradientsChangesNoOtherBits(kind: CellKind) throws {
    for isa in everyKernel {
      for (n, steps, inp, hs, seqLens) in [
        (5, 6, 7, 13, [6, 2, 6, 1, 4]), (1, 1, 3, 5, [1]), (3, 2, 4, 9, [2, 2, 2]),
        (32, 4, 11, 24, [Int](repeating: 4, count: 32)),
      ] {
        let (layer, p) = makeRecurrent(kind, input: inp, hidden: hs, seed: 21)
        var rng = SeededGenerator(seed: 22)
        let packing = try PackedSequences(seqLens: seqLens, maxLength: steps)
        let rows = packing.rowCount
        let x = randomArray(rows * inp, rng: &rng)
        let dH = randomArray(rows * hs, rng: &rng)
        let h0 = randomArray(n * hs, rng: &rng)
        let c0 = randomArray(n * hs, rng: &rng)
        let cache = RecurrentCache(isa: isa)
        func gradients(withState: Bool) -> (params: [Float], dx: [Float], dh0: [Float]) {
          p.zeroGrads()
          var dx = [Float](repeating: .nan, count: rows * inp)
          var dh0 = [Float](repeating: 0, count: n * hs)
          var dc0 = [Float](repeating: 0, count: n * hs)
          x.withPointer { px in
            dH.withPointer { pdH in
              dx.withMutablePointer { pdx in
                dh0.withMutablePointer { ph in
                  dc0.withMutablePointer { pc in
                    h0.withPointer { ph0 in
                      c0.withPointer { pc0 in
                        layer.forward(
                          p, x: px, packing: packing, h0: ph0, c0: kind == .lstm ? pc0 : nil, cache: cache)
                      }
                    }
                    layer.backward(
                      p, x: px, dH: pdH, cache: cache, dx: pdx, dh0: withState ? ph : nil,
                      dc0: withState && kind == .lstm ? pc : nil)
                  }
                }
              }
            }
          }
          return (p.flatGrads, dx, dh0)
        }
        let full = gradients(withState: true)
        let learner = gradients(withState: false)
        let shape = "\(kind) \(isa) N\(n) T\(steps) I\(inp) H\(hs) lens \(seqLens)"
        #expect(full.dh0.contains { $0 != 0 }, "\(shape): the full backward writes dh0")
        let params = zip(full.params, learner.params).filter { $0.bitPattern != $1.bitPattern }.count
        let inputs = zip(full.dx, learner.dx).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(params == 0, "\(shape): \(params) of \(p.count) parameter gradients differ")
        #expect(inputs == 0, "\(shape): \(inputs) of \(rows * inp) input gradients differ")
      }
    }
  }

  @Test(arguments: CellKind.allCases)
  func badInputsAreErrorsNotCrashes(kind: CellKind) throws {
    let (layer, p) = makeRecurrent(kind, input: 3, hidden: 4, seed: 1)
    let cache = RecurrentCache()
    #expect(throws: NNError.self) {
      try layer.forward(p, input: Tensor(shape: [2, 5, 4]), seqLens: [5, 5], cache: cache)
    }
    #expect(throws: NNError.self) {
      try layer.forward(p, input: Tensor(shape: [2, 5, 3]), seqLens: [5], cache: cache)
    }
    #expect(throws: NNError.badSequenceLength(index: 1, length: 6, maxLength: 5)) {
      try layer.forward(p, input: Tensor(shape: [2, 5, 3]), seqLens: [5, 6], cache: cache)
    }
    #expect(throws: NNError.self) {
      try layer.forward(
        p, input: Tensor(shape: [2, 5, 3]), seqLens: [5, 1],
        initialState: RecurrentState(h: Tensor(shape: [2, 5])), cache: cache)
    }
    #expect(throws: NNError.self) { try layer.backward(p, gradOutput: Tensor(shape: [1]), cache: RecurrentCache()) }
    _ = try layer.forward(p, input: Tensor(shape: [2, 5, 3]), seqLens: [5, 1], cache: cache)
    #expect(throws: NNError.self) { try layer.backward(p, gradOutput: Tensor(shape: [2, 5, 3]), cache: cache) }
  }

  @Test func lstmWithoutCellStateIsRejected() {
    let (layer, p) = makeRecurrent(.lstm, input: 3, hidden: 4, seed: 1)
    #expect(throws: NNError.self) {
      try layer.forward(
        p, input: Tensor(shape: [2, 5, 3]), seqLens: [5, 1],
        initialState: RecurrentState(h: Tensor(shape: [2, 4])), cache: RecurrentCache())
    }
  }

  @Test func initialisationFollowsPyTorchBounds() throws {
    let (_, p) = makeRecurrent(.lstm, input: 10, hidden: 25, seed: 3)
    for e in p.layout.entries {
      let v = try p.tensor(named: e.name).scalars
      #expect(v.allSatisfy { abs($0) <= 0.2 }, "\(e.name) within 1/sqrt(25)")
      #expect(v.contains { abs($0) > 0.15 }, "\(e.name) spreads over the range")
    }
  }
}
