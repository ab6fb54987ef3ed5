import Foundation
import HerdMath
import HerdTestSupport
import Testing

@Suite struct GeneralGemmTests {
  // Shapes: tails in rows and columns, one row or column, k of 0 and 1, n <= 16
  // (the narrow panels), k past one block (256) and m past one copied block (512);
  // n = 47, 67 and 48 end in a 16-wide panel on AVX-512.
  @Test(
    arguments: [
      (1, 1, 1), (1, 33, 5), (5, 17, 3), (7, 31, 0), (9, 40, 1), (13, 47, 29), (3, 16, 9), (70, 67, 300),
      (530, 20, 40), (33, 1, 600), (300, 16, 700), (40, 9, 5), (37, 48, 300),
    ])
  func matchesTheTripleLoop(shape: (Int, Int, Int)) {
    let (m, n, k) = shape
    for isa in everyKernel {
      for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        for (alpha, beta): (Float, Float) in [(1, 0), (1, 1), (0.5, 0.7)] {
          var rng = SeededGenerator(seed: UInt64(m * 1000 + n * 10 + k))
          let lda = (ta ? m : k) + 3
          let ldb = (tb ? k : n) + 2
          let ldc = n + 1
          let a = randomArray((ta ? k : m) * lda, rng: &rng)
          let b = randomArray((tb ? n : k) * ldb, rng: &rng)
          var c = randomArray(m * ldc, rng: &rng)
          let expected = textbookGemm(
            ta, tb, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
          a.withPointer { pa in
            b.withPointer { pb in
              c.withMutablePointer { pc in
                GeneralGemm.multiply(
                  ta ? .transposed : .none, tb ? .transposed : .none, m: m, n: n, k: k, alpha: alpha,
                  a: pa, lda: lda, b: pb, ldb: ldb, beta: beta, c: pc, ldc: ldc, isa: isa)
              }
            }
          }
          // Every element, the padding column j == n included (it must keep its value).
          let r = closeness(c, expected, rtol: 1e-5, atol: 1e-5 * Double(max(k, 1)).squareRoot())
          #expect(r.ok, "\(isa) ta=\(ta) tb=\(tb) alpha=\(alpha) beta=\(beta) m=\(m) n=\(n) k=\(k): \(r)")
        }
      }
    }
  }

  /// With alpha 1, every element is one fused multiply-add chain over k in order from
  /// 0 (beta 0) or from C (beta 1), across the k blocks, however A and B are stored:
  /// the same bits as a scalar chain, so a row's value never depends on m.
  ///
  /// Shapes `(m, n, k, lda)` with `lda` the stored A's row stride when A is not
  /// transposed: a 13-column tail; 3, 1 and 4-column tails after whole panels (on
  /// AVX-512 a transposed A runs them with the rows in the lanes, 32 rows at a
  /// time: m of 37 ends in a part tile and a part group, m of 1 and 9 in less than
  /// one); rows 4 KiB and 2 KiB apart (8-row tiles for a narrow panel, n of 67 and
  /// 5), with m not a multiple of 8.
  @Test(arguments: [(19, 45, 600, 600), (37, 67, 300, 1024), (9, 33, 1, 1), (1, 36, 5, 512), (70, 5, 257, 512), (43, 100, 40, 40)])
  func eachElementIsOneFusedChainInOrder(shape: (Int, Int, Int, Int)) {
    let (m, n, k, ldA) = shape
    var rng = SeededGenerator(seed: UInt64(5 + m * 7 + n))
    var a = [Float](repeating: 0, count: m * k)
    let stored = randomArray(m * ldA, rng: &rng)
    for i in 0..<m { for p in 0..<k { a[i * k + p] = stored[i * ldA + p] } }
    let b = randomArray(k * n, rng: &rng)
    let start = randomArray(m * n, rng: &rng)
    // Transposed copies: aT [k, m], bT [n, k].
    var aT = [Float](repeating: 0, count: k * m)
    for i in 0..<m { for p in 0..<k { aT[p * m + i] = a[i * k + p] } }
    var bT = [Float](repeating: 0, count: n * k)
    for p in 0..<k { for j in 0..<n { bT[j * k + p] = b[p * n + j] } }
    for beta: Float in [0, 1] {
      var chain = start
      for i in 0..<m {
        for j in 0..<n {
          var s = beta == 0 ? 0 : chain[i * n + j]
          for p in 0..<k { s = s.addingKernelProduct(a[i * k + p], b[p * n + j]) }
          chain[i * n + j] = s
        }
      }
      for isa in everyKernel {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
          var c = start
          (ta ? aT : stored).withPointer { pa in
            (tb ? bT : b).withPointer { pb in
              c.withMutablePointer {
                GeneralGemm.multiply(
                  ta ? .transposed : .none, tb ? .transposed : .none, m: m, n: n, k: k, alpha: 1,
                  a: pa, lda: ta ? m : ldA, b: pb, ldb: tb ? k : n, beta: beta, c: $0, ldc: n, isa: isa)
              }
            }
          }
          #expect(c == chain, "\(isa) ta=\(ta) tb=\(tb) beta=\(beta) (m, n, k, lda) = \(shape)")
        }
      }
    }
  }

  /// Products sharing a transposed left side (a recurrent layer's `dG^T x` and
  /// `dG^T h`) give the bits of one ``GeneralGemm/multiply`` per product: odd
  /// widths (67, and 9 or 16 on AVX-512's narrow path, which runs alone), k past
  /// one block (256), m past one copied block (512) and not a multiple of a tile,
  /// one row, k of 0 and 1, beta 0 and 1, three products at once.
  @Test(
    arguments: [
      (1, 1, [33, 40]), (1024, 640, [67, 256]), (530, 300, [9, 47, 33]), (13, 0, [20, 17]), (37, 1, [16, 64]),
      (7, 29, [1, 2]),
    ])
  func productsSharingATransposedAGiveTheBitsOfOneCallEach(shape: (Int, Int, [Int])) {
    let (m, k, widths) = shape
    var rng = SeededGenerator(seed: UInt64(m * 31 + k))
    let lda = m + 5
    let a = randomArray(max(1, k * lda), rng: &rng)
    let bs = widths.map { randomArray(max(1, k * ($0 + 1)), rng: &rng) }
    let starts = widths.map { randomArray(m * ($0 + 2), rng: &rng) }
    for isa in everyKernel {
      for beta: Float in [0, 1] {
        var alone = starts
        var shared = [[Float]](repeating: [], count: widths.count)
        a.withPointer { pa in
          for i in widths.indices {
            bs[i].withPointer { pb in
              alone[i].withMutablePointer { pc in
                GeneralGemm.multiply(
                  .transposed, .none, m: m, n: widths[i], k: k, alpha: 1, a: pa, lda: lda, b: pb, ldb: widths[i] + 1,
                  beta: beta, c: pc, ldc: widths[i] + 2, isa: isa)
              }
            }
          }
          // Every B and C in memory of its own for the call.
          let bPointers = bs.map { b -> UnsafeMutablePointer<Float> in
            let q = UnsafeMutablePointer<Float>.allocate(capacity: b.count)
            q.initialize(from: b, count: b.count)
            return q
          }
          let cPointers = starts.map { c -> UnsafeMutablePointer<Float> in
            let q = UnsafeMutablePointer<Float>.allocate(capacity: c.count)
            q.initialize(from: c, count: c.count)
            return q
          }
          defer { (bPointers + cPointers).forEach { $0.deallocate() } }
          GeneralGemm.multiply(
            transposedA: pa, lda: lda, m: m, k: k, beta: beta,
            products: widths.indices.map { i in
              GemmRightSide(
                n: widths[i], b: UnsafePointer(bPointers[i]), ldb: widths[i] + 1, c: cPointers[i], ldc: widths[i] + 2)
            }, isa: isa)
          for i in widths.indices { shared[i] = Array(UnsafeBufferPointer(start: cPointers[i], count: starts[i].count)) }
        }
        for i in widths.indices {
          #expect(shared[i] == alone[i], "\(isa) beta=\(beta) m=\(m) k=\(k) n=\(widths[i])")
        }
        #expect(k == 0 || shared != starts)
      }
    }
  }

  /// Threads multiplying at the same time (a learner's shards) each get the bits of
  /// the same products run alone, through every path that keeps buffers between
  /// calls: A as stored, A transposed (the shared tiles), a narrow product run
  /// transposed, and a product whose packing outgrows the previous one.
  @Test func productsOnSeveralThreadsAtOnceGiveTheBitsOfOneThread() async {
    let shapes: [(ta: Bool, m: Int, n: Int, k: Int)] = [
      (false, 70, 67, 300), (true, 300, 67, 90), (true, 40, 9, 30), (false, 9, 300, 600),
    ]
    var rng = SeededGenerator(seed: 11)
    let inputs = shapes.map { s in
      (a: randomArray(s.m * s.k, rng: &rng), b: randomArray(s.k * s.n, rng: &rng))
    }
    @Sendable func run(_ i: Int, isa: KernelISA) -> [Float] {
      let s = shapes[i]
      var c = [Float](repeating: 0, count: s.m * s.n)
      inputs[i].a.withPointer { pa in
        inputs[i].b.withPointer { pb in
          c.withMutablePointer {
            GeneralGemm.multiply(
              s.ta ? .transposed : .none, .none, m: s.m, n: s.n, k: s.k, alpha: 1, a: pa, lda: s.ta ? s.m : s.k,
              b: pb, ldb: s.n, beta: 0, c: $0, ldc: s.n, isa: isa)
          }
        }
      }
      return c
    }
    for isa in everyKernel {
      let alone = shapes.indices.map { run($0, isa: isa) }
      // Four threads, each running every shape several times in its own order.
      let results = await withTaskGroup(of: [[Float]].self) { group in
        for t in 0..<4 {
          group.addTask {
            await withCheckedContinuation { done in
              Thread {
                var out = [[Float]](repeating: [], count: shapes.count)
                for round in 0..<6 {
                  for j in shapes.indices {
                    let i = (j + t + round) % shapes.count
                    out[i] = run(i, isa: isa)
                  }
                }
                done.resume(returning: out)
              }.start()
            }
          }
        }
        var all: [[[Float]]] = []
        for await r in group { all.append(r) }
        return all
      }
      #expect(results.count == 4)
      for r in results { #expect(r == alone, "\(isa)") }
    }
  }

  /// `auto` takes Herd's kernels exactly when OpenBLAS's kernel is narrower than
  /// Herd's; `HERD_GEMM` overrides it, and a bad value is named and ignored.
  @Test func theBackendFollowsOpenBLASsKernel() {
    #expect(GemmBackend.automatic(openBLASCore: "Prescott", isa: .avx512).0 == .herd)
    #expect(GemmBackend.automatic(openBLASCore: "Haswell", isa: .avx512).0 == .herd)
    #expect(GemmBackend.automatic(openBLASCore: "Zen", isa: .avx512).0 == .herd)
    #expect(GemmBackend.automatic(openBLASCore: "SkylakeX", isa: .avx512).0 == .openblas)
    #expect(GemmBackend.automatic(openBLASCore: "Cooperlake", isa: .avx512).0 == .openblas)
    #expect(GemmBackend.automatic(openBLASCore: "SapphireRapids", isa: .avx512).0 == .openblas)
    #expect(GemmBackend.automatic(openBLASCore: "Haswell", isa: .avx2).0 == .openblas)
    #expect(GemmBackend.automatic(openBLASCore: "SkylakeX", isa: .avx2).0 == .openblas)
    if CPUFeatures.has("avx2") && CPUFeatures.has("fma") {
      let (backend, reason) = GemmBackend.automatic(openBLASCore: "Prescott", isa: .avx2)
      #expect(backend == .herd)
      #expect(reason.contains("Prescott"))
    }
    let forced = GemmBackend.choose(setting: "openblas", openBLASCore: "Prescott", isa: .avx512)
    #expect(forced.backend == .openblas && forced.warning == nil)
    let herd = GemmBackend.choose(setting: "herd", openBLASCore: "SkylakeX", isa: .avx512)
    #expect(herd.backend == .herd && herd.reason == "HERD_GEMM=herd")
    let auto = GemmBackend.choose(setting: "auto", openBLASCore: "SkylakeX", isa: .avx512)
    #expect(auto.backend == .openblas && auto.warning == nil)
    let bad = GemmBackend.choose(setting: "mkl", openBLASCore: "Prescott", isa: .avx512)
    #expect(bad.backend == .herd)
    #expect(bad.warning?.contains("HERD_GEMM=mkl") == true)
    #expect(bad.warning?.contains("auto, openblas, herd") == true)
  }
}
