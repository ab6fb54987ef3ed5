import Foundation
import HerdMath
import HerdNN
import HerdTestSupport
import Testing

@Suite struct LinearTests {
  @Test func agreesWithPyTorch() throws {
    let f = try Fixture("linear")
    var layout = ParameterLayout()
    let layer = Linear("fc", inFeatures: 5, outFeatures: 3, layout: &layout)
    let p = Parameters(layout: layout)
    try p.set("fc.weight", try f.tensor("weight"))
    try p.set("fc.bias", try f.tensor("bias"))
    let x = try f.tensor("x")
    let y = try layer.forward(p, x)
    #expect(closeness(y.scalars, try f.tensor("y").scalars).ok)
    let dx = try layer.backward(p, x: x, gradOutput: try f.tensor("dy"))
    #expect(closeness(dx.scalars, try f.tensor("grad_x").scalars).ok)
    #expect(closeness(try p.gradTensor(named: "fc.weight").scalars, try f.tensor("grad_weight").scalars).ok)
    #expect(closeness(try p.gradTensor(named: "fc.bias").scalars, try f.tensor("grad_bias").scalars).ok)
  }

  @Test(arguments: [(1, 1, 1), (4, 5, 3), (7, 16, 9)])
  func gradientsMatchFiniteDifferences(shape: (Int, Int, Int)) throws {
    let (rows, inp, out) = shape
    var layout = ParameterLayout()
    let layer = Linear("fc", inFeatures: inp, outFeatures: out, layout: &layout)
    var rng = SeededGenerator(seed: UInt64(rows * inp * out))
    let p = Parameters(layout: layout, rng: &rng)
    var x = Tensor(uniform: [rows, inp], using: &rng)
    let w = Tensor(uniform: [rows, out], using: &rng)
    let dx = try layer.backward(p, x: x, gradOutput: w)
    for e in layout.entries {
      let analytic = try p.gradTensor(named: e.name).scalars
      for j in 0..<e.slot.count {
        let numeric = try numericDerivative(p.value(e.slot) + j) {
          weightedSum(try layer.forward(p, x).scalars, w.scalars)
        }
        #expect(gradientAgrees(analytic[j], numeric), "d/d\(e.name)[\(j)]")
      }
    }
    for j in 0..<x.count {
      let saved = x.scalars[j]
      x.scalars[j] = saved + 1e-2
      let plus = weightedSum(try layer.forward(p, x).scalars, w.scalars)
      x.scalars[j] = saved - 1e-2
      let minus = weightedSum(try layer.forward(p, x).scalars, w.scalars)
      x.scalars[j] = saved
      #expect(gradientAgrees(dx.scalars[j], (plus - minus) / 2e-2), "d/dx[\(j)]")
    }
  }

  @Test func rejectsWrongShapes() {
    var layout = ParameterLayout()
    let layer = Linear("fc", inFeatures: 5, outFeatures: 3, layout: &layout)
    let p = Parameters(layout: layout)
    #expect(throws: NNError.shapeMismatch(context: "Linear input", expected: [2, 5], actual: [2, 4])) {
      try layer.forward(p, Tensor(shape: [2, 4]))
    }
    #expect(throws: NNError.self) {
      try layer.backward(p, x: Tensor(shape: [2, 5]), gradOutput: Tensor(shape: [2, 4]))
    }
  }

  @Test func pyTorchDefaultInitialisationBounds() throws {
    var layout = ParameterLayout()
    _ = Linear("fc", inFeatures: 16, outFeatures: 40, layout: &layout)
    var rng = SeededGenerator(seed: 1)
    let p = Parameters(layout: layout, rng: &rng)
    let w = try p.tensor(named: "fc.weight").scalars
    #expect(w.allSatisfy { abs($0) <= 0.25 })
    #expect(w.max()! > 0.2 && w.min()! < -0.2)
  }

  /// `.lastEntries`: the slot as its first initialiser draws it, then its last
  /// entries set; the entries after it start as without it (all draws taken),
  /// for a uniform and an orthogonal first, and for none or all of the slot.
  @Test(arguments: [
    (ParameterInit.uniform(bound: 0.5), 3), (.uniform(bound: 0.5), 0), (.uniform(bound: 0.5), 6),
    (.orthogonal(gain: 1), 2),
  ])
  func lastEntriesOverwriteTheTailOnly(first: ParameterInit, count: Int) throws {
    func values(_ head: ParameterInit) throws -> ([Float], [Float]) {
      var layout = ParameterLayout()
      _ = layout.declare("head", shape: [6], initializer: head)
      _ = layout.declare("next", shape: [2, 3], initializer: .uniform(bound: 1))
      var rng = SeededGenerator(seed: 21)
      let p = Parameters(layout: layout, rng: &rng)
      return (try p.tensor(named: "head").scalars, try p.tensor(named: "next").scalars)
    }
    let (plainHead, plainNext) = try values(first)
    let (head, next) = try values(.lastEntries(first, count: count, value: -2))
    #expect(Array(head.prefix(6 - count)) == Array(plainHead.prefix(6 - count)))
    #expect(head.suffix(count).allSatisfy { $0 == -2 } && plainHead.suffix(count).allSatisfy { $0 != -2 })
    #expect(next == plainNext, "the next entry's draws moved")
  }

  /// `.orthogonal(gain:)` over the first dimension against the rest: rows
  /// orthonormal when they are the fewer, columns otherwise, times the gain.
  @Test(arguments: [[3, 5], [5, 3], [4, 4], [1, 7], [6], [8, 2, 3, 2], [1024, 263]])
  func orthogonalInitialisation(shape: [Int]) throws {
    var layout = ParameterLayout()
    _ = layout.declare("w", shape: shape, initializer: .orthogonal(gain: 1.5))
    var rng = SeededGenerator(seed: 3)
    let p = Parameters(layout: layout, rng: &rng)
    let w = try p.tensor(named: "w").scalars
    let rows = shape.count > 1 ? shape[0] : 1
    let cols = w.count / rows
    let fewer = min(rows, cols)
    func vector(_ i: Int, _ k: Int) -> Double { Double(rows <= cols ? w[i * cols + k] : w[k * cols + i]) }
    var offDiagonal = 0.0
    for i in 0..<fewer {
      for j in 0..<fewer {
        var dot = 0.0
        for k in 0..<max(rows, cols) { dot += vector(i, k) * vector(j, k) }
        #expect(abs(dot - (i == j ? 2.25 : 0)) < 1e-4, "\(shape): <v\(i), v\(j)> = \(dot)")
      }
    }
    // Not a (scaled) identity or permutation: the entries spread over the row.
    for i in 0..<rows { for k in 0..<cols where k != i { offDiagonal += Double(abs(w[i * cols + k])) } }
    #expect(shape.count == 1 || rows * cols == 1 || offDiagonal > 0.1, "\(shape) looks diagonal")
    // The same seed gives the same matrix, another seed another one.
    var same = SeededGenerator(seed: 3)
    var other = SeededGenerator(seed: 4)
    #expect(try Parameters(layout: layout, rng: &same).tensor(named: "w").scalars == w)
    #expect(try Parameters(layout: layout, rng: &other).tensor(named: "w").scalars != w)
  }
}

@Suite struct MLPTests {
  @Test(arguments: Activation.allCases)
  func gradientsMatchFiniteDifferences(activation: Activation) throws {
    var layout = ParameterLayout()
    let mlp = MLP("encoder", inFeatures: 4, hiddenSizes: [6, 5], activation: activation, layout: &layout)
    var rng = SeededGenerator(seed: 9)
    let p = Parameters(layout: layout, rng: &rng)
    let x = Tensor(uniform: [3, 4], using: &rng)
    let w = Tensor(uniform: [3, 5], using: &rng)
    let cache = MLPCache()
    _ = try mlp.forward(p, x, cache: cache)
    let dx = try mlp.backward(p, x: x, gradOutput: w, cache: cache)
    func loss(_ x: Tensor) throws -> Double { weightedSum(try mlp.forward(p, x, cache: MLPCache()).scalars, w.scalars) }
    for e in layout.entries {
      let analytic = try p.gradTensor(named: e.name).scalars
      for j in 0..<e.slot.count {
        let numeric = try numericDerivative(p.value(e.slot) + j) { try loss(x) }
        // relu has kinks: skip points within eps of one (none expected at these values).
        #expect(gradientAgrees(analytic[j], numeric), "\(activation) d/d\(e.name)[\(j)]")
      }
    }
    for j in 0..<x.count {
      var xp = x
      xp.scalars[j] += 1e-2
      var xm = x
      xm.scalars[j] -= 1e-2
      #expect(gradientAgrees(dx.scalars[j], (try loss(xp) - loss(xm)) / 2e-2), "\(activation) d/dx[\(j)]")
    }
  }

  @Test func forwardIsLayersAndActivationsInOrder() throws {
    var layout = ParameterLayout()
    let mlp = MLP("encoder", inFeatures: 3, hiddenSizes: [4, 2], activation: .tanh, layout: &layout)
    #expect(layout.entries.map(\.name) == ["encoder.0.weight", "encoder.0.bias", "encoder.1.weight", "encoder.1.bias"])
    var rng = SeededGenerator(seed: 2)
    let p = Parameters(layout: layout, rng: &rng)
    let x = Tensor(uniform: [5, 3], using: &rng)
    let y = try mlp.forward(p, x, cache: MLPCache())
    func dense(_ x: Tensor, _ i: Int) throws -> Tensor {
      var z = try mlp.layers[i].forward(p, x)
      z.scalars = z.scalars.map { Float(_tanh(Double($0))) }
      return z
    }
    let expected = try dense(try dense(x, 0), 1)
    #expect(closeness(y.scalars, expected.scalars, rtol: 1e-6, atol: 1e-6).ok)
  }

  /// A forward of a few rows (a rollout step) runs on weights packed once per
  /// generation of the parameters and kept in its cache; one of many rows on the
  /// general product. Both give the same bits for the same row, including layers of
  /// at most 16 outputs (narrow panels), odd sizes and one row, and a change to the
  /// weights is packed again. Where the general product is OpenBLAS (its own
  /// AVX-512 kernel: a Zen 4, a Sapphire Rapids), `MLP.forward` keeps no packing and
  /// both run on OpenBLAS, whose bits depend on the row count: the two agree within
  /// float rounding there, and each layer's kept packing is checked against Herd's
  /// general product called directly, bit for bit, on any machine.
  @Test(arguments: [[37, 19, 300], [5, 16, 3], [1, 1], [3872, 256]])
  func fewRowsOnKeptPackingsAreTheGeneralProductsBits(sizes: [Int]) throws {
    var layout = ParameterLayout()
    let mlp = MLP("e", inFeatures: sizes[0], hiddenSizes: Array(sizes.dropFirst()), activation: .relu, layout: &layout)
    var rng = SeededGenerator(seed: UInt64(sizes.reduce(0, +)))
    let p = Parameters(layout: layout, rng: &rng)
    let many = MLP.packedRows + 9
    let x = Tensor(uniform: [many, sizes[0]], using: &rng)
    let few = MLPCache()
    let herdGemm = GemmBackend.active.backend == .herd
    for round in 0..<2 {
      let all = try mlp.forward(p, x, cache: MLPCache()).scalars
      for rows in [1, 7, MLP.packedRows] {
        let part = try Tensor(shape: [rows, sizes[0]], scalars: Array(x.scalars[0..<(rows * sizes[0])]))
        let y = try mlp.forward(p, part, cache: few).scalars
        let differing = zip(y, all).filter { $0.bitPattern != $1.bitPattern }.count
        if herdGemm {
          #expect(differing == 0, "round \(round), \(rows) rows: \(differing) of \(y.count) outputs differ")
        } else {
          let c = closeness(y, Array(all.prefix(y.count)), rtol: 1e-5, atol: 1e-6)
          #expect(c.ok, "round \(round), \(rows) rows on OpenBLAS: \(c)")
        }
        // Each layer on a kept packing against Herd's general product, on any machine.
        for layer in mlp.layers {
          let input = Tensor(uniform: [rows, layer.inFeatures], using: &rng)
          let packing = PackedMatrix(isa: .preferred, narrow: layer.outFeatures <= 16)
          layer.pack(p, into: packing)
          var kept = [Float](repeating: 0, count: rows * layer.outFeatures)
          var general = kept
          let bias = Array(UnsafeBufferPointer(start: p.value(layer.bias), count: layer.outFeatures))
          for r in 0..<rows { general.replaceSubrange(r * layer.outFeatures..<(r + 1) * layer.outFeatures, with: bias) }
          let xs = input.scalars
          xs.withPointer { (px: UnsafePointer<Float>) -> Void in
            kept.withMutablePointer { (y: UnsafeMutablePointer<Float>) -> Void in
              layer.forward(p, x: px, rows: rows, y: y, packed: packing)
            }
            general.withMutablePointer { (c: UnsafeMutablePointer<Float>) -> Void in
              GeneralGemm.multiply(
                .none, .transposed, m: rows, n: layer.outFeatures, k: layer.inFeatures, alpha: 1, a: px,
                lda: layer.inFeatures, b: p.value(layer.weight), ldb: layer.inFeatures, beta: 1, c: c,
                ldc: layer.outFeatures)
            }
          }
          let off = zip(kept, general).filter { $0.bitPattern != $1.bitPattern }.count
          #expect(off == 0, "round \(round), \(rows) rows, layer \(layer.inFeatures) -> \(layer.outFeatures): \(off) differ")
        }
      }
      // New weights (as a worker loads them): the kept packing must not be used.
      var values = p.flatValues
      for i in values.indices { values[i] = -values[i] * 1.5 }
      try p.load(flatValues: values)
    }
  }

  @Test func noHiddenLayersIsTheIdentity() throws {
    var layout = ParameterLayout()
    let mlp = MLP("encoder", inFeatures: 3, hiddenSizes: [], activation: .relu, layout: &layout)
    #expect(layout.count == 0 && mlp.outFeatures == 3)
    let p = Parameters(layout: layout)
    let x = try Tensor(shape: [2, 3], scalars: [1, -2, 3, -4, 5, -6])
    #expect(try mlp.forward(p, x, cache: MLPCache()) == x)
  }
}

func _tanh(_ x: Double) -> Double { Foundation.tanh(x) }
