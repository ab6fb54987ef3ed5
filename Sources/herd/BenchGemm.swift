import ArgumentParser
import Foundation
import HerdMath

/// `herd bench gemm`: Herd's packed kernels against cblas_sgemm, product by product.
struct BenchGemm: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "gemm",
    abstract: "Time the packed recurrent kernels against OpenBLAS on the LSTM's products.",
    discussion: """
      One thread. For each product an LSTM of N sequences x T steps runs on Herd's
      packed kernels (the input projection of all N*T rows, the recurrent step, the
      backward carry), times the kernel (packing excluded: it happens once per call
      of the layer) and cblas_sgemm on the same operands, in alternating rounds, and
      prints GFLOP/s of both. The weight and input gradients stay on OpenBLAS (one
      large product each, where it is as fast, unless its kernel is narrower than
      Herd's); the last rows time them on Herd's general product (GeneralGemm, its
      packing included) against cblas_sgemm. HERD_KERNEL_ISA=avx2 times the
      8-wide kernels.

      Example: herd bench gemm --hidden 256 --features 67
      """
  )

  @Option(parsing: .unconditional, help: "Sequences (N): rows of a recurrent step.")
  var sequences = 32
  @Option(parsing: .unconditional, help: "Steps (T): N*T rows in the whole-batch products.")
  var time = 20
  @Option(parsing: .unconditional, help: "Input features (I).")
  var features = 67
  @Option(parsing: .unconditional, help: "Cell size (H); the LSTM has 4H gates.")
  var hidden = 256
  @Option(parsing: .unconditional, help: "Alternating rounds; medians are reported.")
  var rounds = 5
  @Option(parsing: .unconditional, help: "Seconds per round per side.")
  var seconds = 0.2

  func validate() throws {
    try requirePositive([("--sequences", sequences), ("--time", time), ("--features", features), ("--hidden", hidden), ("--rounds", rounds)])
    guard seconds > 0 else { throw ValidationError("--seconds must be positive, got \(seconds)") }
  }

  func run() throws {
    BLAS.setThreadCount(1)
    print("herd bench gemm: N=\(sequences) T=\(time) I=\(features) H=\(hidden), one thread, kernels \(KernelISA.preferred)")
    print(openBLASLine())
    let (n, p, i, h, g) = (sequences, sequences * time, features, hidden, 4 * hidden)
    // (label, m, n, k, B stored transposed)
    let cases: [(String, Int, Int, Int, Bool)] = [
      ("input projection x W_ih^T", p, g, i, true),
      ("recurrent step h W_hh^T", n, g, h, true),
      ("backward carry dG W_hh", n, h, g, false),
    ]
    // The whole-batch gradients, on Herd's general product (GeneralGemm, packing
    // included): (label, m, n, k, A stored transposed). OpenBLAS runs them unless
    // its kernel is narrower than Herd's (GemmBackend).
    let general: [(String, Int, Int, Int, Bool)] = [
      ("weight gradient dG^T x", g, i, p, true),
      ("weight gradient dG^T h", g, h, p, true),
      ("input gradient dG W_ih", p, i, g, false),
    ]
    var rng = SeededGenerator(seed: 1)
    print("| product | m x n x k | Herd GFLOP/s | OpenBLAS GFLOP/s | ratio |")
    print("|---|---|---|---|---|")
    for (label, m, nn, k, tb) in cases {
      let a = (0..<(m * k)).map { _ in rng.nextUnitFloat() - 0.5 }
      let b = (0..<(k * nn)).map { _ in rng.nextUnitFloat() - 0.5 }
      var c = [Float](repeating: 0, count: m * nn)
      let lda = k
      let ldb = tb ? k : nn
      let packed = PackedMatrix()
      b.withPointer { packed.pack($0, ld: ldb, transposed: tb, k: k, n: nn) }
      let herd = {
        a.withPointer { pa in
          c.withMutablePointer { packed.multiply(pa, lda: lda, rows: m, into: $0, ldc: nn, accumulate: true) }
        }
      }
      let blas = {
        a.withPointer { pa in
          b.withPointer { pb in
            c.withMutablePointer {
              BLAS.openBLASGemm(.none, tb ? .transposed : .none, m: m, n: nn, k: k, a: pa, lda: lda, b: pb, ldb: ldb, beta: 1, c: $0, ldc: nn)
            }
          }
        }
      }
      report(label, m, nn, k, herd, blas)
    }
    for (label, m, nn, k, ta) in general {
      let a = (0..<(m * k)).map { _ in rng.nextUnitFloat() - 0.5 }
      let b = (0..<(k * nn)).map { _ in rng.nextUnitFloat() - 0.5 }
      var c = [Float](repeating: 0, count: m * nn)
      let lda = ta ? m : k
      let transA: Transpose = ta ? .transposed : .none
      let herd = {
        a.withPointer { pa in
          b.withPointer { pb in
            c.withMutablePointer {
              GeneralGemm.multiply(transA, .none, m: m, n: nn, k: k, alpha: 1, a: pa, lda: lda, b: pb, ldb: nn, beta: 1, c: $0, ldc: nn)
            }
          }
        }
      }
      let blas = {
        a.withPointer { pa in
          b.withPointer { pb in
            c.withMutablePointer {
              BLAS.openBLASGemm(transA, .none, m: m, n: nn, k: k, a: pa, lda: lda, b: pb, ldb: nn, beta: 1, c: $0, ldc: nn)
            }
          }
        }
      }
      report(label + " (general)", m, nn, k, herd, blas)
    }
  }

  /// Times `herd` and `blas` in alternating rounds and prints the product's row:
  /// median GFLOP/s of each and their ratio.
  private func report(_ label: String, _ m: Int, _ n: Int, _ k: Int, _ herd: () -> Void, _ blas: () -> Void) {
    var ours: [Double] = []
    var theirs: [Double] = []
    let flops = 2 * Double(m) * Double(n) * Double(k)
    for _ in 0..<rounds {
      ours.append(flops / timePerCall(seconds: seconds, herd) / 1e9)
      theirs.append(flops / timePerCall(seconds: seconds, blas) / 1e9)
    }
    print(String(format: "| %@ | %d x %d x %d | %.1f | %.1f | %.2f |", label, m, n, k, median(ours), median(theirs), median(ours) / median(theirs)))
  }
}
