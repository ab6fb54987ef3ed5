import CVector

#if canImport(Glibc)
  import Glibc
#endif

/// The instruction set a ``PackedMatrix`` kernel runs on.
///
/// - `avx512`: 16-float vectors, a register tile of 8 rows x 32 columns (16 of the
///   32 vector registers hold the tile). Chosen only when the build passes
///   `-DHERD_AVX512` with an AVX-512 target CPU (the Makefile does on such hosts)
///   and the CPU reports `avx512f`. Its code is in every build, so that the tests
///   check its tiles, tails and packing on any machine: built for AVX2, its 16-wide
///   vectors become pairs of 8-wide ones (correct, and slower than the `avx2` kernel).
/// - `avx2`: 8-float vectors, a tile of 6 rows x 16 columns (12 of the 16 registers);
///   with A read in place, a row tail runs on tiles of 4 rows (8 accumulators).
///   Always available; built for a CPU without AVX2 it still runs, on SSE halves.
public enum KernelISA: String, Sendable, CaseIterable, CustomStringConvertible {
  case avx512
  case avx2

  /// Columns per packed panel.
  public var panelWidth: Int { self == .avx512 ? 32 : 16 }
  /// Rows per register tile.
  public var tileRows: Int { self == .avx512 ? 8 : 6 }

  public var description: String { rawValue }

  /// Whether this build targets the kernel's instruction set and this CPU has it:
  /// the kernels ``preferred`` and `HERD_KERNEL_ISA` may choose. (Any kernel runs
  /// correctly in any build; a test may run one that is not available.)
  public var isAvailable: Bool {
    switch self {
    case .avx2: return true
    case .avx512:
      #if HERD_AVX512
        return CPUFeatures.has("avx512f")
      #else
        return false
      #endif
    }
  }

  /// The widest available kernel, unless `HERD_KERNEL_ISA` names another
  /// (`avx2` forces the 8-wide path on an AVX-512 machine). An unknown or
  /// unavailable name is reported on stderr once, and the widest kernel is used.
  public static let preferred: KernelISA = {
    let best: KernelISA = KernelISA.avx512.isAvailable ? .avx512 : .avx2
    guard let name = getenv("HERD_KERNEL_ISA").map({ String(cString: $0) }), !name.isEmpty else { return best }
    guard let isa = KernelISA(rawValue: name) else {
      writeToStandardError("herd: HERD_KERNEL_ISA=\(name) is not one of avx512, avx2; using \(best)\n")
      return best
    }
    guard isa.isAvailable else {
      writeToStandardError(
        "herd: HERD_KERNEL_ISA=\(name) is not available in this build or on this CPU; using \(best)\n")
      return best
    }
    return isa
  }()
}

/// Rows per register tile of the AVX-512 kernels on one-vector panels (16 columns):
/// a first convolution with 16 output channels, a product's last 16 columns.
///
/// 16 rows keep 16 accumulators and need 16 row pointers, more than the general
/// registers, so an AVX-512 build reloads 6-7 of them from the stack on every kk; 8
/// rows need no reloads but read the panel twice. 8 is the default: on a Zen 5 EPYC
/// it ran `impala_shallow` (whose first convolution has 16 output channels) about 5%
/// faster, and every other benchmark level. Which is faster depends on the CPU (the
/// loads per cycle against the 512-bit FMAs per cycle), so it stays a setting:
/// `HERD_NARROW_ROWS=8` (the default) or `16`. Both give the same bits. AVX2 has no
/// narrow tiles and ignores it.
public enum NarrowTiles {
  /// Rows when the setting is absent or bad.
  public static let defaultRows = 8

  /// The setting's value for `setting` (nil or empty: the default), and a warning
  /// for a bad one.
  public static func rows(setting: String?) -> (rows: Int, warning: String?) {
    guard let setting, !setting.isEmpty else { return (defaultRows, nil) }
    guard let rows = Int(setting), rows == 8 || rows == 16 else {
      return (defaultRows, "HERD_NARROW_ROWS=\(setting) is neither 8 nor 16; using \(defaultRows)")
    }
    return (rows, nil)
  }

  /// `HERD_NARROW_ROWS`, read once; a bad value is reported on stderr and the default used.
  public static let rows: Int = {
    let chosen = rows(setting: getenv("HERD_NARROW_ROWS").map { String(cString: $0) })
    if let warning = chosen.warning { writeToStandardError("herd: \(warning)\n") }
    return chosen.rows
  }()
}

/// CPU feature flags as Linux reports them (`/proc/cpuinfo`), read once.
public enum CPUFeatures {
  static let flags: Set<Substring> = {
    var flags: Set<Substring> = []
    forEachLine(ofFile: "/proc/cpuinfo") { line in
      let s = String(cString: line)
      guard s.hasPrefix("flags") else { return true }
      let value = s.split(separator: ":", maxSplits: 1).last ?? ""
      flags = Set(value.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }))
      return false
    }
    return flags
  }()

  /// Whether the first CPU lists `flag` (for example `avx512f`, `avx2`, `fma`).
  public static func has(_ flag: String) -> Bool { flags.contains(Substring(flag)) }
}

/// The right-hand side `B [k, n]` of many products `C = A B`, packed once into the
/// layout the kernels stream (column panels of ``KernelISA/panelWidth``, each
/// `[k][width]` contiguous, the last one zero-padded). On AVX-512, when the last
/// panel would hold 16 columns or fewer (n = 67: 64 + 3), it is 16 wide and runs on
/// tiles of 16 rows x 1 vector, which multiply half the padding zeros of a 32-wide
/// panel at about the same cost per product (8 rows with `HERD_NARROW_ROWS=8`, see
/// ``NarrowTiles``, or when A's rows are 2 KiB apart or a multiple of it; with A in
/// tiles and at most 4 columns, the rows go in the lanes instead; see
/// `PackedKernels`).
///
/// Why: the recurrent products are skinny (`[32, 256] x [256, 1024]`, once per time
/// step), and a general GEMM repacks its right-hand side on every call. Packed once
/// per update, the weights are reused for every step, and each output element is one
/// fused multiply-add chain over k in order: the same bits whatever the row count
/// or the row's position, so a rollout step of K rows and a training batch of P rows
/// agree exactly.
public final class PackedMatrix: @unchecked Sendable {
  /// Inner dimension.
  public private(set) var k = 0
  /// Columns of B (and of C).
  public private(set) var n = 0
  /// The kernel the layout is for.
  public private(set) var isa: KernelISA
  /// Panels one vector wide with a taller tile (AVX-512: 16 rows x 16 columns),
  /// for products of at most 16 columns, where the 32-column panel would multiply
  /// zeros half the time: a first convolution with 16 output channels. On AVX2 the
  /// normal panel is already 16 columns wide, so this changes nothing there.
  public let narrow: Bool

  /// Rows per tile on the AVX-512 one-vector (16-column) panels: 16 (the default)
  /// or 8 (see ``NarrowTiles``). The results are the same bits either way; only the
  /// speed differs. Tests set it to run both.
  public var narrowRows: Int = NarrowTiles.rows {
    didSet { precondition(narrowRows == 8 || narrowRows == 16, "PackedMatrix.narrowRows \(narrowRows) is not 8 or 16") }
  }

  /// Columns per packed panel of this packing.
  public var panelWidth: Int { narrow && isa == .avx512 ? 16 : isa.panelWidth }
  /// Columns of the last panel: ``panelWidth``, or 16 for a wide AVX-512 packing
  /// whose last panel has at most 16 columns of B.
  public var lastPanelWidth: Int { Self.lastPanelWidth(n: n, panelWidth: panelWidth, isa: isa) }

  static func lastPanelWidth(n: Int, panelWidth w: Int, isa: KernelISA) -> Int {
    guard isa == .avx512, w == 32 else { return w }
    let rest = n % w
    return rest >= 1 && rest <= 16 ? 16 : w
  }
  private(set) var storage: UnsafeMutablePointer<Float>
  private var capacity = 0
  /// Bumped by every ``pack(_:ld:transposed:k:n:)``; callers use it with their own
  /// keys to know whether a packing is current.
  public private(set) var packCount = 0

  /// An empty packing for `isa` (default: the preferred kernel). Any kernel runs in
  /// any build (see ``KernelISA``); one that is not available only runs slower.
  public init(isa: KernelISA = .preferred, narrow: Bool = false) {
    self.isa = isa
    self.narrow = narrow
    storage = UnsafeMutablePointer<Float>.allocate(capacity: 16)
    capacity = 16
  }

  deinit { storage.deallocate() }

  /// Packs `B [k, n]`. With `transposed`, `b` holds `B^T` as `[n, k]` row-major
  /// (a weight `W [n, k]` for `x W^T`); otherwise `b` is `B [k, n]`. `ld` is the
  /// stored matrix's row stride.
  public func pack(_ b: UnsafePointer<Float>, ld: Int, transposed: Bool, k: Int, n: Int) {
    precondition(k >= 0 && n >= 0, "PackedMatrix.pack: k \(k), n \(n)")
    let full = panelWidth
    let panels = (n &+ full &- 1) / full
    let last = Self.lastPanelWidth(n: n, panelWidth: full, isa: isa)
    let need = max(16, (panels &* full &- full &+ last) &* k)
    if need > capacity {
      storage.deallocate()
      storage = UnsafeMutablePointer<Float>.allocate(capacity: need)
      capacity = need
    }
    self.k = k
    self.n = n
    for p in 0..<panels {
      let c0 = p &* full
      // Every panel before the last is full width, so panel p starts at c0 * k.
      let panel = storage + c0 &* k
      let w = p == panels &- 1 ? last : full
      let cols = min(w, n &- c0)
      if transposed {
        // B[kk, c0 + j] = b[(c0 + j) * ld + kk]: blocks of 128 k at a time, so the
        // panel's rows are written whole while the `cols` source rows (512 bytes
        // of each) stay in L1, and each source row is read in runs of 8 lines (runs
        // of one line, 16 k, took 1.35 times as long for W_hh [1024, 256] in cache
        // and from memory); 8 x 8 blocks transposed in registers, the edges one
        // float at a time.
        let cols8 = cols & ~7
        var k0 = 0
        while k0 < k {
          let kn = min(128, k &- k0)
          let kn8 = kn & ~7
          var j = 0
          while j < cols8 {
            let src = b + ((c0 &+ j) &* ld &+ k0)
            let dst = panel + (k0 &* w &+ j)
            var kk = 0
            while kk < kn8 {
              herd_transpose8x8(src + kk, ld, dst + kk &* w, w)
              kk &+= 8
            }
            for r in 0..<8 {
              for kk in kn8..<kn { dst[kk &* w &+ r] = src[r &* ld &+ kk] }
            }
            j &+= 8
          }
          for j in cols8..<cols {
            let src = b + ((c0 &+ j) &* ld &+ k0)
            let dst = panel + (k0 &* w &+ j)
            for kk in 0..<kn { dst[kk &* w] = src[kk] }
          }
          k0 &+= 128
        }
      } else if cols == w {
        // Whole panel rows: 16 floats at a time (a memmove call per row of 32 floats
        // cost more than the copy).
        for kk in 0..<k {
          let src = UnsafeRawPointer(b + (kk &* ld &+ c0))
          let dst = UnsafeMutableRawPointer(panel + kk &* w)
          var j = 0
          while j < w {
            dst.storeBytes(of: src.loadUnaligned(fromByteOffset: j &* 4, as: SIMD16<Float>.self), toByteOffset: j &* 4, as: SIMD16<Float>.self)
            j &+= 16
          }
        }
      } else {
        for kk in 0..<k {
          (panel + kk &* w).update(from: b + (kk &* ld &+ c0), count: cols)
        }
      }
      if cols < w {
        for kk in 0..<k { (panel + kk &* w + cols).update(repeating: 0, count: w &- cols) }
      }
    }
    packCount &+= 1
  }

  /// `C [m, n] = A [m, k] B` (or `C += A B` with `accumulate`), A and C row-major
  /// with row strides `lda` and `ldc`.
  ///
  /// Each element is `fma` over kk = 0..<k in order, starting from 0 or from C: its
  /// value depends on its row of A and column of B only.
  public func multiply(
    _ a: UnsafePointer<Float>, lda: Int, rows m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int,
    accumulate: Bool
  ) {
    guard m > 0, n > 0 else { return }
    if let recorder = GemmRecorder.current {
      recorder.record(
        GemmShape(transA: .none, transB: .none, m: m, n: n, k: k, lda: lda, ldb: n, ldc: ldc, beta: accumulate ? 1 : 0))
    }
    compute(a, lda: lda, rows: m, into: c, ldc: ldc, accumulate: accumulate)
  }

  /// ``multiply(_:lda:rows:into:ldc:accumulate:)`` without recording the shape
  /// (``GeneralGemm`` records its own). With `tiles`, `a` holds A in the tiles
  /// ``packTiles(transposedA:lda:rows:into:)`` wrote (`lda` unused), which the
  /// narrow packing does not read.
  func compute(
    _ a: UnsafePointer<Float>, lda: Int, rows m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int,
    accumulate: Bool, tiles: Bool = false
  ) {
    guard m > 0, n > 0 else { return }
    precondition(!(tiles && panelWidth == 16 && isa == .avx512), "the narrow packing does not read A in tiles")
    guard k > 0 else {
      if !accumulate { for r in 0..<m { (c + r &* ldc).update(repeating: 0, count: n) } }
      return
    }
    switch isa {
    case .avx512:
      if panelWidth == 16 {
        PackedKernels.run512Narrow(
          a, lda: lda, m: m, b: UnsafePointer(storage), k: k, n: n, c: c, ldc: ldc, accumulate: accumulate,
          rows: narrowRows)
        return
      }
      // Full panels on the wide tiles, a 16-wide last panel on the narrow ones (16 or 8 rows).
      let wide = lastPanelWidth == 16 ? n &- n % 32 : n
      if wide > 0 {
        if tiles {
          PackedKernels.run512Tiles(a, m: m, b: UnsafePointer(storage), k: k, n: wide, c: c, ldc: ldc, accumulate: accumulate)
        } else {
          PackedKernels.run512(a, lda: lda, m: m, b: UnsafePointer(storage), k: k, n: wide, c: c, ldc: ldc, accumulate: accumulate)
        }
      }
      if wide < n {
        let tail = UnsafePointer(storage + wide &* k)
        if tiles {
          PackedKernels.run512HalfTailTiles(a, m: m, b: tail, k: k, n: n &- wide, c: c + wide, ldc: ldc, accumulate: accumulate)
        } else {
          PackedKernels.run512Narrow(
            a, lda: lda, m: m, b: tail, k: k, n: n &- wide, c: c + wide, ldc: ldc, accumulate: accumulate,
            rows: narrowRows)
        }
      }
    case .avx2:
      if tiles {
        PackedKernels.run256Tiles(a, m: m, b: UnsafePointer(storage), k: k, n: n, c: c, ldc: ldc, accumulate: accumulate)
        return
      }
      PackedKernels.run256(a, lda: lda, m: m, b: UnsafePointer(storage), k: k, n: n, c: c, ldc: ldc, accumulate: accumulate)
    }
  }
}

extension PackedMatrix {
  /// Copies A `[m, k]`, given as `A^T` stored `[k, m]` (row stride `lda`), into tiles
  /// of ``KernelISA/tileRows`` rows, each `[k][rows]` contiguous: the kernel then streams
  /// A in order, where reading `A^T` in place touches a new line (k rows apart) for
  /// every kk. Rows past m in the last tile are left unwritten (never read).
  func packTiles(transposedA a: UnsafePointer<Float>, lda: Int, rows m: Int, into dst: UnsafeMutablePointer<Float>) {
    let r = isa.tileRows
    var t0 = 0
    // Two whole 8-row tiles at a time: each 64-byte line of A^T is read once for
    // both (with A^T's rows 4 KiB apart, as dG^T's are for H = 256, the lines of
    // one tile's walk share an L1 set and were evicted before the next tile read
    // their other half).
    if r == 8 {
      while t0 &+ 16 <= m {
        let low = dst + t0 &* k
        let high = low + 8 &* k
        for kk in 0..<k {
          let v = UnsafeRawPointer(a + (kk &* lda &+ t0)).loadUnaligned(as: SIMD16<Float>.self)
          UnsafeMutableRawPointer(low + kk &* 8).storeBytes(of: v.lowHalf, as: SIMD8<Float>.self)
          UnsafeMutableRawPointer(high + kk &* 8).storeBytes(of: v.highHalf, as: SIMD8<Float>.self)
        }
        t0 &+= 16
      }
    }
    while t0 < m {
      let rows = min(r, m &- t0)
      let tile = dst + t0 &* k
      if rows == 8 && r == 8 {
        for kk in 0..<k {
          let v = UnsafeRawPointer(a + (kk &* lda &+ t0)).loadUnaligned(as: SIMD8<Float>.self)
          UnsafeMutableRawPointer(tile + kk &* 8).storeBytes(of: v, as: SIMD8<Float>.self)
        }
      } else {
        for kk in 0..<k {
          let src = a + (kk &* lda &+ t0)
          let out = tile + kk &* r
          for i in 0..<rows { out[i] = src[i] }
        }
      }
      t0 &+= r
    }
  }
}

/// The register-tile kernels behind ``PackedMatrix``.
///
/// A tile of R rows and two vectors of columns (2V) keeps 2R accumulators in
/// registers; per kk it loads two vectors of the panel and broadcasts R values of
/// A. Row tails reuse the last valid row (their results are dropped), column tails
/// go through a small buffer, so every element takes the same instruction path.
enum PackedKernels {
  @inline(never)
  static func run512(
    _ a: UnsafePointer<Float>, lda: Int, m: Int, b: UnsafePointer<Float>, k: Int, n: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) {
    run(SIMD16<Float>.self, rowsPerTile: 8, a, rs: lda, ks: 1, ts: lda, m: m, b: b, k: k, n: n, c: c, ldc: ldc, accumulate: accumulate)
  }

  /// One-vector panels (16 columns), tiles of `rows` (16 or 8, ``NarrowTiles``):
  /// 16 accumulators, one panel load and 16 broadcasts per kk, or 8 and 8 (tiles of
  /// 8 rows always when A's rows are 2 KiB apart or a multiple of it).
  @inline(never)
  static func run512Narrow(
    _ a: UnsafePointer<Float>, lda: Int, m: Int, b: UnsafePointer<Float>, k: Int, n: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool, rows tall: Int
  ) {
    // Rows 2 KiB apart or a multiple of it (a [P, 4H] gate gradient, H = 256): 16
    // rows would sit in one or two L1 sets, more lines than the ways, and miss on
    // every kk. 8 rows fit.
    let rows = lda % 512 == 0 ? 8 : tall
    forEachTile(width: 16, rowsPerTile: rows, m: m, n: n, k: k, b: b, c: c, ldc: ldc, accumulate: accumulate) {
      r, valid, panel, ct, ldct in
      if rows == 8 {
        tile8x1(a + r &* lda, lda: lda, valid: valid, panel: panel, k: k, c: ct, ldc: ldct, accumulate: accumulate)
      } else {
        tile16x1(a + r &* lda, lda: lda, valid: valid, panel: panel, k: k, c: ct, ldc: ldct, accumulate: accumulate)
      }
    }
  }

  /// A last panel 16 wide (its `n` <= 16 columns at `b`) over A in tiles of 8 rows:
  /// at most 4 columns with the rows in the lanes
  /// (``run512FewColumnsTiles(_:m:b:k:n:c:ldc:accumulate:)``), more on tiles of 16
  /// rows.
  @inline(never)
  static func run512HalfTailTiles(
    _ a: UnsafePointer<Float>, m: Int, b: UnsafePointer<Float>, k: Int, n: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) {
    if n <= 4 {
      run512FewColumnsTiles(a, m: m, b: b, k: k, n: n, c: c, ldc: ldc, accumulate: accumulate)
      return
    }
    let w = 16
    let spare = UnsafeMutablePointer<Float>.allocate(capacity: 16 &* 16)
    defer { spare.deallocate() }
    var r = 0
    while r < m {
      let valid = min(16, m &- r)
      if n == w {
        tile16x1Tiles(a + r &* k, valid: valid, panel: b, k: k, c: c + r &* ldc, ldc: ldc, accumulate: accumulate)
      } else {
        throughSpare(spare, width: w, c: c + r &* ldc, ldc: ldc, rows: valid, cols: n, accumulate: accumulate) {
          tile16x1Tiles(a + r &* k, valid: valid, panel: b, k: k, c: $0, ldc: w, accumulate: accumulate)
        }
      }
      r &+= 16
    }
  }

  /// A last panel of at most 4 columns (16 wide at `b`, zero-padded) over A in the
  /// tiles of 8 rows ``PackedMatrix/packTiles(transposedA:lda:rows:into:)`` wrote,
  /// with the rows in the lanes: per kk one eight-lane load from each of 4 tiles
  /// (32 rows), 4 broadcasts from the panel, 16 eight-lane FMAs. The 16-row tile
  /// of a whole vector of columns takes 32 sixteen-lane FMAs for the same 32 rows,
  /// 13 of its 16 columns zeros when n = 67 (64 + 3). Each element is still one
  /// fma chain over kk in order, starting from 0 or from C.
  @inline(never)
  static func run512FewColumnsTiles(
    _ a: UnsafePointer<Float>, m: Int, b: UnsafePointer<Float>, k: Int, n: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) {
    precondition(n <= 4, "run512FewColumnsTiles: n \(n) > 4")
    let lastTile = (m &+ 7) / 8 &- 1
    var t = 0
    while t <= lastTile {
      fewColumnsTiles(a, t: t, lastTile: lastTile, m: m, b: b, k: k, n: n, c: c, ldc: ldc, accumulate: accumulate)
      t &+= 4
    }
  }

  /// Tiles t ..< t + 4 of ``run512FewColumnsTiles(_:m:b:k:n:c:ldc:accumulate:)``
  /// (tiles past the last read the last one; only rows below m and columns below n
  /// are read from or written to C).
  @inline(__always)
  static func fewColumnsTiles(
    _ a: UnsafePointer<Float>, t: Int, lastTile: Int, m: Int, b: UnsafePointer<Float>, k: Int, n: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) {
    typealias V = SIMD8<Float>
    let p0 = a + min(t &+ 0, lastTile) &* 8 &* k
    let p1 = a + min(t &+ 1, lastTile) &* 8 &* k
    let p2 = a + min(t &+ 2, lastTile) &* 8 &* k
    let p3 = a + min(t &+ 3, lastTile) &* 8 &* k
    var x00 = accumulate ? gather(c, ldc: ldc, row: (t &+ 0) &* 8, rows: m, col: 0, cols: n) : V()
    var x01 = accumulate ? gather(c, ldc: ldc, row: (t &+ 0) &* 8, rows: m, col: 1, cols: n) : V()
    var x02 = accumulate ? gather(c, ldc: ldc, row: (t &+ 0) &* 8, rows: m, col: 2, cols: n) : V()
    var x03 = accumulate ? gather(c, ldc: ldc, row: (t &+ 0) &* 8, rows: m, col: 3, cols: n) : V()
    var x10 = accumulate ? gather(c, ldc: ldc, row: (t &+ 1) &* 8, rows: m, col: 0, cols: n) : V()
    var x11 = accumulate ? gather(c, ldc: ldc, row: (t &+ 1) &* 8, rows: m, col: 1, cols: n) : V()
    var x12 = accumulate ? gather(c, ldc: ldc, row: (t &+ 1) &* 8, rows: m, col: 2, cols: n) : V()
    var x13 = accumulate ? gather(c, ldc: ldc, row: (t &+ 1) &* 8, rows: m, col: 3, cols: n) : V()
    var x20 = accumulate ? gather(c, ldc: ldc, row: (t &+ 2) &* 8, rows: m, col: 0, cols: n) : V()
    var x21 = accumulate ? gather(c, ldc: ldc, row: (t &+ 2) &* 8, rows: m, col: 1, cols: n) : V()
    var x22 = accumulate ? gather(c, ldc: ldc, row: (t &+ 2) &* 8, rows: m, col: 2, cols: n) : V()
    var x23 = accumulate ? gather(c, ldc: ldc, row: (t &+ 2) &* 8, rows: m, col: 3, cols: n) : V()
    var x30 = accumulate ? gather(c, ldc: ldc, row: (t &+ 3) &* 8, rows: m, col: 0, cols: n) : V()
    var x31 = accumulate ? gather(c, ldc: ldc, row: (t &+ 3) &* 8, rows: m, col: 1, cols: n) : V()
    var x32 = accumulate ? gather(c, ldc: ldc, row: (t &+ 3) &* 8, rows: m, col: 2, cols: n) : V()
    var x33 = accumulate ? gather(c, ldc: ldc, row: (t &+ 3) &* 8, rows: m, col: 3, cols: n) : V()
    var kk = 0
    while kk < k {
      let v0 = UnsafeRawPointer(p0).loadUnaligned(fromByteOffset: kk &* 32, as: V.self)
      let v1 = UnsafeRawPointer(p1).loadUnaligned(fromByteOffset: kk &* 32, as: V.self)
      let v2 = UnsafeRawPointer(p2).loadUnaligned(fromByteOffset: kk &* 32, as: V.self)
      let v3 = UnsafeRawPointer(p3).loadUnaligned(fromByteOffset: kk &* 32, as: V.self)
      let b0 = V(repeating: b[kk &* 16 &+ 0])
      let b1 = V(repeating: b[kk &* 16 &+ 1])
      let b2 = V(repeating: b[kk &* 16 &+ 2])
      let b3 = V(repeating: b[kk &* 16 &+ 3])
      x00.multiplyAdd(v0, b0); x01.multiplyAdd(v0, b1); x02.multiplyAdd(v0, b2); x03.multiplyAdd(v0, b3)
      x10.multiplyAdd(v1, b0); x11.multiplyAdd(v1, b1); x12.multiplyAdd(v1, b2); x13.multiplyAdd(v1, b3)
      x20.multiplyAdd(v2, b0); x21.multiplyAdd(v2, b1); x22.multiplyAdd(v2, b2); x23.multiplyAdd(v2, b3)
      x30.multiplyAdd(v3, b0); x31.multiplyAdd(v3, b1); x32.multiplyAdd(v3, b2); x33.multiplyAdd(v3, b3)
      kk &+= 1
    }
    scatter(x00, c, ldc: ldc, row: (t &+ 0) &* 8, rows: m, col: 0, cols: n)
    scatter(x01, c, ldc: ldc, row: (t &+ 0) &* 8, rows: m, col: 1, cols: n)
    scatter(x02, c, ldc: ldc, row: (t &+ 0) &* 8, rows: m, col: 2, cols: n)
    scatter(x03, c, ldc: ldc, row: (t &+ 0) &* 8, rows: m, col: 3, cols: n)
    scatter(x10, c, ldc: ldc, row: (t &+ 1) &* 8, rows: m, col: 0, cols: n)
    scatter(x11, c, ldc: ldc, row: (t &+ 1) &* 8, rows: m, col: 1, cols: n)
    scatter(x12, c, ldc: ldc, row: (t &+ 1) &* 8, rows: m, col: 2, cols: n)
    scatter(x13, c, ldc: ldc, row: (t &+ 1) &* 8, rows: m, col: 3, cols: n)
    scatter(x20, c, ldc: ldc, row: (t &+ 2) &* 8, rows: m, col: 0, cols: n)
    scatter(x21, c, ldc: ldc, row: (t &+ 2) &* 8, rows: m, col: 1, cols: n)
    scatter(x22, c, ldc: ldc, row: (t &+ 2) &* 8, rows: m, col: 2, cols: n)
    scatter(x23, c, ldc: ldc, row: (t &+ 2) &* 8, rows: m, col: 3, cols: n)
    scatter(x30, c, ldc: ldc, row: (t &+ 3) &* 8, rows: m, col: 0, cols: n)
    scatter(x31, c, ldc: ldc, row: (t &+ 3) &* 8, rows: m, col: 1, cols: n)
    scatter(x32, c, ldc: ldc, row: (t &+ 3) &* 8, rows: m, col: 2, cols: n)
    scatter(x33, c, ldc: ldc, row: (t &+ 3) &* 8, rows: m, col: 3, cols: n)
  }

  /// Column `col` of C for rows `row ..< row + 8` as lanes (rows from m on, and a
  /// column from `cols` on, read as 0).
  @inline(__always)
  static func gather(
    _ c: UnsafeMutablePointer<Float>, ldc: Int, row: Int, rows m: Int, col: Int, cols n: Int
  ) -> SIMD8<Float> {
    var v = SIMD8<Float>()
    guard col < n else { return v }
    for i in 0..<max(0, min(8, m &- row)) { v[i] = c[(row &+ i) &* ldc &+ col] }
    return v
  }

  /// Writes the lanes of `v` to column `col` of C, rows `row ..< row + 8` below m
  /// (nothing for a column from `cols` on).
  @inline(__always)
  static func scatter(
    _ v: SIMD8<Float>, _ c: UnsafeMutablePointer<Float>, ldc: Int, row: Int, rows m: Int, col: Int, cols n: Int
  ) {
    guard col < n else { return }
    for i in 0..<max(0, min(8, m &- row)) { c[(row &+ i) &* ldc &+ col] = v[i] }
  }

  /// 16 rows x 1 vector of 16 columns. Rows past `valid` read and write the last
  /// valid row, as ``tile8(_:_:rs:ks:valid:panel:k:c:ldc:accumulate:)`` does (the
  /// stores run from the last row back, so the real row is written last).
  /// Written out per row: the generic form of this tile sent the SIL optimiser
  /// into minutes of work.
  @inline(never)
  static func tile16x1(
    _ a: UnsafePointer<Float>, lda: Int, valid: Int, panel: UnsafePointer<Float>, k: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) {
    tile16x1(a, rs: lda, ks: 1, ts: 8 &* lda, valid: valid, panel: panel, k: k, c: c, ldc: ldc, accumulate: accumulate)
  }

  /// ``tile16x1(_:lda:valid:panel:k:c:ldc:accumulate:)`` reading A in the tiles of
  /// 8 rows ``PackedMatrix/packTiles(transposedA:lda:rows:into:)`` wrote (`k` floats
  /// per row of a tile, 8 rows interleaved).
  @inline(never)
  static func tile16x1Tiles(
    _ a: UnsafePointer<Float>, valid: Int, panel: UnsafePointer<Float>, k: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) {
    tile16x1(a, rs: 1, ks: 8, ts: 8 &* k, valid: valid, panel: panel, k: k, c: c, ldc: ldc, accumulate: accumulate)
  }

  /// The 16 x 16 tile with row i of A at `a + (i / 8) * ts + (i % 8) * rs` and its
  /// element kk `kk * ks` further: `(lda, 1, 8 lda)` for A as stored, `(1, 8, 8 k)`
  /// for A in tiles of 8 rows. The callers pass constants for `ks`.
  @inline(__always)
  static func tile16x1(
    _ a: UnsafePointer<Float>, rs: Int, ks: Int, ts: Int, valid: Int, panel: UnsafePointer<Float>, k: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) {
    typealias V = SIMD16<Float>
    let last = valid &- 1
    @inline(__always) func row(_ i: Int) -> UnsafePointer<Float> {
      let r = min(i, last)
      return a + ((r &>> 3) &* ts &+ (r & 7) &* rs)
    }
    let a0 = row(0)
    let c0 = c + min(0, last) &* ldc
    var x0 = accumulate ? UnsafeRawPointer(c0).loadUnaligned(as: V.self) : V()
    let a1 = row(1)
    let c1 = c + min(1, last) &* ldc
    var x1 = accumulate ? UnsafeRawPointer(c1).loadUnaligned(as: V.self) : V()
    let a2 = row(2)
    let c2 = c + min(2, last) &* ldc
    var x2 = accumulate ? UnsafeRawPointer(c2).loadUnaligned(as: V.self) : V()
    let a3 = row(3)
    let c3 = c + min(3, last) &* ldc
    var x3 = accumulate ? UnsafeRawPointer(c3).loadUnaligned(as: V.self) : V()
    let a4 = row(4)
    let c4 = c + min(4, last) &* ldc
    var x4 = accumulate ? UnsafeRawPointer(c4).loadUnaligned(as: V.self) : V()
    let a5 = row(5)
    let c5 = c + min(5, last) &* ldc
    var x5 = accumulate ? UnsafeRawPointer(c5).loadUnaligned(as: V.self) : V()
    let a6 = row(6)
    let c6 = c + min(6, last) &* ldc
    var x6 = accumulate ? UnsafeRawPointer(c6).loadUnaligned(as: V.self) : V()
    let a7 = row(7)
    let c7 = c + min(7, last) &* ldc
    var x7 = accumulate ? UnsafeRawPointer(c7).loadUnaligned(as: V.self) : V()
    let a8 = row(8)
    let c8 = c + min(8, last) &* ldc
    var x8 = accumulate ? UnsafeRawPointer(c8).loadUnaligned(as: V.self) : V()
    let a9 = row(9)
    let c9 = c + min(9, last) &* ldc
    var x9 = accumulate ? UnsafeRawPointer(c9).loadUnaligned(as: V.self) : V()
    let a10 = row(10)
    let c10 = c + min(10, last) &* ldc
    var x10 = accumulate ? UnsafeRawPointer(c10).loadUnaligned(as: V.self) : V()
    let a11 = row(11)
    let c11 = c + min(11, last) &* ldc
    var x11 = accumulate ? UnsafeRawPointer(c11).loadUnaligned(as: V.self) : V()
    let a12 = row(12)
    let c12 = c + min(12, last) &* ldc
    var x12 = accumulate ? UnsafeRawPointer(c12).loadUnaligned(as: V.self) : V()
    let a13 = row(13)
    let c13 = c + min(13, last) &* ldc
    var x13 = accumulate ? UnsafeRawPointer(c13).loadUnaligned(as: V.self) : V()
    let a14 = row(14)
    let c14 = c + min(14, last) &* ldc
    var x14 = accumulate ? UnsafeRawPointer(c14).loadUnaligned(as: V.self) : V()
    let a15 = row(15)
    let c15 = c + min(15, last) &* ldc
    var x15 = accumulate ? UnsafeRawPointer(c15).loadUnaligned(as: V.self) : V()
    let raw = UnsafeRawPointer(panel)
    var kk = 0
    while kk < k {
      let b = raw.loadUnaligned(fromByteOffset: kk &* 64, as: V.self)
      x0.multiplyAdd(V(repeating: a0[kk &* ks]), b)
      x1.multiplyAdd(V(repeating: a1[kk &* ks]), b)
      x2.multiplyAdd(V(repeating: a2[kk &* ks]), b)
      x3.multiplyAdd(V(repeating: a3[kk &* ks]), b)
      x4.multiplyAdd(V(repeating: a4[kk &* ks]), b)
      x5.multiplyAdd(V(repeating: a5[kk &* ks]), b)
      x6.multiplyAdd(V(repeating: a6[kk &* ks]), b)
      x7.multiplyAdd(V(repeating: a7[kk &* ks]), b)
      x8.multiplyAdd(V(repeating: a8[kk &* ks]), b)
      x9.multiplyAdd(V(repeating: a9[kk &* ks]), b)
      x10.multiplyAdd(V(repeating: a10[kk &* ks]), b)
      x11.multiplyAdd(V(repeating: a11[kk &* ks]), b)
      x12.multiplyAdd(V(repeating: a12[kk &* ks]), b)
      x13.multiplyAdd(V(repeating: a13[kk &* ks]), b)
      x14.multiplyAdd(V(repeating: a14[kk &* ks]), b)
      x15.multiplyAdd(V(repeating: a15[kk &* ks]), b)
      kk &+= 1
    }
    UnsafeMutableRawPointer(c15).storeBytes(of: x15, as: V.self)
    UnsafeMutableRawPointer(c14).storeBytes(of: x14, as: V.self)
    UnsafeMutableRawPointer(c13).storeBytes(of: x13, as: V.self)
    UnsafeMutableRawPointer(c12).storeBytes(of: x12, as: V.self)
    UnsafeMutableRawPointer(c11).storeBytes(of: x11, as: V.self)
    UnsafeMutableRawPointer(c10).storeBytes(of: x10, as: V.self)
    UnsafeMutableRawPointer(c9).storeBytes(of: x9, as: V.self)
    UnsafeMutableRawPointer(c8).storeBytes(of: x8, as: V.self)
    UnsafeMutableRawPointer(c7).storeBytes(of: x7, as: V.self)
    UnsafeMutableRawPointer(c6).storeBytes(of: x6, as: V.self)
    UnsafeMutableRawPointer(c5).storeBytes(of: x5, as: V.self)
    UnsafeMutableRawPointer(c4).storeBytes(of: x4, as: V.self)
    UnsafeMutableRawPointer(c3).storeBytes(of: x3, as: V.self)
    UnsafeMutableRawPointer(c2).storeBytes(of: x2, as: V.self)
    UnsafeMutableRawPointer(c1).storeBytes(of: x1, as: V.self)
    UnsafeMutableRawPointer(c0).storeBytes(of: x0, as: V.self)
  }

  /// 8 rows x 1 vector of 16 columns over A as stored (row stride `lda`), rows
  /// past `valid` clamped as in ``tile16x1(_:lda:valid:panel:k:c:ldc:accumulate:)``.
  @inline(never)
  static func tile8x1(
    _ a: UnsafePointer<Float>, lda: Int, valid: Int, panel: UnsafePointer<Float>, k: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) {
    typealias V = SIMD16<Float>
    let last = valid &- 1
    let a0 = a + min(0, last) &* lda
    let c0 = c + min(0, last) &* ldc
    var x0 = accumulate ? UnsafeRawPointer(c0).loadUnaligned(as: V.self) : V()
    let a1 = a + min(1, last) &* lda
    let c1 = c + min(1, last) &* ldc
    var x1 = accumulate ? UnsafeRawPointer(c1).loadUnaligned(as: V.self) : V()
    let a2 = a + min(2, last) &* lda
    let c2 = c + min(2, last) &* ldc
    var x2 = accumulate ? UnsafeRawPointer(c2).loadUnaligned(as: V.self) : V()
    let a3 = a + min(3, last) &* lda
    let c3 = c + min(3, last) &* ldc
    var x3 = accumulate ? UnsafeRawPointer(c3).loadUnaligned(as: V.self) : V()
    let a4 = a + min(4, last) &* lda
    let c4 = c + min(4, last) &* ldc
    var x4 = accumulate ? UnsafeRawPointer(c4).loadUnaligned(as: V.self) : V()
    let a5 = a + min(5, last) &* lda
    let c5 = c + min(5, last) &* ldc
    var x5 = accumulate ? UnsafeRawPointer(c5).loadUnaligned(as: V.self) : V()
    let a6 = a + min(6, last) &* lda
    let c6 = c + min(6, last) &* ldc
    var x6 = accumulate ? UnsafeRawPointer(c6).loadUnaligned(as: V.self) : V()
    let a7 = a + min(7, last) &* lda
    let c7 = c + min(7, last) &* ldc
    var x7 = accumulate ? UnsafeRawPointer(c7).loadUnaligned(as: V.self) : V()
    let raw = UnsafeRawPointer(panel)
    var kk = 0
    while kk < k {
      let b = raw.loadUnaligned(fromByteOffset: kk &* 64, as: V.self)
      x0.multiplyAdd(V(repeating: a0[kk]), b)
      x1.multiplyAdd(V(repeating: a1[kk]), b)
      x2.multiplyAdd(V(repeating: a2[kk]), b)
      x3.multiplyAdd(V(repeating: a3[kk]), b)
      x4.multiplyAdd(V(repeating: a4[kk]), b)
      x5.multiplyAdd(V(repeating: a5[kk]), b)
      x6.multiplyAdd(V(repeating: a6[kk]), b)
      x7.multiplyAdd(V(repeating: a7[kk]), b)
      kk &+= 1
    }
    UnsafeMutableRawPointer(c7).storeBytes(of: x7, as: V.self)
    UnsafeMutableRawPointer(c6).storeBytes(of: x6, as: V.self)
    UnsafeMutableRawPointer(c5).storeBytes(of: x5, as: V.self)
    UnsafeMutableRawPointer(c4).storeBytes(of: x4, as: V.self)
    UnsafeMutableRawPointer(c3).storeBytes(of: x3, as: V.self)
    UnsafeMutableRawPointer(c2).storeBytes(of: x2, as: V.self)
    UnsafeMutableRawPointer(c1).storeBytes(of: x1, as: V.self)
    UnsafeMutableRawPointer(c0).storeBytes(of: x0, as: V.self)
  }

  /// ``run512(_:lda:m:b:k:n:c:ldc:accumulate:)`` reading A in tiles of 8 rows.
  @inline(never)
  static func run512Tiles(
    _ a: UnsafePointer<Float>, m: Int, b: UnsafePointer<Float>, k: Int, n: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) {
    run(SIMD16<Float>.self, rowsPerTile: 8, a, rs: 1, ks: 8, ts: k, m: m, b: b, k: k, n: n, c: c, ldc: ldc, accumulate: accumulate)
  }

  /// ``run256(_:lda:m:b:k:n:c:ldc:accumulate:)`` reading A in tiles of 6 rows.
  @inline(never)
  static func run256Tiles(
    _ a: UnsafePointer<Float>, m: Int, b: UnsafePointer<Float>, k: Int, n: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) {
    run(SIMD8<Float>.self, rowsPerTile: 6, a, rs: 1, ks: 6, ts: k, m: m, b: b, k: k, n: n, c: c, ldc: ldc, accumulate: accumulate)
  }

  @inline(never)
  static func run256(
    _ a: UnsafePointer<Float>, lda: Int, m: Int, b: UnsafePointer<Float>, k: Int, n: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) {
    run(SIMD8<Float>.self, rowsPerTile: 6, a, rs: lda, ks: 1, ts: lda, m: m, b: b, k: k, n: n, c: c, ldc: ldc, accumulate: accumulate)
  }

  /// Rows of the next AVX2 tile when `left` rows of C remain, for A read in place:
  /// tiles of 6, and 4 where 6 would multiply clamped rows (8 rows as 4 + 4, 7 as
  /// 4 + 3, at most 4 as one tile of 4): at most one row is repeated where a 6-row
  /// tail repeated up to 5. With m = 32 (the LSTM's batch), 6 x 6 tiles computed 36
  /// rows; 4 x 6 + 2 x 4 compute 32. Each element is still one fma chain over kk in
  /// order, so the split changes no bits.
  @inline(__always)
  static func avx2TileRows(left: Int) -> Int {
    left == 5 || left == 6 || left >= 9 ? 6 : 4
  }

  @inline(__always)
  ///
  /// The tile starting at row r reads from `a + r * ts`, and its row i, element kk,
  /// at `i * rs + kk * ks` from there: `(lda, 1, lda)` for A as stored, `(1, R, k)`
  /// for A in tiles of R rows
  /// (``PackedMatrix/packTiles(transposedA:lda:rows:into:)``). The callers pass
  /// constants where they can, so each inlined copy addresses A as a fixed pattern.
  static func run<V: SIMD>(
    _: V.Type, rowsPerTile: Int, _ a: UnsafePointer<Float>, rs: Int, ks: Int, ts: Int, m: Int, b: UnsafePointer<Float>, k: Int,
    n: Int, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) where V.Scalar == Float {
    // A read in place (rows `rs` apart from any row) takes tiles of 4 rows at the tail
    // on AVX2; A in tiles was packed in whole tiles of 6.
    let shortTail = rowsPerTile == 6 && ts == rs
    // A in tiles steps `ks` = the tile's rows per kk; A in place steps 1.
    let inTiles = ks != 1
    forEachTile(
      width: 2 &* V.scalarCount, rowsPerTile: rowsPerTile, shortTail: shortTail, m: m, n: n, k: k, b: b, c: c, ldc: ldc,
      accumulate: accumulate
    ) { r, valid, panel, ct, ldct in
      if rowsPerTile == 6 && shortTail && valid <= 4 {
        tile6(V.self, rows: 4, a + r &* ts, rs: rs, ks: ks, valid: valid, panel: panel, k: k, c: ct, ldc: ldct, accumulate: accumulate)
      } else if rowsPerTile == 8 && valid == 8 && inTiles {
        // A whole tile of A in tiles: with the row count a constant, its rows
        // (consecutive floats) address as constant offsets from one pointer, where
        // clamped rows each need a register. A read in place keeps the clamped
        // form even for whole tiles: rows `lda` apart, not a constant, made the
        // compiler walk from row to row with an add per row on every kk (37
        // instructions per 16 AVX-512 FMAs against 30, 29 per 12 AVX2 FMAs against
        // 24), more than a core that issues 4 per cycle (Skylake-SP to Cooper Lake)
        // can feed its two FMA units.
        tile8(V.self, a + r &* ts, rs: rs, ks: ks, valid: 8, panel: panel, k: k, c: ct, ldc: ldct, accumulate: accumulate)
      } else if rowsPerTile == 8 {
        tile8(V.self, a + r &* ts, rs: rs, ks: ks, valid: valid, panel: panel, k: k, c: ct, ldc: ldct, accumulate: accumulate)
      } else if valid == 6 && inTiles {
        tile6(V.self, rows: 6, a + r &* ts, rs: rs, ks: ks, valid: 6, panel: panel, k: k, c: ct, ldc: ldct, accumulate: accumulate)
      } else {
        tile6(V.self, rows: 6, a + r &* ts, rs: rs, ks: ks, valid: valid, panel: panel, k: k, c: ct, ldc: ldct, accumulate: accumulate)
      }
    }
  }

  /// Runs `tile(r, valid, panel, c, ldc)` on every register tile of `C [m, n]`:
  /// panels of `w` columns (panel p at `b + p w k`), tiles of `rowsPerTile` rows
  /// (with `shortTail`, the AVX2 tail's tiles of 4: ``avx2TileRows(left:)``),
  /// rows `r ..< r + valid` of one panel into `c` with row stride `ldc`; a column
  /// tail goes through a spare tile (``throughSpare(_:width:c:ldc:rows:cols:accumulate:_:)``).
  @inline(__always)
  static func forEachTile(
    width w: Int, rowsPerTile: Int, shortTail: Bool = false, m: Int, n: Int, k: Int, b: UnsafePointer<Float>,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool,
    _ tile: (_ row: Int, _ valid: Int, _ panel: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) -> Void
  ) {
    let panels = (n &+ w &- 1) / w
    let spare = UnsafeMutablePointer<Float>.allocate(capacity: w &* rowsPerTile)
    defer { spare.deallocate() }
    for p in 0..<panels {
      let panel = b + p &* w &* k
      let c0 = p &* w
      let cols = min(w, n &- c0)
      var r = 0
      while r < m {
        let rows = shortTail ? avx2TileRows(left: m &- r) : rowsPerTile
        let valid = min(rows, m &- r)
        if cols == w {
          tile(r, valid, panel, c + (r &* ldc &+ c0), ldc)
        } else {
          throughSpare(spare, width: w, c: c + (r &* ldc &+ c0), ldc: ldc, rows: valid, cols: cols, accumulate: accumulate) {
            tile(r, valid, panel, $0, w)
          }
        }
        r &+= rows
      }
    }
  }

  /// A column tail through the spare tile `[rows][width]`: copies in what C holds
  /// (or zeros), runs `tile` on the spare, copies the `cols` real columns out.
  @inline(__always)
  static func throughSpare(
    _ spare: UnsafeMutablePointer<Float>, width w: Int, c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, cols: Int,
    accumulate: Bool, _ tile: (UnsafeMutablePointer<Float>) -> Void
  ) {
    for i in 0..<rows {
      let dst = spare + i &* w
      if accumulate { dst.update(from: c + i &* ldc, count: cols) }
      (dst + cols).update(repeating: 0, count: w &- cols)
    }
    tile(spare)
    for i in 0..<rows { (c + i &* ldc).update(from: spare + i &* w, count: cols) }
  }

  @inline(__always)
  static func load<V: SIMD>(_: V.Type, _ c: UnsafeMutablePointer<Float>, _ off: Int, _ use: Bool) -> V where V.Scalar == Float {
    use ? UnsafeRawPointer(c + off).loadUnaligned(as: V.self) : V()
  }

  @inline(__always)
  static func store<V: SIMD>(_ v: V, _ c: UnsafeMutablePointer<Float>, _ off: Int) where V.Scalar == Float {
    UnsafeMutableRawPointer(c + off).storeBytes(of: v, as: V.self)
  }

  /// 8 rows x 2 vectors.
  @inline(__always)
  static func tile8<V: SIMD>(
    _: V.Type, _ a: UnsafePointer<Float>, rs: Int, ks: Int, valid: Int, panel: UnsafePointer<Float>, k: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) where V.Scalar == Float {
    let v = V.scalarCount
    let w = 2 &* v
    // Rows past `valid` read the last valid row; their sums are not stored.
    let a0 = a
    let a1 = a + min(1, valid &- 1) &* rs
    let a2 = a + min(2, valid &- 1) &* rs
    let a3 = a + min(3, valid &- 1) &* rs
    let a4 = a + min(4, valid &- 1) &* rs
    let a5 = a + min(5, valid &- 1) &* rs
    let a6 = a + min(6, valid &- 1) &* rs
    let a7 = a + min(7, valid &- 1) &* rs
    let c1 = c + min(1, valid &- 1) &* ldc
    let c2 = c + min(2, valid &- 1) &* ldc
    let c3 = c + min(3, valid &- 1) &* ldc
    let c4 = c + min(4, valid &- 1) &* ldc
    let c5 = c + min(5, valid &- 1) &* ldc
    let c6 = c + min(6, valid &- 1) &* ldc
    let c7 = c + min(7, valid &- 1) &* ldc
    var x00 = load(V.self, c, 0, accumulate), x01 = load(V.self, c, v, accumulate)
    var x10 = load(V.self, c1, 0, accumulate), x11 = load(V.self, c1, v, accumulate)
    var x20 = load(V.self, c2, 0, accumulate), x21 = load(V.self, c2, v, accumulate)
    var x30 = load(V.self, c3, 0, accumulate), x31 = load(V.self, c3, v, accumulate)
    var x40 = load(V.self, c4, 0, accumulate), x41 = load(V.self, c4, v, accumulate)
    var x50 = load(V.self, c5, 0, accumulate), x51 = load(V.self, c5, v, accumulate)
    var x60 = load(V.self, c6, 0, accumulate), x61 = load(V.self, c6, v, accumulate)
    var x70 = load(V.self, c7, 0, accumulate), x71 = load(V.self, c7, v, accumulate)
    let raw = UnsafeRawPointer(panel)
    var kk = 0
    while kk < k {
      let b0 = raw.loadUnaligned(fromByteOffset: kk &* w &* 4, as: V.self)
      let b1 = raw.loadUnaligned(fromByteOffset: (kk &* w &+ v) &* 4, as: V.self)
      var s = V(repeating: a0[kk &* ks])
      x00.multiplyAdd(s, b0); x01.multiplyAdd(s, b1)
      s = V(repeating: a1[kk &* ks])
      x10.multiplyAdd(s, b0); x11.multiplyAdd(s, b1)
      s = V(repeating: a2[kk &* ks])
      x20.multiplyAdd(s, b0); x21.multiplyAdd(s, b1)
      s = V(repeating: a3[kk &* ks])
      x30.multiplyAdd(s, b0); x31.multiplyAdd(s, b1)
      s = V(repeating: a4[kk &* ks])
      x40.multiplyAdd(s, b0); x41.multiplyAdd(s, b1)
      s = V(repeating: a5[kk &* ks])
      x50.multiplyAdd(s, b0); x51.multiplyAdd(s, b1)
      s = V(repeating: a6[kk &* ks])
      x60.multiplyAdd(s, b0); x61.multiplyAdd(s, b1)
      s = V(repeating: a7[kk &* ks])
      x70.multiplyAdd(s, b0); x71.multiplyAdd(s, b1)
      kk &+= 1
    }
    // Stores from the last row back, so a clamped row's duplicate is overwritten by
    // the real one (row 0 last).
    store(x70, c7, 0); store(x71, c7, v)
    store(x60, c6, 0); store(x61, c6, v)
    store(x50, c5, 0); store(x51, c5, v)
    store(x40, c4, 0); store(x41, c4, v)
    store(x30, c3, 0); store(x31, c3, v)
    store(x20, c2, 0); store(x21, c2, v)
    store(x10, c1, 0); store(x11, c1, v)
    store(x00, c, 0); store(x01, c, v)
  }

  /// 6 rows x 2 vectors, or 4 rows x 2 vectors with `rows` 4 (rows 4 and 5 are then
  /// neither computed nor stored: `rows` is a constant in each inlined copy).
  @inline(__always)
  static func tile6<V: SIMD>(
    _: V.Type, rows: Int, _ a: UnsafePointer<Float>, rs: Int, ks: Int, valid: Int, panel: UnsafePointer<Float>, k: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) where V.Scalar == Float {
    let v = V.scalarCount
    let w = 2 &* v
    let a0 = a
    let a1 = a + min(1, valid &- 1) &* rs
    let a2 = a + min(2, valid &- 1) &* rs
    let a3 = a + min(3, valid &- 1) &* rs
    let six = rows == 6
    let a4 = six ? a + min(4, valid &- 1) &* rs : a3
    let a5 = six ? a + min(5, valid &- 1) &* rs : a3
    let c1 = c + min(1, valid &- 1) &* ldc
    let c2 = c + min(2, valid &- 1) &* ldc
    let c3 = c + min(3, valid &- 1) &* ldc
    let c4 = c + min(4, valid &- 1) &* ldc
    let c5 = c + min(5, valid &- 1) &* ldc
    var x00 = load(V.self, c, 0, accumulate), x01 = load(V.self, c, v, accumulate)
    var x10 = load(V.self, c1, 0, accumulate), x11 = load(V.self, c1, v, accumulate)
    var x20 = load(V.self, c2, 0, accumulate), x21 = load(V.self, c2, v, accumulate)
    var x30 = load(V.self, c3, 0, accumulate), x31 = load(V.self, c3, v, accumulate)
    var x40 = six ? load(V.self, c4, 0, accumulate) : V(), x41 = six ? load(V.self, c4, v, accumulate) : V()
    var x50 = six ? load(V.self, c5, 0, accumulate) : V(), x51 = six ? load(V.self, c5, v, accumulate) : V()
    let raw = UnsafeRawPointer(panel)
    var kk = 0
    while kk < k {
      let b0 = raw.loadUnaligned(fromByteOffset: kk &* w &* 4, as: V.self)
      let b1 = raw.loadUnaligned(fromByteOffset: (kk &* w &+ v) &* 4, as: V.self)
      var s = V(repeating: a0[kk &* ks])
      x00.multiplyAdd(s, b0); x01.multiplyAdd(s, b1)
      s = V(repeating: a1[kk &* ks])
      x10.multiplyAdd(s, b0); x11.multiplyAdd(s, b1)
      s = V(repeating: a2[kk &* ks])
      x20.multiplyAdd(s, b0); x21.multiplyAdd(s, b1)
      s = V(repeating: a3[kk &* ks])
      x30.multiplyAdd(s, b0); x31.multiplyAdd(s, b1)
      if six {
        s = V(repeating: a4[kk &* ks])
        x40.multiplyAdd(s, b0); x41.multiplyAdd(s, b1)
        s = V(repeating: a5[kk &* ks])
        x50.multiplyAdd(s, b0); x51.multiplyAdd(s, b1)
      }
      kk &+= 1
    }
    if six {
      store(x50, c5, 0); store(x51, c5, v)
      store(x40, c4, 0); store(x41, c4, v)
    }
    store(x30, c3, 0); store(x31, c3, v)
    store(x20, c2, 0); store(x21, c2, v)
    store(x10, c1, 0); store(x11, c1, v)
    store(x00, c, 0); store(x01, c, v)
  }
}
