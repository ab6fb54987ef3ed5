import Synchronization
import COpenBLAS

/// Whether a GEMM operand is used as stored or transposed.
public enum Transpose: Sendable, Equatable, CustomStringConvertible {
  /// The operand as stored (row-major).
  case none
  /// The operand's transpose.
  case transposed

  @usableFromInline var cblas: CBLAS_TRANSPOSE {
    self == .none ? CblasNoTrans : CblasTrans
  }

  public var description: String { self == .none ? "N" : "T" }
}

/// One right-hand side of ``BLAS/gemm(transposedA:lda:m:k:beta:products:)``: `B [k, n]`
/// row-major with row stride `ldb` (or, with `transposedB`, `B^T` stored `[n, k]`),
/// and its result `C [m, n]` with row stride `ldc`.
public struct GemmRightSide {
  public var n: Int
  public var b: UnsafePointer<Float>
  public var ldb: Int
  public var c: UnsafeMutablePointer<Float>
  public var ldc: Int
  public var transposedB: Bool

  public init(
    n: Int, b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int, transposedB: Bool = false
  ) {
    (self.n, self.b, self.ldb, self.c, self.ldc, self.transposedB) = (n, b, ldb, c, ldc, transposedB)
  }
}

/// The calls Herd makes into OpenBLAS (CBLAS, 32-bit integers, row-major).
///
/// OpenBLAS's thread count is process-global: set it once at start-up with
/// ``setThreadCount(_:)`` and log it; nothing in Herd changes it as a side effect.
public enum BLAS {
  /// Sets OpenBLAS's thread count for the whole process.
  ///
  /// - Parameter count: threads, at least 1. Actors sharing cores with a learner
  ///   usually want 1.
  public static func setThreadCount(_ count: Int) {
    openblas_set_num_threads(Int32(max(1, count)))
  }

  /// OpenBLAS's current thread count.
  public static var threadCount: Int { Int(openblas_get_num_threads()) }

  /// OpenBLAS's build configuration, the kernel it chose ("Haswell", "SkylakeX"...)
  /// and which implementation runs ``gemm(_:_:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)``
  /// (``GemmBackend``).
  public static var configuration: String {
    let config = openblas_get_config().map { String(cString: $0) } ?? "unknown"
    let (backend, reason) = GemmBackend.active
    let gemm = backend == .herd ? "Herd's \(KernelISA.preferred) kernels" : "OpenBLAS"
    let narrow = KernelISA.preferred == .avx512 ? "; narrow tiles of \(NarrowTiles.rows) rows" : ""
    return "\(config) core=\(coreName); gemm on \(gemm) (\(reason))\(narrow); \(OpenBLASPages.summary)"
  }

  /// The name of the kernel OpenBLAS chose for this CPU ("Haswell", "SkylakeX",
  /// "Prescott"...).
  public static var coreName: String {
    openblas_get_corename().map { String(cString: $0) } ?? "unknown"
  }

  /// `C = alpha * op(A) * op(B) + beta * C`, row-major, through `cblas_sgemm` or,
  /// where OpenBLAS's kernel is narrower than Herd's, ``GeneralGemm`` (see
  /// ``GemmBackend``).
  ///
  /// `op(A)` is `[m, k]`, `op(B)` is `[k, n]`, `C` is `[m, n]`. Leading dimensions
  /// are row strides in elements, so a matrix whose rows are spaced (a time step of
  /// `[N, T, F]`: `lda = T * F`) needs no copy. With `k == 0`, C is scaled by beta.
  public static func gemm(
    _ transA: Transpose, _ transB: Transpose,
    m: Int, n: Int, k: Int,
    alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float,
    c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    if let recorder = GemmRecorder.current {
      recorder.record(
        GemmShape(transA: transA, transB: transB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc, beta: beta))
    }
    guard m > 0, n > 0 else { return }
    guard k > 0 else {
      for row in 0..<m {
        let crow = c + row &* ldc
        if beta == 0 {
          crow.update(repeating: 0, count: n)
        } else if beta != 1 {
          for col in 0..<n { crow[col] *= beta }
        }
      }
      return
    }
    if GemmBackend.active.backend == .herd {
      GeneralGemm.multiply(
        transA, transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
      return
    }
    openBLASGemm(transA, transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
  }

  /// Several products over one transposed left side, `C_i = A^T B_i + beta C_i` (A
  /// stored `[k, m]`, each `B_i` `[k, n_i]` as stored, beta 0 or 1): the weight
  /// gradients `dG^T x` and `dG^T h` of a recurrent layer. The same bits as one
  /// ``gemm(_:_:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)`` per product; on Herd's
  /// kernels A is copied into row tiles once for all of them instead of once each.
  public static func gemm(
    transposedA a: UnsafePointer<Float>, lda: Int, m: Int, k: Int, beta: Float, products: [GemmRightSide]
  ) {
    precondition(beta == 0 || beta == 1, "BLAS.gemm(transposedA:): beta \(beta), not 0 or 1")
    guard GemmBackend.active.backend == .herd, m > 0, k > 0, products.count > 1 else {
      for r in products {
        gemm(
          .transposed, r.transposedB ? .transposed : .none, m: m, n: r.n, k: k, a: a, lda: lda, b: r.b, ldb: r.ldb,
          beta: beta, c: r.c, ldc: r.ldc)
      }
      return
    }
    if let recorder = GemmRecorder.current {
      for r in products {
        recorder.record(
          GemmShape(
            transA: .transposed, transB: r.transposedB ? .transposed : .none, m: m, n: r.n, k: k, lda: lda, ldb: r.ldb,
            ldc: r.ldc, beta: beta))
      }
    }
    GeneralGemm.multiply(transposedA: a, lda: lda, m: m, k: k, beta: beta, products: products)
  }

  /// `cblas_sgemm` itself, whatever ``GemmBackend`` is active (benchmarks time it as
  /// the reference). Not recorded by a ``GemmRecorder``; `m`, `n` and `k` positive.
  public static func openBLASGemm(
    _ transA: Transpose, _ transB: Transpose,
    m: Int, n: Int, k: Int,
    alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float,
    c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    OpenBLASPages.prepareCallingThread()
    cblas_sgemm(
      CblasRowMajor, transA.cblas, transB.cblas,
      Int32(m), Int32(n), Int32(k),
      alpha, a, Int32(lda), b, Int32(ldb),
      beta, c, Int32(ldc))
  }

  /// Dot product of two contiguous vectors (`cblas_sdot`).
  public static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Float {
    guard count > 0 else { return 0 }
    return cblas_sdot(Int32(count), x, 1, y, 1)
  }

  /// Euclidean norm of a contiguous vector (`cblas_snrm2`, scaled against overflow).
  public static func norm2(_ x: UnsafePointer<Float>, count: Int) -> Float {
    guard count > 0 else { return 0 }
    return cblas_snrm2(Int32(count), x, 1)
  }

  /// `y += alpha * x` over contiguous vectors (`cblas_saxpy`).
  public static func axpy(
    _ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int
  ) {
    guard count > 0 else { return }
    cblas_saxpy(Int32(count), alpha, x, 1, y, 1)
  }

  /// `x *= alpha` over a contiguous vector (`cblas_sscal`).
  public static func scale(_ alpha: Float, _ x: UnsafeMutablePointer<Float>, count: Int) {
    guard count > 0 else { return }
    cblas_sscal(Int32(count), alpha, x, 1)
  }
}

/// One `cblas_sgemm` call's shape, as recorded by a ``GemmRecorder``.
public struct GemmShape: Sendable, Equatable, Hashable, CustomStringConvertible {
  public var transA: Transpose
  public var transB: Transpose
  public var m: Int
  public var n: Int
  public var k: Int
  public var lda: Int
  public var ldb: Int
  public var ldc: Int
  public var beta: Float

  /// Floating-point operations of the product (`2 m n k`).
  public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }

  public var description: String { "\(transA)\(transB) m=\(m) n=\(n) k=\(k)" }
}

/// Records the shape of every GEMM issued on this thread (or task) while bound.
///
/// The benchmark binds one around a layer's forward and backward to learn exactly
/// which matrix products it issues, then times those products alone: the floor.
///
/// ```swift
/// let recorder = GemmRecorder()
/// GemmRecorder.$current.withValue(recorder) { lstm.forward(...) }
/// ```
public final class GemmRecorder: Sendable {
  /// The recorder bound for the current task or thread, if any.
  @TaskLocal public static var current: GemmRecorder?

  private let storage = Mutex<[GemmShape]>([])

  /// An empty recorder.
  public init() {}

  /// The recorded shapes, in call order.
  public var shapes: [GemmShape] { storage.withLock { $0 } }

  func record(_ shape: GemmShape) { storage.withLock { $0.append(shape) } }
}
