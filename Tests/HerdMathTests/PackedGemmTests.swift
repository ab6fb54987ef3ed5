import Foundation
import HerdMath
import HerdTestSupport
import Testing

@Suite struct PackedGemmTests {
  @Test func bothKernelsAreCheckedAndTheWidestIsChosenOnAnAVX512Machine() {
    #expect(everyKernel == [.avx512, .avx2])
    #expect(KernelISA.avx2.isAvailable)
    if CPUFeatures.has("avx512f") && ProcessInfo.processInfo.environment["HERD_PORTABLE"] == nil {
      // `make test` builds with HERD_AVX512 on such a CPU: the 16-wide kernel must be chosen.
      #expect(KernelISA.avx512.isAvailable, "an AVX-512 CPU, but the build lacks HERD_AVX512")
    } else if !CPUFeatures.has("avx512f") {
      #expect(!KernelISA.avx512.isAvailable, "the 16-wide kernel chosen on a CPU without AVX-512")
    }
    // Both heights of the AVX-512 16-column tiles, on wide and narrow packings.
    let avx512 = everyPacking.filter { $0.isa == .avx512 }.map { "\($0.narrow) \($0.narrowRows)" }
    #expect(Set(avx512) == ["false 16", "false 8", "true 16", "true 8"])
  }

  /// `HERD_NARROW_ROWS` takes 8 or 16, 8 when unset; anything else is named in a
  /// warning and 8 used.
  @Test func theNarrowTileSettingTakesEightOrSixteen() {
    #expect(NarrowTiles.rows(setting: nil) == (8, nil))
    #expect(NarrowTiles.rows(setting: "") == (8, nil))
    #expect(NarrowTiles.rows(setting: "8") == (8, nil))
    #expect(NarrowTiles.rows(setting: "16") == (16, nil))
    for bad in ["12", "0", "eight", "-8", "8 "] {
      let (rows, warning) = NarrowTiles.rows(setting: bad)
      #expect(rows == 8, "\(bad)")
      #expect(warning == "HERD_NARROW_ROWS=\(bad) is neither 8 nor 16; using 8", "\(bad)")
    }
    #expect(NarrowTiles.rows == 8 || NarrowTiles.rows == 16)
  }

  // Shapes: tails in rows and columns (not multiples of 6, 8, 16 or 32), one row,
  // k of 0 and 1, k past one block of the transposed pack (128) with a tail, and
  // the LSTM's own step shape. On AVX2 the row tail takes tiles of 4 (2, 3 and 4
  // rows alone, 7 as 4 + 3, 8 and 32 ending 4 + 4, 9 and 33 ending 6 + 3). On AVX-512 a last panel of at most
  // 16 columns (n = 33, 40, 47, 48 and 67 below) is 16 wide, on tiles of 8 or 16
  // rows (both run): 9, 11, 13, 17 and 33 rows leave those tiles a tail too.
  @Test(
    arguments: [
      (1, 1, 1), (1, 33, 5), (5, 17, 3), (7, 31, 0), (9, 40, 1), (13, 47, 29), (32, 1024, 256), (33, 96, 67),
      (64, 20, 256), (17, 48, 33), (33, 67, 70), (11, 40, 203), (2, 19, 7), (3, 16, 4), (4, 35, 9), (8, 33, 12),
    ])
  func matchesTheTripleLoop(shape: (Int, Int, Int)) {
    let (m, n, k) = shape
    for choice in everyPacking {
      for transposed in [false, true] {
        for accumulate in [false, true] {
          var rng = SeededGenerator(seed: UInt64(m * 1000 + n * 10 + k))
          let lda = k + 3
          let ldc = n + 2
          let ld = (transposed ? k : n) + 1
          let a = randomArray(m * lda, rng: &rng)
          let b = randomArray((transposed ? n : k) * ld, rng: &rng)
          var c = randomArray(m * ldc, rng: &rng)
          let expected = textbookGemm(
            false, transposed, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: b, ldb: ld,
            beta: accumulate ? 1 : 0, c: c, ldc: ldc)
          let packed = choice.make()
          b.withPointer { packed.pack($0, ld: ld, transposed: transposed, k: k, n: n) }
          a.withPointer { pa in
            c.withMutablePointer { pc in packed.multiply(pa, lda: lda, rows: m, into: pc, ldc: ldc, accumulate: accumulate) }
          }
          var worst: Float = 0
          for i in 0..<m {
            for j in 0..<ldc {
              let got = c[i * ldc + j]
              let want = expected[i * ldc + j]
              worst = max(worst, abs(got - want) / max(1, abs(want)))
            }
          }
          // The padding column j >= n must be untouched: expected kept its old value.
          #expect(worst < 1e-5, "\(choice) m=\(m) n=\(n) k=\(k) transposed=\(transposed) accumulate=\(accumulate): error \(worst)")
        }
      }
    }
  }

  /// A read in place two levels deep each way (``GridLayout``): rows in groups and
  /// elements in segments, overlapping or with gaps. The shapes: a convolution's
  /// forward (400 output pixels in rows of 20, `s C` = 16 apart, 8 kernel rows of 32
  /// floats an image row apart) and weight gradient (rows `(ky, kx, c)`, elements
  /// the pixels, 16 apart), each over 16 and 32 channels; a 3x3 layer's 7x7 output
  /// pixels over 64 channels; odd groups and segments with row and column tails (5,
  /// 17, 33, 67 columns); row counts that end in AVX2's tiles of 4 (1, 2, 3 or 4
  /// rows, 8 as 4 + 4, 49 as 7 x 6 + 4 + 3); one row, one element, k of 0. Each
  /// element must be the scalar fused chain over k in order, on both kernels and
  /// both packings.
  @Test(
    arguments: [
      // m, n, rowsPerGroup, groupStride, rowStride, segment, segments, segmentStride, step
      [400, 32, 20, 1344, 16, 32, 8, 336, 1], [400, 16, 20, 1344, 16, 32, 8, 336, 1],
      [256, 32, 32, 336, 1, 20, 20, 1344, 16], [256, 16, 32, 336, 1, 20, 20, 1344, 16],
      [7, 5, 3, 11, 2, 5, 3, 9, 2], [17, 17, 4, 9, 1, 3, 2, 7, 4], [33, 33, 33, 0, 3, 7, 1, 0, 1],
      [13, 67, 5, 40, 7, 2, 5, 3, 1], [1, 1, 1, 0, 0, 1, 1, 0, 0], [9, 40, 2, 6, 1, 4, 0, 5, 1],
      [49, 64, 7, 576, 64, 192, 3, 576, 1], [8, 20, 4, 12, 2, 6, 2, 13, 1], [2, 9, 2, 5, 1, 3, 3, 4, 1],
    ])
  func aGridAIsTheFusedChain(shape: [Int]) {
    let (m, n) = (shape[0], shape[1])
    let layout = GridLayout(
      rowsPerGroup: shape[2], groupStride: shape[3], rowStride: shape[4], segment: shape[5],
      segmentStride: shape[7], step: shape[8])
    let k = shape[5] * shape[6]
    var rng = SeededGenerator(seed: UInt64(shape.reduce(17) { $0 &* 31 &+ $1 }))
    let span = (0..<m).map(layout.rowOffset).max()! + (k == 0 ? 0 : (0..<k).map(layout.elementOffset).max()!) + 1
    let stored = randomArray(span, rng: &rng)
    let b = randomArray(k * n, rng: &rng)
    let ldc = n + 3
    let start = randomArray(m * ldc, rng: &rng)
    for accumulate in [false, true] {
      var chain = start
      for i in 0..<m {
        for j in 0..<n {
          var s: Float = accumulate ? start[i * ldc + j] : 0
          for p in 0..<k { s = s.addingKernelProduct(stored[layout.rowOffset(i) + layout.elementOffset(p)], b[p * n + j]) }
          chain[i * ldc + j] = s
        }
      }
      for choice in everyPacking {
        let packed = choice.make()
        b.withPointer { packed.pack($0, ld: n, transposed: false, k: k, n: n) }
        var c = start
        stored.withPointer { pa in
          c.withMutablePointer {
            packed.multiply(grid: pa, layout: layout, rows: m, into: $0, ldc: ldc, accumulate: accumulate)
          }
        }
        // Columns n ..< ldc are padding: untouched, as in `start`.
        let differing = c.indices.filter { c[$0].bitPattern != chain[$0].bitPattern }
        #expect(
          differing.isEmpty,
          "\(choice) \(layout) m=\(m) n=\(n) k=\(k) accumulate=\(accumulate): \(differing.count) elements differ, the first at \(differing.first ?? -1)")
      }
    }
  }

  /// On AVX-512 a last panel of 1 to 16 columns is packed 16 wide (the shapes above
  /// run through it); the narrow packing and AVX2 keep their one width.
  @Test func aShortLastPanelIsHalfWide() {
    for isa in everyKernel {
      for (n, avx512Width) in [(67, 16), (96, 32), (80, 16), (81, 32), (16, 16), (1, 16)] {
        let packed = PackedMatrix(isa: isa)
        let b = [Float](repeating: 1, count: 3 * n)
        b.withPointer { packed.pack($0, ld: n, transposed: false, k: 3, n: n) }
        #expect(packed.lastPanelWidth == (isa == .avx512 ? avx512Width : 16), "\(isa) n=\(n)")
      }
      #expect(PackedMatrix(isa: isa, narrow: true).lastPanelWidth == 16)
    }
  }

  /// A row's result does not depend on how many rows share the call or where the row
  /// sits: the property that makes a K-row rollout step and a P-row training batch
  /// give the same bits.
  @Test func aRowGivesTheSameBitsWhateverTheRowCount() {
    let (k, n) = (67, 1024 + 5)
    var rng = SeededGenerator(seed: 7)
    let a = randomArray(37 * k, rng: &rng)
    let w = randomArray(n * k, rng: &rng)
    for choice in everyPacking {
      let packed = choice.make()
      w.withPointer { packed.pack($0, ld: k, transposed: true, k: k, n: n) }
      var all = [Float](repeating: 0, count: 37 * n)
      a.withPointer { pa in all.withMutablePointer { packed.multiply(pa, lda: k, rows: 37, into: $0, ldc: n, accumulate: false) } }
      for (start, count) in [(0, 1), (5, 3), (11, 13), (30, 7), (36, 1), (20, 2), (2, 4), (29, 8), (1, 32)] {
        var part = [Float](repeating: 0, count: count * n)
        a.withPointer { pa in
          part.withMutablePointer { packed.multiply(pa + start * k, lda: k, rows: count, into: $0, ldc: n, accumulate: false) }
        }
        #expect(Array(all[(start * n)..<((start + count) * n)]) == part, "\(choice) rows \(start)..<\(start + count)")
      }
    }
  }

  /// Both kernels compute every element as one fused multiply-add chain in k order,
  /// so they agree bit for bit with a scalar chain, and with each other.
  @Test func eachElementIsOneFusedChainInOrder() {
    let (m, n, k) = (9, 45, 70)
    var rng = SeededGenerator(seed: 3)
    let a = randomArray(m * k, rng: &rng)
    let b = randomArray(k * n, rng: &rng)
    let start = randomArray(m * n, rng: &rng)
    var chain = start
    for i in 0..<m {
      for j in 0..<n {
        var s = chain[i * n + j]
        for p in 0..<k { s = s.addingKernelProduct(a[i * k + p], b[p * n + j]) }
        chain[i * n + j] = s
      }
    }
    for choice in everyPacking {
      var c = start
      let packed = choice.make()
      b.withPointer { packed.pack($0, ld: n, transposed: false, k: k, n: n) }
      a.withPointer { pa in c.withMutablePointer { packed.multiply(pa, lda: k, rows: m, into: $0, ldc: n, accumulate: true) } }
      #expect(c == chain, "\(choice)")
    }
  }
}
