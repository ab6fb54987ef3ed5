#if canImport(Glibc)
  import Glibc
#endif

/// Which implementation runs ``BLAS/gemm(_:_:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)``.
///
/// Debian's OpenBLAS (0.3.21) picks its kernel from the CPU model it knows. On a CPU
/// newer than its table (an Intel Xeon of model 207, Emerald Rapids) it falls back to
/// Prescott: SSE3, 4 floats per instruction, measured at about a quarter of Herd's own
/// packed kernel there. Herd then runs its general products on its own kernels
/// (``GeneralGemm``) instead.
///
/// `HERD_GEMM` chooses: `auto` (the default: Herd's kernels when OpenBLAS's chosen
/// kernel is narrower than Herd's, OpenBLAS otherwise), `openblas` or `herd`.
public enum GemmBackend: String, Sendable, CaseIterable, CustomStringConvertible {
  case openblas
  case herd

  public var description: String { rawValue }

  /// OpenBLAS kernels (0.3.21's DYNAMIC_ARCH names) with AVX-512 code.
  static let avx512Cores: Set<String> = ["SkylakeX", "Cooperlake", "SapphireRapids"]
  /// OpenBLAS kernels with AVX2 and FMA code (the AVX-512 ones included).
  static let avx2Cores: Set<String> = avx512Cores.union(["Haswell", "Zen"])

  /// The backend `auto` picks for OpenBLAS's kernel `core` when Herd's kernels run
  /// on `isa`, and why.
  public static func automatic(openBLASCore core: String, isa: KernelISA) -> (GemmBackend, String) {
    switch isa {
    case .avx512 where !avx512Cores.contains(core):
      return (.herd, "OpenBLAS chose its \(core) kernel, which lacks AVX-512 code on this AVX-512 CPU")
    case .avx2 where !avx2Cores.contains(core) && CPUFeatures.has("avx2") && CPUFeatures.has("fma"):
      return (.herd, "OpenBLAS chose its \(core) kernel, which lacks AVX2 code on this AVX2 CPU")
    default:
      return (.openblas, "OpenBLAS chose its \(core) kernel")
    }
  }

  /// The backend for `HERD_GEMM`'s value `setting` (nil or empty: auto), and why;
  /// a warning for a value that is none of auto, openblas, herd (auto is used).
  public static func choose(setting: String?, openBLASCore core: String, isa: KernelISA) -> (
    backend: GemmBackend, reason: String, warning: String?
  ) {
    let auto = automatic(openBLASCore: core, isa: isa)
    guard let name = setting, !name.isEmpty, name != "auto" else { return (auto.0, auto.1, nil) }
    guard let chosen = GemmBackend(rawValue: name) else {
      return (auto.0, auto.1, "HERD_GEMM=\(name) is not one of auto, openblas, herd; using auto (\(auto.0))")
    }
    return (chosen, "HERD_GEMM=\(name)", nil)
  }

  /// The backend for this process, and why (for the logs), read once.
  public static let active: (backend: GemmBackend, reason: String) = {
    let choice = choose(
      setting: getenv("HERD_GEMM").map { String(cString: $0) }, openBLASCore: BLAS.coreName, isa: .preferred)
    if let warning = choice.warning { writeToStandardError("herd: \(warning)\n") }
    return (choice.backend, choice.reason)
  }()
}

/// A general single-precision product `C = alpha op(A) op(B) + beta C` on Herd's
/// packed register-tile kernels (``PackedMatrix``), one thread.
///
/// op(B) is packed into column panels one block of k at a time. op(A) is read in
/// place when stored as used; stored transposed (a weight gradient's `dG^T x`) it is
/// copied a block at a time into tiles of rows, which the kernel streams in order. A
/// narrow product (n <= 16 on AVX-512) over a transposed A runs as `C^T = op(B)^T A`;
/// alpha other than 1 copies a scaled block. Each element of C is one fused multiply-add chain
/// over k in order, starting from 0 or from `beta * C`: its value depends only on its
/// row of op(A) and its column of op(B), never on m or on where the row sits.
public enum GeneralGemm {
  /// Rows of k per packed block: a 32-column panel block of 256 rows is 32 KiB.
  static let kBlock = 256
  /// Rows of op(A) per copied block when op(A) must be copied.
  static let mBlock = 512

  public static func multiply(
    _ transA: Transpose, _ transB: Transpose,
    m: Int, n: Int, k: Int,
    alpha: Float,
    a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float,
    c: UnsafeMutablePointer<Float>, ldc: Int,
    isa: KernelISA = .preferred
  ) {
    guard m > 0, n > 0 else { return }
    if beta != 0 && beta != 1 {
      for row in 0..<m {
        let crow = c + row &* ldc
        for col in 0..<n { crow[col] *= beta }
      }
    }
    guard k > 0, alpha != 0 else {
      if beta == 0 { for row in 0..<m { (c + row &* ldc).update(repeating: 0, count: n) } }
      return
    }
    let workspace = GemmWorkspace.current
    let packed = workspace.packing(.single, isa: isa, narrow: n <= 16)
    let narrow = packed.panelWidth == 16 && isa == .avx512
    if transA == .transposed && narrow && alpha == 1 && m > 16 {
      // A narrow product over a transposed A (a convolution's weight gradient
      // `patches^T dY` with 16 output channels): the narrow tiles cannot read A in
      // tiles, and copying A^T row by row is a strided pass over the whole of it.
      // Computed as C^T = op(B)^T A, whose left side is the small one.
      multiplyTransposed(transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, isa: isa)
      return
    }
    // A scaled A is copied (scaled) a block at a time.
    let copyA = alpha != 1 || (transA == .transposed && narrow)
    if !copyA && transA == .transposed {
      // A transposed goes into tiles of rows (streamed in order), a block at a time:
      // the shared-A product with one right side (C already holds beta C).
      multiply(
        transposedA: a, lda: lda, m: m, k: k, beta: beta == 0 ? 0 : 1,
        products: [GemmRightSide(n: n, b: b, ldb: ldb, c: c, ldc: ldc, transposedB: transB == .transposed)], isa: isa)
      return
    }
    let kc = min(kBlock, k)
    let mc = copyA ? min(mBlock, m) : m
    // Room for mc rows of kc.
    let scratch = workspace.buffer(.copiedA, count: copyA ? mc &* kc : 1)
    var k0 = 0
    while k0 < k {
      let kn = min(kc, k &- k0)
      // op(B)[k0 ..< k0 + kn, 0 ..< n]: rows of B, or columns of the stored B^T.
      let bBlock = transB == .none ? b + k0 &* ldb : b + k0
      packed.pack(bBlock, ld: ldb, transposed: transB == .transposed, k: kn, n: n)
      let accumulate = k0 > 0 || beta != 0
      var m0 = 0
      while m0 < m {
        let mn = min(mc, m &- m0)
        if copyA {
          copyRows(transA, a: a, lda: lda, alpha: alpha, rows: m0, mn, cols: k0, kn, into: scratch)
          packed.compute(
            UnsafePointer(scratch), lda: kn, rows: mn, into: c + m0 &* ldc, ldc: ldc, accumulate: accumulate)
        } else {
          packed.compute(a + (m0 &* lda &+ k0), lda: lda, rows: mn, into: c + m0 &* ldc, ldc: ldc, accumulate: accumulate)
        }
        m0 &+= mn
      }
      k0 &+= kn
    }
  }

  /// ``BLAS/gemm(transposedA:lda:m:k:beta:products:)`` on Herd's kernels, and the
  /// path of ``multiply(_:_:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:isa:)`` for a
  /// transposed A: per block of k, every `B_i` is packed, and per block of rows A^T is
  /// copied into tiles once and streamed against each of them. Each element is one
  /// fused chain over k in order whatever the other products, so the bits are those
  /// of one call per product. A product of at most 16 columns on AVX-512 (whose
  /// narrow packing does not read tiles) runs alone, through `multiply`.
  public static func multiply(
    transposedA a: UnsafePointer<Float>, lda: Int, m: Int, k: Int, beta: Float, products: [GemmRightSide],
    isa: KernelISA = .preferred
  ) {
    precondition(beta == 0 || beta == 1, "GeneralGemm.multiply(transposedA:): beta \(beta), not 0 or 1")
    let shared = products.filter { !(isa == .avx512 && $0.n <= 16) && $0.n > 0 }
    for r in products where isa == .avx512 && r.n <= 16 {
      multiply(
        .transposed, r.transposedB ? .transposed : .none, m: m, n: r.n, k: k, alpha: 1, a: a, lda: lda, b: r.b,
        ldb: r.ldb, beta: beta, c: r.c, ldc: r.ldc, isa: isa)
    }
    guard m > 0, !shared.isEmpty else { return }
    guard k > 0 else {
      if beta == 0 { for r in shared { for row in 0..<m { (r.c + row &* r.ldc).update(repeating: 0, count: r.n) } } }
      return
    }
    let workspace = GemmWorkspace.current
    let packs = shared.indices.map { workspace.packing(.shared($0), isa: isa, narrow: false) }
    let kc = min(kBlock, k)
    let mc = min(mBlock, m)
    let scratch = workspace.buffer(.tiles, count: (mc &+ 7) &* kc)
    var k0 = 0
    while k0 < k {
      let kn = min(kc, k &- k0)
      for (i, r) in shared.enumerated() {
        // op(B_i)[k0 ..< k0 + kn, 0 ..< n]: rows of B, or columns of the stored B^T.
        let block = r.transposedB ? r.b + k0 : r.b + k0 &* r.ldb
        packs[i].pack(block, ld: r.ldb, transposed: r.transposedB, k: kn, n: r.n)
      }
      let accumulate = k0 > 0 || beta != 0
      var m0 = 0
      while m0 < m {
        let mn = min(mc, m &- m0)
        packs[0].packTiles(transposedA: a + (k0 &* lda &+ m0), lda: lda, rows: mn, into: scratch)
        for (i, r) in shared.enumerated() {
          packs[i].compute(
            UnsafePointer(scratch), lda: kn, rows: mn, into: r.c + m0 &* r.ldc, ldc: r.ldc, accumulate: accumulate,
            tiles: true)
        }
        m0 &+= mn
      }
      k0 &+= kn
    }
  }

  /// `C = A^T op(B) + beta C` (A stored `[k, m]`) as `C^T = op(B)^T A` into a
  /// scratch `[n, m]` that starts as `beta C^T`, copied back: each element is still
  /// one chain over k in order, starting from `beta C`.
  static func multiplyTransposed(
    _ transB: Transpose, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, isa: KernelISA
  ) {
    let t = GemmWorkspace.current.buffer(.transposedC, count: n &* m)
    if beta != 0 {
      for i in 0..<m {
        let crow = c + i &* ldc
        for j in 0..<n { t[j &* m &+ i] = crow[j] }
      }
    }
    // op(B)^T is `[n, k]`: B itself when stored transposed, else B^T.
    multiply(
      transB == .none ? .transposed : .none, .none, m: n, n: m, k: k, alpha: 1, a: b, lda: ldb, b: a, ldb: lda,
      beta: beta == 0 ? 0 : 1, c: t, ldc: m, isa: isa)
    for i in 0..<m {
      let crow = c + i &* ldc
      for j in 0..<n { crow[j] = t[j &* m &+ i] }
    }
  }

  /// `dst [rows][cols] = alpha op(A)[r0 ..< r0 + rows, c0 ..< c0 + cols]`.
  @inline(__always)
  static func copyRows(
    _ transA: Transpose, a: UnsafePointer<Float>, lda: Int, alpha: Float, rows r0: Int, _ rows: Int, cols c0: Int,
    _ cols: Int, into dst: UnsafeMutablePointer<Float>
  ) {
    if transA == .none {
      for i in 0..<rows {
        let src = a + ((r0 &+ i) &* lda &+ c0)
        let out = dst + i &* cols
        for j in 0..<cols { out[j] = alpha * src[j] }
      }
      return
    }
    // op(A)[i, j] = A[c0 + j, r0 + i]: walk A's rows (contiguous in i) in blocks of
    // 16 destination rows, so the written lines stay in L1 while a block fills.
    var i0 = 0
    while i0 < rows {
      let ib = min(16, rows &- i0)
      for j in 0..<cols {
        let src = a + ((c0 &+ j) &* lda &+ r0 &+ i0)
        let out = dst + (i0 &* cols &+ j)
        if alpha == 1 {
          for i in 0..<ib { out[i &* cols] = src[i] }
        } else {
          for i in 0..<ib { out[i &* cols] = alpha * src[i] }
        }
      }
      i0 &+= 16
    }
  }
}

/// The packings and scratch buffers ``GeneralGemm`` reuses from call to call, one set
/// per thread (a learner's shards multiply at the same time).
///
/// Why: allocated per call, the half-megabyte tile scratch and the packed blocks went
/// back to the C heap's top on every free, which glibc then trimmed and grew again:
/// fresh pages, a fault and a clearing for each, several times per learner step (4.5%
/// of the step's samples were in the Linux kernel on Herd's kernels; 2.0% with this). A
/// thread keeps what its largest product needed (a few MiB) until it exits.
final class GemmWorkspace {
  /// A buffer's use. Calls nest (a transposed product runs another product inside
  /// it), so each use site has a slot of its own and no slot is live twice.
  enum Slot: Hashable {
    /// Op(B) of ``GeneralGemm/multiply(_:_:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:isa:)``.
    case single
    /// Op(B_i) of ``GeneralGemm/multiply(transposedA:lda:m:k:beta:products:isa:)``.
    case shared(Int)
    /// A block of op(A) copied (scaled) into rows.
    case copiedA
    /// A block of A^T copied into tiles.
    case tiles
    /// `C^T` of a product run transposed.
    case transposedC
  }

  private struct PackingKey: Hashable {
    let slot: Slot
    let isa: KernelISA
    let narrow: Bool
  }

  private var packings: [PackingKey: PackedMatrix] = [:]
  private var buffers: [Slot: (pointer: UnsafeMutablePointer<Float>, capacity: Int)] = [:]

  deinit { for (_, b) in buffers { b.pointer.deallocate() } }

  /// The packing of `slot` for `isa` (created on first use).
  func packing(_ slot: Slot, isa: KernelISA, narrow: Bool) -> PackedMatrix {
    let key = PackingKey(slot: slot, isa: isa, narrow: narrow)
    if let p = packings[key] { return p }
    let p = PackedMatrix(isa: isa, narrow: narrow)
    packings[key] = p
    return p
  }

  /// At least `count` floats for `slot`; what it held before is not kept.
  func buffer(_ slot: Slot, count: Int) -> UnsafeMutablePointer<Float> {
    if let b = buffers[slot], b.capacity >= count { return b.pointer }
    buffers[slot]?.pointer.deallocate()
    let capacity = max(count, 16)
    let pointer = UnsafeMutablePointer<Float>.allocate(capacity: capacity)
    buffers[slot] = (pointer, capacity)
    return pointer
  }

  /// The calling thread's workspace.
  static var current: GemmWorkspace {
    if let p = pthread_getspecific(key) { return Unmanaged<GemmWorkspace>.fromOpaque(p).takeUnretainedValue() }
    let workspace = GemmWorkspace()
    let rc = pthread_setspecific(key, Unmanaged.passRetained(workspace).toOpaque())
    precondition(rc == 0, "GemmWorkspace: pthread_setspecific failed (\(rc))")
    return workspace
  }

  /// Releases a thread's workspace when the thread exits.
  private static let key: pthread_key_t = {
    var key = pthread_key_t()
    let rc = pthread_key_create(&key) { p in
      if let p { Unmanaged<GemmWorkspace>.fromOpaque(p).release() }
    }
    precondition(rc == 0, "GemmWorkspace: pthread_key_create failed (\(rc))")
    return key
  }()
}
