import Foundation
import HerdMath
import HerdTestSupport
import Testing

func apply(_ f: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void, _ x: [Float]) -> [Float] {
  var y = [Float](repeating: .nan, count: x.count)
  x.withPointer { px in y.withMutablePointer { f(px, $0, x.count) } }
  return y
}

@Suite struct KernelsTests {
  /// A sweep across the whole useful range, plus the edges.
  static let sweep: [Float] =
    stride(from: -30.0, through: 30.0, by: 0.0137).map { Float($0) }
    + [0, -0.0, 1e-8, -1e-8, 0.6249, 0.625, -0.625, 87, 88.7, -87, -100, 100, 1e-3, -1e-3]

  /// Swift's `addProduct` and `addingProduct` round once on any target: in a portable
  /// build (no FMA) each is a call to `fmaf` per lane, which once made the learner
  /// step 31 times as slow. Numeric code goes through `multiplyAdd`,
  /// `addingKernelProduct` and `simdFMA` (FastMath.swift), which follow the target,
  /// and a build for an FMA CPU (as `make` builds here) must see FMA in CVector too.
  @Test func multiplyAddsFollowTheTarget() throws {
    let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("Sources")
    let files = try #require(FileManager.default.subpaths(atPath: sources.path)).filter { $0.hasSuffix(".swift") }
    #expect(files.count > 20, "found the sources at \(sources.path)")
    var offenders: [String] = []
    for file in files where !file.hasSuffix("FastMath.swift") {
      let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
      for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
      where [".addProduct(", ".addingProduct(", "fmaf(", ".fma("].contains(where: { line.contains($0) }) {
        offenders.append("\(file):\(i + 1)")
      }
    }
    #expect(offenders.isEmpty, "a multiply-add that calls fmaf in a portable build: \(offenders)")
    if CPUFeatures.has("fma") && ProcessInfo.processInfo.environment["HERD_PORTABLE"] == nil {
      #expect(targetHasFMA, "built for this FMA CPU, but CVector does not see __FMA__")
    }
    // (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24 rounds to 1 + 2^-11 (a tie, to even): the
    // fused sum with -(1 + 2^-11) keeps the 2^-24, the product and sum lose it.
    let a = 1 + Float.ulpOfOne * 2048, c = -(1 + Float.ulpOfOne * 4096)
    let expected: Float = targetHasFMA ? Float.ulpOfOne / 2 : 0
    var v = SIMD16<Float>(repeating: c)
    v.multiplyAdd(SIMD16(repeating: a), SIMD16(repeating: a))
    #expect(v == SIMD16(repeating: expected), "fused: \(targetHasFMA)")
    #expect(c.addingKernelProduct(a, a) == expected, "fused: \(targetHasFMA)")
  }

  @Test func expMatchesLibm() {
    let x = Self.sweep.filter { abs($0) < 85 }
    let y = apply({ Kernels.exp($0, $1, count: $2) }, x)
    let r = closeness(y, x.map { Float(Foundation.exp(Double($0))) }, rtol: 4e-7, atol: 0)
    #expect(r.ok, "\(r)")
  }

  @Test func sigmoidMatchesTextbook() {
    let y = apply({ Kernels.sigmoid($0, $1, count: $2) }, Self.sweep)
    let r = closeness(y, Self.sweep.map { Float(1 / (1 + Foundation.exp(-Double($0)))) }, rtol: 5e-7, atol: 1e-30)
    #expect(r.ok, "\(r)")
  }

  @Test func tanhMatchesLibm() {
    let y = apply({ Kernels.tanh($0, $1, count: $2) }, Self.sweep)
    let r = closeness(y, Self.sweep.map { Float(Foundation.tanh(Double($0))) }, rtol: 5e-7, atol: 3e-7)
    #expect(r.ok, "\(r)")
    // Odd symmetry and saturation.
    #expect(y[Self.sweep.firstIndex(of: 100)!] == 1)
    #expect(y[Self.sweep.firstIndex(of: -100)!] == -1)
  }

  @Test func nanPropagatesThroughActivations() {
    let x: [Float] = [1, .nan, -2, .infinity, -.infinity]
    let s = apply({ Kernels.sigmoid($0, $1, count: $2) }, x)
    let t = apply({ Kernels.tanh($0, $1, count: $2) }, x)
    #expect(s[1].isNaN && t[1].isNaN)
    #expect(s[3] == 1 && s[4] >= 0 && s[4] < 1e-37)  // exp saturates at e^88.37
    #expect(t[3] == 1 && t[4] == -1)
  }

  @Test(arguments: 1...17)
  func tailsGiveTheSameBitsAsFullVectors(count: Int) {
    var rng = SeededGenerator(seed: UInt64(count))
    let x = randomArray(count, low: -4, high: 4, rng: &rng)
    let y = apply({ Kernels.tanh($0, $1, count: $2) }, x)
    // The same values inside a longer buffer, at another offset.
    let padded = [Float](repeating: 0.5, count: 5) + x + [Float](repeating: 0.5, count: 11)
    let yp = apply({ Kernels.tanh($0, $1, count: $2) }, padded)
    #expect(Array(yp[5..<(5 + count)]) == y)
  }

  @Test func reluAndDerivativesMatchFiniteDifferences() {
    var rng = SeededGenerator(seed: 7)
    let x = randomArray(50, low: -3, high: 3, rng: &rng).filter { abs($0) > 0.05 }
    let dy = randomArray(x.count, rng: &rng)
    let eps: Float = 1e-2
    for (f, back) in [
      (
        { Kernels.sigmoid($0, $1, count: $2) } as (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void,
        { Kernels.sigmoidBackward(output: $0, gradOutput: $1, gradInput: $2, count: $3) }
          as (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
      ),
      (
        { Kernels.tanh($0, $1, count: $2) },
        { Kernels.tanhBackward(output: $0, gradOutput: $1, gradInput: $2, count: $3) }
      ),
      (
        { Kernels.relu($0, $1, count: $2) },
        { Kernels.reluBackward(output: $0, gradOutput: $1, gradInput: $2, count: $3) }
      ),
    ] {
      let y = apply(f, x)
      var dx = [Float](repeating: 0, count: x.count)
      y.withPointer { py in dy.withPointer { pdy in dx.withMutablePointer { back(py, pdy, $0, x.count) } } }
      let plus = apply(f, x.map { $0 + eps })
      let minus = apply(f, x.map { $0 - eps })
      let numeric = (0..<x.count).map { dy[$0] * (plus[$0] - minus[$0]) / (2 * eps) }
      let r = closeness(dx, numeric, rtol: 1e-2, atol: 1e-3)
      #expect(r.ok, "\(r)")
    }
  }

  @Test(arguments: [(1, 2), (5, 3), (8, 17)])
  func softmaxAndLogSoftmaxMatchTextbook(shape: (Int, Int)) {
    let (rows, cols) = shape
    var rng = SeededGenerator(seed: UInt64(rows * 100 + cols))
    var x = randomArray(rows * cols, low: -5, high: 5, rng: &rng)
    x[0] = 80  // large logits must not overflow
    var ls = [Float](repeating: 0, count: x.count)
    var sm = [Float](repeating: 0, count: x.count)
    x.withPointer { px in
      ls.withMutablePointer { Kernels.logSoftmax(px, $0, rows: rows, cols: cols) }
      sm.withMutablePointer { Kernels.softmax(px, $0, rows: rows, cols: cols) }
    }
    var expected = [Float]()
    for r in 0..<rows {
      let row = x[(r * cols)..<((r + 1) * cols)].map(Double.init)
      let m = row.max()!
      let lse = m + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - m) })
      expected += row.map { Float($0 - lse) }
    }
    #expect(closeness(ls, expected, rtol: 1e-6, atol: 1e-6).ok)
    #expect(closeness(sm, expected.map { Float(Foundation.exp(Double($0))) }, rtol: 1e-6, atol: 1e-7).ok)
    // Gradient of sum(w * logsoftmax(x)) by finite differences.
    let w = randomArray(x.count, rng: &rng)
    var dx = [Float](repeating: 0, count: x.count)
    ls.withPointer { pl in
      w.withPointer { pw in
        dx.withMutablePointer {
          Kernels.logSoftmaxBackward(logProbs: pl, gradOutput: pw, gradInput: $0, rows: rows, cols: cols)
        }
      }
    }
    func loss(_ v: [Float]) -> Double {
      var o = [Float](repeating: 0, count: v.count)
      v.withPointer { p in o.withMutablePointer { Kernels.logSoftmax(p, $0, rows: rows, cols: cols) } }
      return zip(o, w).reduce(0) { $0 + Double($1.0) * Double($1.1) }
    }
    for i in 0..<x.count {
      var p = x
      var m = x
      p[i] += 1e-2
      m[i] -= 1e-2
      let numeric = (loss(p) - loss(m)) / 2e-2
      #expect(abs(numeric - Double(dx[i])) < 2e-3 + 1e-2 * abs(numeric), "d/dx[\(i)]")
    }
  }

  @Test func columnSumsAndNorm() {
    var rng = SeededGenerator(seed: 3)
    let a = randomArray(7 * 5, rng: &rng)
    var out = [Float](repeating: 1, count: 4)
    a.withPointer { pa in
      out.withMutablePointer { Kernels.columnSums(pa, rows: 7, cols: 4, lda: 5, into: $0, accumulate: true) }
    }
    for j in 0..<4 {
      let expected = 1 + (0..<7).reduce(Float(0)) { $0 + a[$1 * 5 + j] }
      #expect(abs(out[j] - expected) < 1e-5)
    }
    let big = randomArray(10_000, rng: &rng)
    let norm = big.withPointer { Kernels.norm2($0, count: big.count) }
    let expected = big.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    #expect(abs(norm - expected) < 1e-5 * expected)
    let huge: [Float] = [3e30, 4e30]
    #expect(abs(huge.withPointer { Kernels.norm2($0, count: 2) } - 5e30) < 1e25)
    let nan: [Float] = [1, .nan]
    #expect(nan.withPointer { Kernels.norm2($0, count: 2) }.isNaN)
  }
}
