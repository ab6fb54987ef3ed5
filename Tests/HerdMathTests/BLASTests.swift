import Foundation
import HerdMath
import HerdTestSupport
import Testing

/// `C = alpha op(A) op(B) + beta C` by a triple loop in Double.
func textbookGemm(
  _ ta: Bool, _ tb: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], lda: Int,
  b: [Float], ldb: Int, beta: Float, c: [Float], ldc: Int
) -> [Float] {
  var out = c
  for i in 0..<m {
    for j in 0..<n {
      var s = 0.0
      for p in 0..<k {
        let av = ta ? a[p * lda + i] : a[i * lda + p]
        let bv = tb ? b[j * ldb + p] : b[p * ldb + j]
        s += Double(av) * Double(bv)
      }
      out[i * ldc + j] = Float(Double(alpha) * s + Double(beta) * Double(c[i * ldc + j]))
    }
  }
  return out
}

@Suite struct BLASTests {
  @Test(arguments: [(1, 1, 1), (3, 5, 2), (32, 1024, 67), (17, 33, 256), (64, 7, 1)], [UInt64(1), 2])
  func gemmMatchesTripleLoop(shape: (Int, Int, Int), seed: UInt64) {
    let (m, n, k) = shape
    var rng = SeededGenerator(seed: seed)
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
      for beta: Float in [0, 1, 0.5] {
        // Padded leading dimensions: rows spaced wider than they are long.
        let lda = (ta ? m : k) + 3
        let ldb = (tb ? k : n) + 2
        let ldc = n + 1
        let a = randomArray((ta ? k : m) * lda, rng: &rng)
        let b = randomArray((tb ? n : k) * ldb, rng: &rng)
        var c = randomArray(m * ldc, rng: &rng)
        let expected = textbookGemm(
          ta, tb, m: m, n: n, k: k, alpha: 0.75, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        a.withPointer { pa in
          b.withPointer { pb in
            c.withMutablePointer { pc in
              BLAS.gemm(
                ta ? .transposed : .none, tb ? .transposed : .none, m: m, n: n, k: k, alpha: 0.75,
                a: pa, lda: lda, b: pb, ldb: ldb, beta: beta, c: pc, ldc: ldc)
            }
          }
        }
        let r = closeness(c, expected, rtol: 1e-4, atol: 1e-4 * Double(k).squareRoot())
        #expect(r.ok, "gemm \(ta) \(tb) beta \(beta) m\(m) n\(n) k\(k): \(r)")
      }
    }
  }

  @Test func gemmWithZeroInnerDimensionScalesByBeta() {
    var c: [Float] = [1, 2, 3, 4]
    let empty: [Float] = []
    empty.withPointer { p in
      c.withMutablePointer { pc in
        BLAS.gemm(.none, .none, m: 2, n: 2, k: 0, a: p, lda: 1, b: p, ldb: 2, beta: 0.5, c: pc, ldc: 2)
      }
    }
    #expect(c == [0.5, 1, 1.5, 2])
  }

  @Test func recorderSeesEveryProductAndNothingOutsideItsScope() {
    let a: [Float] = [1, 2, 3, 4]
    var c = [Float](repeating: 0, count: 4)
    let recorder = GemmRecorder()
    a.withPointer { pa in
      c.withMutablePointer { pc in
        GemmRecorder.$current.withValue(recorder) {
          BLAS.gemm(.none, .transposed, m: 2, n: 2, k: 2, a: pa, lda: 2, b: pa, ldb: 2, beta: 0, c: pc, ldc: 2)
        }
        BLAS.gemm(.none, .none, m: 2, n: 2, k: 2, a: pa, lda: 2, b: pa, ldb: 2, beta: 0, c: pc, ldc: 2)
      }
    }
    #expect(recorder.shapes.count == 1)
    #expect(recorder.shapes.first?.transB == .transposed)
    #expect(recorder.shapes.first?.flops == 16)
  }

  @Test func tensorMatmulChecksInnerDimensions() throws {
    let a = Tensor(shape: [2, 3], repeating: 1)
    let b = Tensor(shape: [2, 4], repeating: 1)
    #expect(throws: TensorError.self) { try Tensor.matmul(a, b) }
    let c = try Tensor.matmul(a, b, transposeA: true)
    #expect(c.shape == [3, 4])
    #expect(c.scalars.allSatisfy { $0 == 2 })
  }

  @Test func tensorRejectsWrongCounts() {
    #expect(throws: TensorError.countMismatch(shape: [2, 2], count: 3)) {
      try Tensor(shape: [2, 2], scalars: [1, 2, 3])
    }
    #expect(throws: TensorError.self) { try Tensor(shape: [-1], scalars: []) }
  }
}
