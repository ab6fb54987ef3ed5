import Foundation
import HerdMath
@testable import HerdNN
import HerdTestSupport
import Testing

/// The direct definition of a convolution, in Double: forward and the three
/// gradients, for checking the lowered (im2col) implementation.
private struct DirectConv {
  let conv: Conv2D
  let n: Int

  func inputIndex(_ img: Int, _ y: Int, _ x: Int, _ c: Int) -> Int {
    ((img * conv.input.height + y) * conv.input.width + x) * conv.input.channels + c
  }

  /// Calls `body(outIndex, weightIndex, inputIndex)` for every multiply-add.
  func forEachTerm(_ body: (Int, Int, Int) -> Void) {
    let i = conv.input, o = conv.output
    for img in 0..<n {
      for oy in 0..<o.height {
        for ox in 0..<o.width {
          for oc in 0..<o.channels {
            let out = ((img * o.height + oy) * o.width + ox) * o.channels + oc
            for ky in 0..<conv.kernelHeight {
              for kx in 0..<conv.kernelWidth {
                let iy = oy * conv.stride - conv.padding + ky
                let ix = ox * conv.stride - conv.padding + kx
                guard iy >= 0, iy < i.height, ix >= 0, ix < i.width else { continue }
                for c in 0..<i.channels {
                  let w = ((oc * conv.kernelHeight + ky) * conv.kernelWidth + kx) * i.channels + c
                  body(out, w, inputIndex(img, iy, ix, c))
                }
              }
            }
          }
        }
      }
    }
  }
}

@Suite struct ConvTests {
  /// (images, H, W, C, outC, kernel, stride, padding): odd sizes, strides that do
  /// not divide, padding wider than the stride, a pointwise kernel, a kernel as
  /// large as the padded image, one image, and rows enough for several lowered
  /// chunks whose boundaries fall inside images. With stride 1 the input gradient
  /// is a convolution of `dy` padded by `k - 1 - p`: 1 to 7 here, and 0 (read in
  /// place) for the 3x3 kernel with padding 2; a 1x1 kernel with padding 1 keeps
  /// the scatter.
  static let shapes: [(Int, Int, Int, Int, Int, Int, Int, Int)] = [
    (1, 1, 1, 1, 1, 1, 1, 0),
    (2, 7, 5, 3, 4, 3, 2, 1),
    (3, 9, 9, 2, 3, 4, 3, 0),
    (1, 6, 8, 5, 7, 1, 1, 0),
    (2, 5, 6, 3, 2, 7, 1, 1),
    (2, 4, 4, 3, 5, 3, 1, 2),
    (2, 22, 22, 64, 3, 8, 1, 0),
    // Kernels a whole number of strides, no padding: the Atari first layer over
    // three images, odd sizes whose last pixels no window reaches, output channels
    // below 16 with a column tail (narrow panels), above 32 with a tail, a kernel
    // equal to its stride, a 1x1 output of one image, and the 4x4/2 layer over 13
    // images.
    (3, 84, 84, 4, 16, 8, 4, 0),
    (2, 11, 13, 3, 5, 4, 2, 0),
    (2, 9, 10, 2, 33, 6, 3, 0),
    (2, 5, 7, 3, 4, 5, 5, 0),
    (1, 3, 3, 2, 3, 3, 1, 0),
    (13, 20, 20, 16, 32, 4, 2, 0),
    // With padding (the image copied inside a zero border): impala_deep's 3x3/1
    // pad 1 over 13 images of 11x9x16, a 4x4/2 kernel with padding 1 whose windows
    // straddle the edge, and a 1x1 kernel with padding.
    (13, 11, 9, 16, 16, 3, 1, 1),
    // Stride 1 with more than 32 input channels (the input gradient's 33 columns: a
    // tail on the wide panels) and outC 20.
    (3, 10, 7, 33, 20, 3, 1, 1),
    (2, 9, 8, 3, 5, 4, 2, 1),
    (2, 3, 4, 2, 3, 1, 1, 1),
  ]

  @Test(arguments: shapes)
  func convolutionMatchesTheDirectDefinition(shape: (Int, Int, Int, Int, Int, Int, Int, Int)) throws {
    let (n, h, w, c, oc, k, s, pad) = shape
    var layout = ParameterLayout()
    let conv = Conv2D(
      "c", input: ImageShape(height: h, width: w, channels: c), outChannels: oc, kernel: (k, k), stride: s,
      padding: pad, layout: &layout)
    // Which path runs: a 1x1/1 kernel without padding is a plain product; every
    // other layer runs directly on its image.
    #expect(conv.runsDirect == !(k == 1 && s == 1 && pad == 0), "path")
    var rng = SeededGenerator(seed: UInt64(h * 1000 + w * 10 + k))
    let p = Parameters(layout: layout, rng: &rng)
    let x = randomArray(n * conv.input.count, rng: &rng)
    let dy = randomArray(n * conv.output.count, rng: &rng)
    // Direct, in Double.
    let direct = DirectConv(conv: conv, n: n)
    let wv = Array(UnsafeBufferPointer(start: p.value(conv.weight), count: conv.weight.count))
    let bv = Array(UnsafeBufferPointer(start: p.value(conv.bias), count: oc))
    var y = (0..<(n * conv.output.count)).map { Double(bv[$0 % oc]) }
    var dW = [Double](repeating: 0, count: wv.count)
    var dx = [Double](repeating: 0, count: x.count)
    direct.forEachTerm { o, wi, xi in
      y[o] += Double(wv[wi]) * Double(x[xi])
      dW[wi] += Double(dy[o]) * Double(x[xi])
      dx[xi] += Double(dy[o]) * Double(wv[wi])
    }
    var db = [Double](repeating: 0, count: oc)
    for (j, g) in dy.enumerated() { db[j % oc] += Double(g) }
    // Every kernel's products (the AVX-512 one also where it only runs emulated).
    for isa in everyKernel {
      p.zeroGrads()
      // Lowered.
      var got = [Float](repeating: 0, count: y.count)
      var gotDx = [Float](repeating: 7, count: x.count)  // overwritten, not added to
      let scratch = ConvScratch(isa: isa)
      x.withPointer { px in
        got.withUnsafeMutableBufferPointer {
          conv.forward(p, x: px, images: n, y: $0.baseAddress!, scratch: scratch)
        }
        dy.withPointer { pdy in
          gotDx.withUnsafeMutableBufferPointer {
            conv.backward(p, x: px, dy: pdy, images: n, dx: $0.baseAddress!, scratch: scratch)
          }
        }
      }
      let tol = (rtol: 1e-4, atol: 1e-4)
      #expect(closeness(got, y.map(Float.init), rtol: tol.rtol, atol: tol.atol).ok, "\(isa) forward")
      #expect(closeness(gotDx, dx.map(Float.init), rtol: tol.rtol, atol: tol.atol).ok, "\(isa) dx")
      #expect(
        closeness(try p.gradTensor(named: "c.weight").scalars, dW.map(Float.init), rtol: tol.rtol, atol: tol.atol).ok,
        "\(isa) dW")
      #expect(closeness(try p.gradTensor(named: "c.bias").scalars, db.map(Float.init), rtol: tol.rtol, atol: tol.atol).ok, "\(isa) db")
      // Without dx the parameter gradients are the same (they accumulate: twice now).
      x.withPointer { px in
        dy.withPointer { pdy in conv.backward(p, x: px, dy: pdy, images: n, dx: nil, scratch: scratch) }
      }
      #expect(
        closeness(try p.gradTensor(named: "c.weight").scalars, dW.map { Float(2 * $0) }, rtol: tol.rtol, atol: tol.atol).ok,
        "\(isa) dW accumulates")
      // Through an activation whose output is x: dx as if the activation's backward
      // ran after, bit for bit (each image's as it completes; the chunks of the
      // 4x4/2 layer over 13 images end inside images).
      for act in [Activation.relu, .tanh] {
        var expected = gotDx
        expected.withMutablePointer { e in x.withPointer { act.backward(output: $0, gradOutput: e, gradInput: e, count: x.count) } }
        var through = [Float](repeating: 7, count: x.count)
        x.withPointer { px in
          dy.withPointer { pdy in
            through.withMutablePointer {
              conv.backward(p, x: px, dy: pdy, images: n, dx: $0, scratch: scratch, through: act)
            }
          }
        }
        let differs = through.indices.first { through[$0].bitPattern != expected[$0].bitPattern }
        #expect(differs == nil, "\(isa) dx through \(act): first differs at \(differs ?? -1)")
      }
      // The lowered rows (`HERD_CONV_IM2COL=1`, and the reference path) on the same
      // floats.
      guard conv.runsDirect else { continue }
      var lowered = [Float](repeating: 0, count: y.count)
      p.zeroGrads()
      x.withPointer { px in
        lowered.withMutablePointer { conv.forwardLowered(p, x: px, scale: 1, images: n, y: $0, scratch: scratch) }
        dy.withPointer { pdy in
          conv.backwardLowered(p, x: px, scale: 1, dy: pdy, images: n, dx: nil, scratch: scratch)
        }
      }
      #expect(closeness(lowered, y.map(Float.init), rtol: tol.rtol, atol: tol.atol).ok, "\(isa) forward, lowered")
      #expect(
        closeness(try p.gradTensor(named: "c.weight").scalars, dW.map(Float.init), rtol: tol.rtol, atol: tol.atol).ok,
        "\(isa) dW, lowered")
    }
  }

  @Test func maxPoolTakesTheFirstMaximumAndIgnoresPadding() {
    // One 3x4 image, 2 channels; channel 1 is constant so every window ties.
    let input = ImageShape(height: 3, width: 4, channels: 2)
    let pool = MaxPool2D(input: input, kernel: 3, stride: 2, padding: 1)
    #expect(pool.output == ImageShape(height: 2, width: 2, channels: 2))
    var x = [Float](repeating: -5, count: input.count)  // negative: padding as 0 would win
    for yy in 0..<3 {
      for xx in 0..<4 { x[(yy * 4 + xx) * 2] = Float(-(yy * 4 + xx)) - 1 }
    }
    var y = [Float](repeating: 0, count: pool.output.count)
    var arg = [Int32](repeating: 0, count: pool.output.count)
    x.withPointer { px in
      y.withUnsafeMutableBufferPointer { py in
        arg.withUnsafeMutableBufferPointer { pool.forward(x: px, images: 1, y: py.baseAddress!, argmax: $0.baseAddress!) }
      }
    }
    // Channel 0: each window's top-left real pixel is its largest (values fall row-major).
    // Windows: rows {0,1} / {1,2}, columns {0,1} / {1,2,3}.
    #expect(y[0] == -1 && y[2] == -2 && y[4] == -5 && y[6] == -6, "\(y)")
    // Channel 1 ties everywhere: the first pixel of the window wins.
    #expect(y[1] == -5 && arg[1] == 1 && arg[3] == 3 && arg[5] == 4 * 2 + 1 && arg[7] == 5 * 2 + 1, "\(arg)")
    // Backward routes each gradient to its argmax, overlapping windows add.
    let dy: [Float] = [1, 10, 2, 20, 3, 30, 4, 40]
    var dx = [Float](repeating: 9, count: input.count)
    dy.withPointer { pdy in
      arg.withUnsafeBufferPointer { pa in
        dx.withUnsafeMutableBufferPointer { pool.backward(dy: pdy, argmax: pa.baseAddress!, images: 1, dx: $0.baseAddress!) }
      }
    }
    var expected = [Float](repeating: 0, count: input.count)
    for j in 0..<8 { expected[Int(arg[j])] += dy[j] }
    #expect(dx == expected)
    #expect(dx[0] == 1 && dx[2] == 2 && dx[8] == 3 && dx[10] == 4 && dx[1] == 10 && dx[3] == 20)
  }

  /// Channels in vectors of 8 and a scalar tail (19 = 8 + 8 + 3) against the rule
  /// written out per channel: the first maximum in row-major window order, a NaN
  /// taken wherever it appears (the last NaN wins), padding never. Values are drawn
  /// from a few levels so windows tie often; some are NaN.
  @Test(arguments: [(2, 7, 9, 19, 3, 2, 1), (1, 6, 6, 16, 2, 2, 0), (2, 5, 4, 8, 3, 1, 1), (1, 4, 5, 5, 3, 2, 1)])
  func maxPoolMatchesTheRuleOnEveryChannel(shape: (Int, Int, Int, Int, Int, Int, Int)) {
    let (n, h, w, c, k, s, pad) = shape
    let input = ImageShape(height: h, width: w, channels: c)
    let pool = MaxPool2D(input: input, kernel: k, stride: s, padding: pad)
    var rng = SeededGenerator(seed: UInt64(h * 100 + c))
    let x: [Float] = (0..<(n * input.count)).map { _ in
      let r = Int(rng.next() % 50)
      return r == 0 ? .nan : Float(r % 4) - 2
    }
    var y = [Float](repeating: 0, count: n * pool.output.count)
    var arg = [Int32](repeating: -1, count: n * pool.output.count)
    x.withPointer { px in
      y.withUnsafeMutableBufferPointer { py in
        arg.withUnsafeMutableBufferPointer {
          pool.forward(x: px, images: n, y: py.baseAddress!, argmax: $0.baseAddress!)
        }
      }
    }
    var mismatches: [String] = []
    for image in 0..<n {
      for oy in 0..<pool.output.height {
        for ox in 0..<pool.output.width {
          for ch in 0..<c {
            var best: Float? = nil
            var at = -1
            for iy in (oy * s - pad)..<(oy * s - pad + k) where iy >= 0 && iy < h {
              for ix in (ox * s - pad)..<(ox * s - pad + k) where ix >= 0 && ix < w {
                let i = (iy * w + ix) * c + ch
                let v = x[image * input.count + i]
                if best == nil || v > best! || v.isNaN { (best, at) = (v, i) }
              }
            }
            let o = image * pool.output.count + (oy * pool.output.width + ox) * c + ch
            let same = (y[o].isNaN && best!.isNaN) || y[o] == best!
            if !same || Int(arg[o]) != at {
              mismatches.append("image \(image) (\(oy), \(ox)) ch \(ch): \(y[o])@\(arg[o]) vs \(best!)@\(at)")
            }
          }
        }
      }
    }
    #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
    #expect(x.contains { $0.isNaN } && y.contains { $0.isNaN }, "the draw should put a NaN in some window")
  }

  static func specs(_ f: Fixture) throws -> [ConvLayerSpec] {
    guard let layers = f.object["layers"] as? [[Any]] else { throw FixtureError.missing("layers") }
    return try layers.map { l in
      let ints = l.dropFirst().compactMap { $0 as? Int }
      switch l.first as? String {
      case "conv": return .conv(outChannels: ints[0], kernel: ints[1], stride: ints[2], padding: ints[3])
      case "pool": return .maxPool(kernel: ints[0], stride: ints[1], padding: ints[2])
      case "res": return .residual
      case "relu": return .activation
      default: throw FixtureError.missing("layer \(l)")
      }
    }
  }

  @Test(arguments: ["mixed", "shallow", "deep_stage"])
  func stacksAgreeWithPyTorch(name: String) throws {
    let f = try Fixture("conv_\(name)")
    let hwc = try f.ints("input")
    var layout = ParameterLayout()
    let net = try ConvNet(
      "conv", input: ImageShape(height: hwc[0], width: hwc[1], channels: hwc[2]), specs: try Self.specs(f),
      activation: .relu, layout: &layout)
    let p = Parameters(layout: layout)
    guard let params = f.object["params"] as? [String: [String: Any]] else { throw FixtureError.missing("params") }
    #expect(Set(params.keys) == Set(layout.entries.map(\.name)), "parameter names")
    for (key, entry) in params {
      try p.set(key, try Fixture.tensor(from: entry["value"] as Any, key))
    }
    let cache = ConvNetCache()
    let x = try f.tensor("x")
    let y = try net.forward(p, x, cache: cache)
    #expect(closeness(y.scalars, try f.tensor("y").scalars, rtol: 1e-4, atol: 1e-5).ok, "forward")
    let dx = try net.backward(p, x: x, gradOutput: try f.tensor("dy"), cache: cache)
    #expect(closeness(dx.scalars, try f.tensor("grad_x").scalars, rtol: 1e-4, atol: 1e-5).ok, "grad x")
    for (key, entry) in params {
      let expected = try Fixture.tensor(from: entry["grad"] as Any, key)
      let c = closeness(try p.gradTensor(named: key).scalars, expected.scalars, rtol: 1e-4, atol: 1e-4)
      #expect(c.ok, "grad \(key): \(c)")
    }
  }

  /// Stacks for the finite-difference checks: each layer kind alone, then all together.
  static let fdStacks: [String: [ConvLayerSpec]] = [
    "conv+act": [.conv(outChannels: 3, kernel: 3, stride: 2, padding: 1), .activation],
    "pool": [.conv(outChannels: 3, kernel: 2, stride: 1, padding: 0), .maxPool(kernel: 3, stride: 2, padding: 1)],
    "residual": [.residual],
    "all": [
      .conv(outChannels: 3, kernel: 3, stride: 1, padding: 1), .activation, .maxPool(kernel: 3, stride: 2, padding: 1),
      .residual, .activation, .conv(outChannels: 2, kernel: 2, stride: 2, padding: 0),
    ],
    "fused": [
      .conv(outChannels: 3, kernel: 3, stride: 1, padding: 1), .activation,
      .conv(outChannels: 4, kernel: 1, stride: 1, padding: 0), .activation,
      .conv(outChannels: 3, kernel: 3, stride: 1, padding: 1), .activation,
      .conv(outChannels: 2, kernel: 3, stride: 2, padding: 1),
    ],
  ]

  /// Every parameter and input gradient of each stack by central differences.
  /// "fused": each convolution after an activation hands its input gradient back
  /// through it, on each path: pointwise, the direct stride-1 one, and the scatter of
  /// a strided layer.
  @Test(arguments: ["conv+act", "pool", "residual", "all", "fused"], [Activation.tanh, .relu])
  func stackGradientsMatchFiniteDifferences(stack: String, activation: Activation) throws {
    let input = ImageShape(height: 7, width: 6, channels: 2)
    var layout = ParameterLayout()
    let net = try ConvNet("conv", input: input, specs: Self.fdStacks[stack]!, activation: activation, layout: &layout)
    var rng = SeededGenerator(seed: activation == .tanh ? 11 : 12)
    let p = Parameters(layout: layout, rng: &rng)
    let n = 2
    var x = Tensor(uniform: [n, input.height, input.width, input.channels], using: &rng)
    let cache = ConvNetCache()
    let y0 = try net.forward(p, x, cache: cache)
    let w = Tensor(uniform: y0.shape, using: &rng)
    let dx = try net.backward(p, x: x, gradOutput: w, cache: cache)
    let eps: Float = 1e-3
    // A pool whose window's maximum changes within the step, or a relu whose input
    // crosses 0, has no derivative there: such probes are skipped (and counted).
    func positive(_ c: ConvNetCache) -> [Bool] {
      guard activation == .relu else { return [] }
      var signs: [Bool] = []
      for (j, layer) in net.layers.enumerated() {
        if case .activation = layer { signs += (0..<(n * layer.output.count)).map { c.inputs[j][$0] > 0 } }
      }
      return signs
    }
    let signs = positive(cache)
    var bad: [String] = []
    var kinks = 0
    func loss(_ probe: Tensor) throws -> Double {
      let c = ConvNetCache()
      let y = try net.forward(p, probe, cache: c)
      if c.argmax != cache.argmax || positive(c) != signs { kinks += 1 }
      return weightedSum(y.scalars, w.scalars)
    }
    for e in layout.entries {
      let analytic = try p.gradTensor(named: e.name).scalars
      for j in 0..<e.slot.count {
        let before = kinks
        let numeric = try numericDerivative(p.value(e.slot) + j, eps: eps) { try loss(x) }
        if kinks == before && !gradientAgrees(analytic[j], numeric) {
          bad.append("\(e.name)[\(j)] \(analytic[j]) vs \(numeric)")
        }
      }
    }
    for j in 0..<x.count {
      let before = kinks
      let numeric = try x.scalars.withUnsafeMutableBufferPointer { px in
        try numericDerivative(px.baseAddress! + j, eps: eps) { try loss(try Tensor(shape: x.shape, scalars: Array(px))) }
      }
      if kinks == before && !gradientAgrees(dx.scalars[j], numeric) { bad.append("x[\(j)] \(dx.scalars[j]) vs \(numeric)") }
    }
    // Few enough that the check still covers the pool and the relus: at most one
    // probe in twenty (7 of 419 for "all" with tanh), but for "fused", three relus
    // deep, which skips 44 of 408 with relu.
    let probes = layout.count + x.count
    #expect(kinks * (stack == "fused" ? 4 : 20) <= probes, "\(kinks) of \(probes) probes crossed a pool's tie")
    #expect(bad.isEmpty, "\(stack) \(activation): \(bad.count) gradients disagree: \(bad.prefix(6))")
  }

  /// uint8 images read by the first convolution (widened and scaled as it reads
  /// them) give the outputs and parameter gradients of the same images widened and
  /// scaled beforehand, bit for bit: for a strided, a padded, a pointwise (lowered
  /// rows), a partial-window and a whole-stride first layer, over stacks with pools
  /// and residual blocks. Six channels make runs of 16 bytes and more with tails: a
  /// whole image of 378 bytes, padded rows of 42, and 6 per pixel when lowered.
  @Test(arguments: [
    [ConvLayerSpec.conv(outChannels: 3, kernel: 3, stride: 2, padding: 0), .activation, .residual],
    [.conv(outChannels: 4, kernel: 3, stride: 1, padding: 1), .activation, .maxPool(kernel: 3, stride: 2, padding: 1)],
    [.conv(outChannels: 2, kernel: 1, stride: 1, padding: 0), .activation, .conv(outChannels: 3, kernel: 2, stride: 2, padding: 0)],
    [.conv(outChannels: 5, kernel: 4, stride: 3, padding: 2), .activation],
    [.conv(outChannels: 4, kernel: 4, stride: 2, padding: 0), .activation, .conv(outChannels: 3, kernel: 2, stride: 1, padding: 0)],
    [.conv(outChannels: 3, kernel: 4, stride: 4, padding: 0), .activation],
  ])
  func bytesReadByTheFirstConvolutionMatchWidenedFloats(specs: [ConvLayerSpec]) throws {
    let input = ImageShape(height: 9, width: 7, channels: 6)
    var layout = ParameterLayout()
    let net = try ConvNet("conv", input: input, specs: specs, activation: .relu, layout: &layout)
    #expect(net.readsBytes)
    var rng = SeededGenerator(seed: 21)
    let p = Parameters(layout: layout, rng: &rng)
    let n = 3
    let bytes = (0..<(n * input.count)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    let scale: Float = 1 / 255
    let floats = bytes.map { Float($0) * scale }
    let dy = (0..<(n * net.output.count)).map { _ in rng.nextUnitFloat() - 0.5 }
    func run(_ fromBytes: Bool) -> (y: [Float], grads: [Float]) {
      let cache = ConvNetCache()
      p.zeroGrads()
      let out: UnsafePointer<Float> =
        fromBytes
        ? bytes.withUnsafeBufferPointer { net.forward(p, bytes: $0.baseAddress!, scale: scale, images: n, cache: cache) }
        : floats.withUnsafeBufferPointer { net.forward(p, x: $0.baseAddress!, images: n, cache: cache) }
      let y = Array(UnsafeBufferPointer(start: out, count: n * net.output.count))
      dy.withUnsafeBufferPointer { g in
        if fromBytes {
          bytes.withUnsafeBufferPointer {
            net.backward(p, bytes: $0.baseAddress!, scale: scale, dy: g.baseAddress!, cache: cache)
          }
        } else {
          floats.withUnsafeBufferPointer {
            net.backward(p, x: $0.baseAddress!, dy: g.baseAddress!, cache: cache, dx: nil)
          }
        }
      }
      return (y, p.flatGrads)
    }
    let fromFloats = run(false)
    let fromBytes = run(true)
    #expect(fromBytes.y == fromFloats.y, "outputs \(specs)")
    #expect(fromBytes.grads == fromFloats.grads, "parameter gradients \(specs)")
    #expect(fromFloats.grads.contains { $0 != 0 } && fromFloats.y.contains { $0 != 0 })
    var pooled = ParameterLayout()
    let poolFirst = try ConvNet(
      "conv", input: input, specs: [.maxPool(kernel: 2, stride: 2, padding: 0)], activation: .relu, layout: &pooled)
    #expect(!poolFirst.readsBytes, "a pool first cannot read bytes")
  }

  @Test func aLayerThatDoesNotFitIsNamed() {
    var layout = ParameterLayout()
    do {
      _ = try ConvNet(
        "conv", input: ImageShape(height: 10, width: 10, channels: 1),
        specs: [.conv(outChannels: 4, kernel: 8, stride: 4, padding: 0), .conv(outChannels: 4, kernel: 3, stride: 1, padding: 0)],
        activation: .relu, layout: &layout)
      Issue.record("a 3x3 kernel on a 2x2 map was accepted")
    } catch {
      #expect(error.description.contains("layer 1") && error.description.contains("1x1x4"), "\(error)")
    }
    var other = ParameterLayout()
    #expect(throws: ConvShapeError.self) {
      _ = try ConvNet(
        "conv", input: ImageShape(height: 5, width: 5, channels: 1), specs: [.maxPool(kernel: 2, stride: 1, padding: 2)],
        activation: .relu, layout: &other)
    }
  }
}
