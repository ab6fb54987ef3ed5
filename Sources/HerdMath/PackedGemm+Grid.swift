/// Where the elements of a left-hand side A lie when it is read in place from a
/// larger array, two levels deep in both directions.
///
/// Row i starts `(i / rowsPerGroup) * groupStride + (i % rowsPerGroup) * rowStride`
/// floats from A's base, and its element kk lies
/// `(kk / segment) * segmentStride + (kk % segment) * step` floats further.
///
/// A convolution with no padding reads its input image this way with no copy
/// (Conv2D's direct path): for the forward, the rows are the output pixels (groups
/// of one output row, `stride C` apart within it) and the elements one kernel row
/// after another (segments of `kW C` contiguous floats, an image row apart); for the
/// weight gradient, the roles swap. Rows and elements may overlap.
public struct GridLayout: Sendable, Equatable, CustomStringConvertible {
  public let rowsPerGroup: Int
  public let groupStride: Int
  public let rowStride: Int
  public let segment: Int
  public let segmentStride: Int
  public let step: Int

  public init(rowsPerGroup: Int, groupStride: Int, rowStride: Int, segment: Int, segmentStride: Int, step: Int) {
    precondition(rowsPerGroup > 0 && segment > 0, "GridLayout: rowsPerGroup \(rowsPerGroup) and segment \(segment) must be positive")
    self.rowsPerGroup = rowsPerGroup
    self.groupStride = groupStride
    self.rowStride = rowStride
    self.segment = segment
    self.segmentStride = segmentStride
    self.step = step
  }

  /// Floats from A's base to the start of row i.
  @inline(__always)
  public func rowOffset(_ i: Int) -> Int {
    let g = i / rowsPerGroup
    return g &* groupStride &+ (i &- g &* rowsPerGroup) &* rowStride
  }

  /// Floats from a row's start to its element kk.
  @inline(__always)
  public func elementOffset(_ kk: Int) -> Int {
    let s = kk / segment
    return s &* segmentStride &+ (kk &- s &* segment) &* step
  }

  public var description: String {
    "rows \(rowsPerGroup) per group (group \(groupStride), row \(rowStride)), elements \(segment) per segment (segment \(segmentStride), step \(step))"
  }
}

extension PackedMatrix {
  /// `C [m, n] = A [m, k] B` (or `C += A B` with `accumulate`) with A read in place
  /// as `layout` says (see ``GridLayout``; `k` must be a whole number of its
  /// segments). C is row-major with row stride `ldc`.
  ///
  /// Each element is `fma` over kk = 0..<k in order, starting from 0 or from C, as in
  /// ``multiply(_:lda:rows:into:ldc:accumulate:)``: its value depends on its row of
  /// A and column of B only, never on m or on the row's place in a tile.
  public func multiply(
    grid a: UnsafePointer<Float>, layout: GridLayout, rows m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int,
    accumulate: Bool
  ) {
    guard m > 0, n > 0 else { return }
    precondition(k % layout.segment == 0, "PackedMatrix.multiply(grid:): k \(k) is not a whole number of segments of \(layout.segment)")
    if let recorder = GemmRecorder.current {
      recorder.record(
        GemmShape(transA: .none, transB: .none, m: m, n: n, k: k, lda: k, ldb: n, ldc: ldc, beta: accumulate ? 1 : 0))
    }
    guard k > 0 else {
      if !accumulate { for r in 0..<m { (c + r &* ldc).update(repeating: 0, count: n) } }
      return
    }
    let b = UnsafePointer(storage)
    switch isa {
    case .avx512:
      if panelWidth == 16 {
        PackedKernels.runGrid512Narrow(
          a, layout, m: m, b: b, k: k, n: n, c: c, ldc: ldc, accumulate: accumulate, rows: narrowRows)
        return
      }
      let wide = lastPanelWidth == 16 ? n &- n % 32 : n
      if wide > 0 {
        PackedKernels.runGrid512(a, layout, m: m, b: b, k: k, n: wide, c: c, ldc: ldc, accumulate: accumulate)
      }
      if wide < n {
        PackedKernels.runGrid512Narrow(
          a, layout, m: m, b: b + wide &* k, k: k, n: n &- wide, c: c + wide, ldc: ldc, accumulate: accumulate,
          rows: narrowRows)
      }
    case .avx2:
      PackedKernels.runGrid256(a, layout, m: m, b: b, k: k, n: n, c: c, ldc: ldc, accumulate: accumulate)
    }
  }
}

/// The kernels behind ``PackedMatrix/multiply(grid:layout:rows:into:ldc:accumulate:)``:
/// the register tiles of ``PackedKernels`` (8 rows x 32 columns on AVX-512, 16 x 16
/// or 8 x 16 for a narrow panel (``NarrowTiles``), 6 x 16 on AVX2) with each row's start computed once per tile
/// and the k loop split into segments. As in the other kernels, AVX2 ends in tiles of
/// 4 rows, a tile's rows past the last valid one read that row, and column tails go
/// through the spare tile.
extension PackedKernels {
  @inline(never)
  static func runGrid512(
    _ a: UnsafePointer<Float>, _ g: GridLayout, m: Int, b: UnsafePointer<Float>, k: Int, n: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) {
    forEachTile(width: 32, rowsPerTile: 8, m: m, n: n, k: k, b: b, c: c, ldc: ldc, accumulate: accumulate) {
      r, valid, panel, ct, ldct in
      gridTile512x8(a, g, first: r, valid: valid, panel: panel, k: k, c: ct, ldc: ldct, accumulate: accumulate)
    }
  }

  /// The 8-row tile as a function of its own, its row count a constant (as
  /// ``gridTile256x6(_:_:first:valid:panel:k:c:ldc:accumulate:)``): inlined into the
  /// generic closure, the compiler had outlined it with the count as a variable,
  /// tested inside the k loop.
  @inline(never)
  static func gridTile512x8(
    _ a: UnsafePointer<Float>, _ g: GridLayout, first r: Int, valid: Int, panel: UnsafePointer<Float>, k: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) {
    gridTile(
      SIMD16<Float>.self, rowsPerTile: 8, a, g, first: r, valid: valid, panel: panel, k: k, c: c, ldc: ldc,
      accumulate: accumulate)
  }

  /// Tiles of `rows` (16 or 8, ``NarrowTiles``), each a function of its own.
  @inline(never)
  static func runGrid512Narrow(
    _ a: UnsafePointer<Float>, _ g: GridLayout, m: Int, b: UnsafePointer<Float>, k: Int, n: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool, rows: Int
  ) {
    forEachTile(width: 16, rowsPerTile: rows, m: m, n: n, k: k, b: b, c: c, ldc: ldc, accumulate: accumulate) {
      r, valid, panel, ct, ldct in
      if rows == 8 {
        gridTile8x1(a, g, first: r, valid: valid, panel: panel, k: k, c: ct, ldc: ldct, accumulate: accumulate)
      } else {
        gridTile16x1(a, g, first: r, valid: valid, panel: panel, k: k, c: ct, ldc: ldct, accumulate: accumulate)
      }
    }
  }

  /// 8 rows x 1 vector of 16 columns: 8 row pointers, which stay in registers in
  /// the k loop (the 16-row tile's 16 do not).
  @inline(never)
  static func gridTile8x1(
    _ a: UnsafePointer<Float>, _ g: GridLayout, first r: Int, valid: Int, panel: UnsafePointer<Float>, k: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) {
    typealias V = SIMD16<Float>
    let last = valid &- 1
    @inline(__always) func row(_ i: Int) -> UnsafePointer<Float> { a + g.rowOffset(r &+ min(i, last)) }
    let a0 = row(0), a1 = row(1), a2 = row(2), a3 = row(3), a4 = row(4), a5 = row(5), a6 = row(6), a7 = row(7)
    let c0 = c, c1 = c + min(1, last) &* ldc, c2 = c + min(2, last) &* ldc, c3 = c + min(3, last) &* ldc
    let c4 = c + min(4, last) &* ldc, c5 = c + min(5, last) &* ldc, c6 = c + min(6, last) &* ldc
    let c7 = c + min(7, last) &* ldc
    var x0 = load(V.self, c0, 0, accumulate), x1 = load(V.self, c1, 0, accumulate)
    var x2 = load(V.self, c2, 0, accumulate), x3 = load(V.self, c3, 0, accumulate)
    var x4 = load(V.self, c4, 0, accumulate), x5 = load(V.self, c5, 0, accumulate)
    var x6 = load(V.self, c6, 0, accumulate), x7 = load(V.self, c7, 0, accumulate)
    var raw = UnsafeRawPointer(panel)
    var start = 0
    var kk = 0
    while kk < k {
      var off = start
      let end = kk &+ g.segment
      while kk < end {
        let b = raw.loadUnaligned(as: V.self)
        x0.multiplyAdd(V(repeating: a0[off]), b)
        x1.multiplyAdd(V(repeating: a1[off]), b)
        x2.multiplyAdd(V(repeating: a2[off]), b)
        x3.multiplyAdd(V(repeating: a3[off]), b)
        x4.multiplyAdd(V(repeating: a4[off]), b)
        x5.multiplyAdd(V(repeating: a5[off]), b)
        x6.multiplyAdd(V(repeating: a6[off]), b)
        x7.multiplyAdd(V(repeating: a7[off]), b)
        off &+= g.step
        raw += 64
        kk &+= 1
      }
      start &+= g.segmentStride
    }
    // From the last row back: a clamped row's duplicate is overwritten by the real one.
    store(x7, c7, 0); store(x6, c6, 0); store(x5, c5, 0); store(x4, c4, 0)
    store(x3, c3, 0); store(x2, c2, 0); store(x1, c1, 0); store(x0, c0, 0)
  }

  /// 16 rows x 1 vector of 16 columns.
  @inline(__always)
  static func gridTile16x1(
    _ a: UnsafePointer<Float>, _ g: GridLayout, first r: Int, valid: Int, panel: UnsafePointer<Float>, k: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) {
    typealias V = SIMD16<Float>
    let last = valid &- 1
    @inline(__always) func row(_ i: Int) -> UnsafePointer<Float> { a + g.rowOffset(r &+ min(i, last)) }
    let a0 = row(0), a1 = row(1), a2 = row(2), a3 = row(3), a4 = row(4), a5 = row(5), a6 = row(6), a7 = row(7)
    let a8 = row(8), a9 = row(9), a10 = row(10), a11 = row(11), a12 = row(12), a13 = row(13), a14 = row(14)
    let a15 = row(15)
    let c0 = c, c1 = c + min(1, last) &* ldc, c2 = c + min(2, last) &* ldc, c3 = c + min(3, last) &* ldc
    let c4 = c + min(4, last) &* ldc, c5 = c + min(5, last) &* ldc, c6 = c + min(6, last) &* ldc
    let c7 = c + min(7, last) &* ldc, c8 = c + min(8, last) &* ldc, c9 = c + min(9, last) &* ldc
    let c10 = c + min(10, last) &* ldc, c11 = c + min(11, last) &* ldc, c12 = c + min(12, last) &* ldc
    let c13 = c + min(13, last) &* ldc, c14 = c + min(14, last) &* ldc, c15 = c + min(15, last) &* ldc
    var x0 = load(V.self, c0, 0, accumulate), x1 = load(V.self, c1, 0, accumulate)
    var x2 = load(V.self, c2, 0, accumulate), x3 = load(V.self, c3, 0, accumulate)
    var x4 = load(V.self, c4, 0, accumulate), x5 = load(V.self, c5, 0, accumulate)
    var x6 = load(V.self, c6, 0, accumulate), x7 = load(V.self, c7, 0, accumulate)
    var x8 = load(V.self, c8, 0, accumulate), x9 = load(V.self, c9, 0, accumulate)
    var x10 = load(V.self, c10, 0, accumulate), x11 = load(V.self, c11, 0, accumulate)
    var x12 = load(V.self, c12, 0, accumulate), x13 = load(V.self, c13, 0, accumulate)
    var x14 = load(V.self, c14, 0, accumulate), x15 = load(V.self, c15, 0, accumulate)
    var raw = UnsafeRawPointer(panel)
    var start = 0
    var kk = 0
    while kk < k {
      var off = start
      let end = kk &+ g.segment
      while kk < end {
        let b = raw.loadUnaligned(as: V.self)
        x0.multiplyAdd(V(repeating: a0[off]), b)
        x1.multiplyAdd(V(repeating: a1[off]), b)
        x2.multiplyAdd(V(repeating: a2[off]), b)
        x3.multiplyAdd(V(repeating: a3[off]), b)
        x4.multiplyAdd(V(repeating: a4[off]), b)
        x5.multiplyAdd(V(repeating: a5[off]), b)
        x6.multiplyAdd(V(repeating: a6[off]), b)
        x7.multiplyAdd(V(repeating: a7[off]), b)
        x8.multiplyAdd(V(repeating: a8[off]), b)
        x9.multiplyAdd(V(repeating: a9[off]), b)
        x10.multiplyAdd(V(repeating: a10[off]), b)
        x11.multiplyAdd(V(repeating: a11[off]), b)
        x12.multiplyAdd(V(repeating: a12[off]), b)
        x13.multiplyAdd(V(repeating: a13[off]), b)
        x14.multiplyAdd(V(repeating: a14[off]), b)
        x15.multiplyAdd(V(repeating: a15[off]), b)
        off &+= g.step
        raw += 64
        kk &+= 1
      }
      start &+= g.segmentStride
    }
    // From the last row back: a clamped row's duplicate is overwritten by the real one.
    store(x15, c15, 0); store(x14, c14, 0); store(x13, c13, 0); store(x12, c12, 0)
    store(x11, c11, 0); store(x10, c10, 0); store(x9, c9, 0); store(x8, c8, 0)
    store(x7, c7, 0); store(x6, c6, 0); store(x5, c5, 0); store(x4, c4, 0)
    store(x3, c3, 0); store(x2, c2, 0); store(x1, c1, 0); store(x0, c0, 0)
  }

  /// Tiles of 6 rows, and of 4 at the tail where 6 would repeat rows
  /// (``avx2TileRows(left:)``: an image of 7x7 output pixels is 7 x 6 + 4 + 3 rows,
  /// not 9 x 6). Each tile size is a function of its own so that its row count is a
  /// constant there: with both inlined into one closure the compiler kept the
  /// count as a variable inside the k loop (7-11% slower encoders).
  @inline(never)
  static func runGrid256(
    _ a: UnsafePointer<Float>, _ g: GridLayout, m: Int, b: UnsafePointer<Float>, k: Int, n: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) {
    forEachTile(
      width: 16, rowsPerTile: 6, shortTail: true, m: m, n: n, k: k, b: b, c: c, ldc: ldc, accumulate: accumulate
    ) { r, valid, panel, ct, ldct in
      if valid <= 4 {
        gridTile256x4(a, g, first: r, valid: valid, panel: panel, k: k, c: ct, ldc: ldct, accumulate: accumulate)
      } else {
        gridTile256x6(a, g, first: r, valid: valid, panel: panel, k: k, c: ct, ldc: ldct, accumulate: accumulate)
      }
    }
  }

  @inline(never)
  static func gridTile256x6(
    _ a: UnsafePointer<Float>, _ g: GridLayout, first r: Int, valid: Int, panel: UnsafePointer<Float>, k: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) {
    gridTile(
      SIMD8<Float>.self, rowsPerTile: 6, a, g, first: r, valid: valid, panel: panel, k: k, c: c, ldc: ldc,
      accumulate: accumulate)
  }

  @inline(never)
  static func gridTile256x4(
    _ a: UnsafePointer<Float>, _ g: GridLayout, first r: Int, valid: Int, panel: UnsafePointer<Float>, k: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) {
    gridTile(
      SIMD8<Float>.self, rowsPerTile: 4, a, g, first: r, valid: valid, panel: panel, k: k, c: c, ldc: ldc,
      accumulate: accumulate)
  }

  /// 8, 6 or 4 rows x 2 vectors; rows past `rowsPerTile` repeat its last row and are
  /// neither computed nor stored (the compiler drops them: `rowsPerTile` is a
  /// constant in each inlined copy).
  @inline(__always)
  static func gridTile<V: SIMD>(
    _: V.Type, rowsPerTile: Int, _ a: UnsafePointer<Float>, _ g: GridLayout, first r: Int, valid: Int,
    panel: UnsafePointer<Float>, k: Int, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
  ) where V.Scalar == Float {
    let v = V.scalarCount
    let w = 2 &* v
    let eight = rowsPerTile == 8
    let six = rowsPerTile >= 6
    let last = valid &- 1
    @inline(__always) func row(_ i: Int) -> UnsafePointer<Float> { a + g.rowOffset(r &+ min(i, last)) }
    let a0 = row(0), a1 = row(1), a2 = row(2), a3 = row(3)
    let a4 = six ? row(4) : a3, a5 = six ? row(5) : a3
    let a6 = eight ? row(6) : a5, a7 = eight ? row(7) : a5
    let c1 = c + min(1, last) &* ldc, c2 = c + min(2, last) &* ldc, c3 = c + min(3, last) &* ldc
    let c4 = c + min(4, last) &* ldc, c5 = c + min(5, last) &* ldc
    let c6 = c + min(6, last) &* ldc, c7 = c + min(7, last) &* ldc
    var x00 = load(V.self, c, 0, accumulate), x01 = load(V.self, c, v, accumulate)
    var x10 = load(V.self, c1, 0, accumulate), x11 = load(V.self, c1, v, accumulate)
    var x20 = load(V.self, c2, 0, accumulate), x21 = load(V.self, c2, v, accumulate)
    var x30 = load(V.self, c3, 0, accumulate), x31 = load(V.self, c3, v, accumulate)
    var x40 = six ? load(V.self, c4, 0, accumulate) : V(), x41 = six ? load(V.self, c4, v, accumulate) : V()
    var x50 = six ? load(V.self, c5, 0, accumulate) : V(), x51 = six ? load(V.self, c5, v, accumulate) : V()
    var x60 = eight ? load(V.self, c6, 0, accumulate) : V(), x61 = eight ? load(V.self, c6, v, accumulate) : V()
    var x70 = eight ? load(V.self, c7, 0, accumulate) : V(), x71 = eight ? load(V.self, c7, v, accumulate) : V()
    var raw = UnsafeRawPointer(panel)
    var start = 0
    var kk = 0
    while kk < k {
      var off = start
      let end = kk &+ g.segment
      while kk < end {
        let b0 = raw.loadUnaligned(as: V.self)
        let b1 = raw.loadUnaligned(fromByteOffset: v &* 4, as: V.self)
        var s = V(repeating: a0[off])
        x00.multiplyAdd(s, b0); x01.multiplyAdd(s, b1)
        s = V(repeating: a1[off])
        x10.multiplyAdd(s, b0); x11.multiplyAdd(s, b1)
        s = V(repeating: a2[off])
        x20.multiplyAdd(s, b0); x21.multiplyAdd(s, b1)
        s = V(repeating: a3[off])
        x30.multiplyAdd(s, b0); x31.multiplyAdd(s, b1)
        if six {
          s = V(repeating: a4[off])
          x40.multiplyAdd(s, b0); x41.multiplyAdd(s, b1)
          s = V(repeating: a5[off])
          x50.multiplyAdd(s, b0); x51.multiplyAdd(s, b1)
        }
        if eight {
          s = V(repeating: a6[off])
          x60.multiplyAdd(s, b0); x61.multiplyAdd(s, b1)
          s = V(repeating: a7[off])
          x70.multiplyAdd(s, b0); x71.multiplyAdd(s, b1)
        }
        off &+= g.step
        raw += w &* 4
        kk &+= 1
      }
      start &+= g.segmentStride
    }
    // From the last row back, so a clamped row's duplicate is overwritten by the
    // real one (row 0 last).
    if eight {
      store(x70, c7, 0); store(x71, c7, v)
      store(x60, c6, 0); store(x61, c6, v)
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
