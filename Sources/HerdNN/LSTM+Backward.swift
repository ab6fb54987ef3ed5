import HerdMath

extension LSTM {
  public func backward(
    _ p: Parameters, x: UnsafePointer<Float>, dH: UnsafePointer<Float>, cache: RecurrentCache,
    dx: UnsafeMutablePointer<Float>?, dh0: UnsafeMutablePointer<Float>?,
    dc0: UnsafeMutablePointer<Float>?
  ) {
    guard let packing = cache.packing else { preconditionFailure("LSTM.backward before forward") }
    let hs = hiddenSize
    let g4 = 4 &* hs
    let rows = packing.rowCount
    let nSeq = packing.sequenceCount
    let gates = cache.gates.pointer
    let cell = cache.cell.pointer
    let tanhCell = cache.tanhCell.pointer
    let dG = cache.gradGates.reserve(rows &* g4)
    // Carries into step t-1; rows past the active prefix stay zero.
    let dhCarry = cache.dhCarry.zeroed(nSeq &* hs)
    let db = cache.biasGrad.zeroed(g4)  // summed as the cells write dG: no second pass
    let dcCarry = cache.dcCarry.zeroed(nSeq &* hs)
    // dh_{t-1} = dG_t W_hh: W_hh [4H, H] is the right-hand side as stored.
    cache.packedHHBackward.pack(p.value(weightHH), ld: hs, transposed: false, k: g4, n: hs)
    for t in stride(from: packing.stepCount - 1, through: 0, by: -1) {
      let n = packing.batchSizes[t]
      let off = packing.offsets[t]
      let prevC = t == 0 ? cache.c0.pointer : cell + packing.offsets[t - 1] &* hs
      Self.cellBackward(
        rows: n, gates: gates + off &* g4, cPrev: prevC, tanhC: tanhCell + off &* hs, dhOut: dH + off &* hs,
        dhCarry: dhCarry, dcCarry: dcCarry, dGates: dG + off &* g4, biasGrad: db, hiddenSize: hs)
      // dh_{t-1} = dG_t W_hh for the active prefix; at t = 0 that is dh0, skipped when
      // nobody asks for it (the learner: 1/T of the carry's products).
      if t > 0 || dh0 != nil {
        cache.packedHHBackward.multiply(dG + off &* g4, lda: g4, rows: n, into: dhCarry, ldc: hs, accumulate: false)
      }
    }
    // Weight gradients over every packed row at once: dG^T x and dG^T h_{t-1}, one
    // copy of dG^T into tiles for both on Herd's kernels.
    BLAS.gemm(
      transposedA: dG, lda: g4, m: g4, k: rows, beta: 1,
      products: [
        GemmRightSide(n: inputSize, b: x, ldb: inputSize, c: p.grad(weightIH), ldc: inputSize),
        GemmRightSide(n: hs, b: cache.hPrev.pointer, ldb: hs, c: p.grad(weightHH), ldc: hs),
      ])
    BLAS.axpy(1, db, p.grad(biasIH), count: g4)
    BLAS.axpy(1, db, p.grad(biasHH), count: g4)
    if let dx {
      BLAS.gemm(
        .none, .none, m: rows, n: inputSize, k: g4, a: dG, lda: g4, b: p.value(weightIH),
        ldb: inputSize, beta: 0, c: dx, ldc: inputSize)
    }
    if let dh0 { packing.scatterRows(dhCarry, features: hs, into: dh0) }
    if let dc0 { packing.scatterRows(dcCarry, features: hs, into: dc0) }
  }

  /// One step of BPTT over its `rows` active rows (row strides 4H for the gates, H
  /// for the rest). Reads the carries from step t+1, writes dc into `dcCarry` for
  /// step t-1 and the pre-activation gate gradients into `dGates` (i, f, g, o).
  ///
  /// Rows outside, units inside, so each row's lines are read once and in order.
  /// Units outside (with the bias gradient in registers over the rows) read one
  /// half line of each row per pass, at a stride of 4H floats: with H = 256 that is
  /// 4 KiB, every row in the same L1 set, and each line was fetched twice. The
  /// bias gradient adds the rows in the same order either way.
  @inlinable @inline(__always)
  static func cellBackward(
    rows: Int, gates: UnsafePointer<Float>, cPrev: UnsafePointer<Float>, tanhC: UnsafePointer<Float>,
    dhOut: UnsafePointer<Float>, dhCarry: UnsafePointer<Float>, dcCarry: UnsafeMutablePointer<Float>,
    dGates: UnsafeMutablePointer<Float>, biasGrad db: UnsafeMutablePointer<Float>, hiddenSize hs: Int
  ) {
    let g4 = 4 &* hs
    for j in 0..<rows {
      let (gr, hr, dr) = (gates + j &* g4, j &* hs, dGates + j &* g4)
      var k = 0
      while k &+ 16 <= hs {
        cellBackward16(
          gates: gr, cPrev: cPrev + hr, tanhC: tanhC + hr, dhOut: dhOut + hr, dhCarry: dhCarry + hr,
          dcCarry: dcCarry + hr, dGates: dr, biasGrad: db, hiddenSize: hs, at: k, count: 16)
        k &+= 16
      }
      if k < hs {
        cellBackward16(
          gates: gr, cPrev: cPrev + hr, tanhC: tanhC + hr, dhOut: dhOut + hr, dhCarry: dhCarry + hr,
          dcCarry: dcCarry + hr, dGates: dr, biasGrad: db, hiddenSize: hs, at: k, count: hs &- k)
      }
    }
  }

  /// Units `k..<k+n` (n <= 16) of one row; adds its gate gradients to the bias
  /// gradient.
  @inlinable @inline(__always)
  static func cellBackward16(
    gates gr: UnsafePointer<Float>, cPrev: UnsafePointer<Float>, tanhC: UnsafePointer<Float>,
    dhOut: UnsafePointer<Float>, dhCarry: UnsafePointer<Float>, dcCarry: UnsafeMutablePointer<Float>,
    dGates dr: UnsafeMutablePointer<Float>, biasGrad db: UnsafeMutablePointer<Float>, hiddenSize hs: Int,
    at k: Int, count n: Int
  ) {
    let i = Float16s.load(gr + k, count: n)
    let f = Float16s.load(gr + (hs &+ k), count: n)
    let g = Float16s.load(gr + (2 &* hs &+ k), count: n)
    let o = Float16s.load(gr + (3 &* hs &+ k), count: n)
    let tc = Float16s.load(tanhC + k, count: n)
    let dh = Float16s.load(dhOut + k, count: n) + Float16s.load(dhCarry + k, count: n)
    let dc = Float16s.load(dcCarry + k, count: n) + dh * o * (1 - tc * tc)
    let dO = dh * tc
    let dI = dc * g
    let dGg = dc * i
    let dF = dc * Float16s.load(cPrev + k, count: n)
    (dc * f).store(dcCarry + k, count: n)
    let gi = dI * i * (1 - i)
    let gf = dF * f * (1 - f)
    let gg = dGg * (1 - g * g)
    let go = dO * o * (1 - o)
    gi.store(dr + k, count: n)
    gf.store(dr + (hs &+ k), count: n)
    gg.store(dr + (2 &* hs &+ k), count: n)
    go.store(dr + (3 &* hs &+ k), count: n)
    (Float16s.load(db + k, count: n) + gi).store(db + k, count: n)
    (Float16s.load(db + (hs &+ k), count: n) + gf).store(db + (hs &+ k), count: n)
    (Float16s.load(db + (2 &* hs &+ k), count: n) + gg).store(db + (2 &* hs &+ k), count: n)
    (Float16s.load(db + (3 &* hs &+ k), count: n) + go).store(db + (3 &* hs &+ k), count: n)
  }
}
