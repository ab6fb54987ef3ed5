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
      // dh_{t-1} = dG_t W_hh for the active prefix.
      cache.packedHHBackward.multiply(dG + off &* g4, lda: g4, rows: n, into: dhCarry, ldc: hs, accumulate: false)
    }
    // Weight gradients over every packed row at once.
    BLAS.gemm(
      .transposed, .none, m: g4, n: inputSize, k: rows, a: dG, lda: g4, b: x, ldb: inputSize,
      beta: 1, c: p.grad(weightIH), ldc: inputSize)
    BLAS.gemm(
      .transposed, .none, m: g4, n: hs, k: rows, a: dG, lda: g4, b: cache.hPrev.pointer, ldb: hs,
      beta: 1, c: p.grad(weightHH), ldc: hs)
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
  /// Units outside, rows inside: the bias gradient of 8 units stays in registers
  /// over the step's rows (added in the same order as row by row).
  @inlinable @inline(__always)
  static func cellBackward(
    rows: Int, gates: UnsafePointer<Float>, cPrev: UnsafePointer<Float>, tanhC: UnsafePointer<Float>,
    dhOut: UnsafePointer<Float>, dhCarry: UnsafePointer<Float>, dcCarry: UnsafeMutablePointer<Float>,
    dGates: UnsafeMutablePointer<Float>, biasGrad db: UnsafeMutablePointer<Float>, hiddenSize hs: Int
  ) {
    var k = 0
    while k &+ 8 <= hs {
      cellBackward8(
        rows: rows, gates: gates, cPrev: cPrev, tanhC: tanhC, dhOut: dhOut, dhCarry: dhCarry, dcCarry: dcCarry,
        dGates: dGates, biasGrad: db, hiddenSize: hs, at: k, count: 8)
      k &+= 8
    }
    if k < hs {
      cellBackward8(
        rows: rows, gates: gates, cPrev: cPrev, tanhC: tanhC, dhOut: dhOut, dhCarry: dhCarry, dcCarry: dcCarry,
        dGates: dGates, biasGrad: db, hiddenSize: hs, at: k, count: hs &- k)
    }
  }

  /// Units `k..<k+n` (n <= 8) of every row of one step.
  @inlinable @inline(__always)
  static func cellBackward8(
    rows: Int, gates: UnsafePointer<Float>, cPrev: UnsafePointer<Float>, tanhC: UnsafePointer<Float>,
    dhOut: UnsafePointer<Float>, dhCarry: UnsafePointer<Float>, dcCarry: UnsafeMutablePointer<Float>,
    dGates: UnsafeMutablePointer<Float>, biasGrad db: UnsafeMutablePointer<Float>, hiddenSize hs: Int,
    at k: Int, count n: Int
  ) {
    let g4 = 4 &* hs
    var bi = Float8.load(db + k, count: n)
    var bf = Float8.load(db + (hs &+ k), count: n)
    var bg = Float8.load(db + (2 &* hs &+ k), count: n)
    var bo = Float8.load(db + (3 &* hs &+ k), count: n)
    for j in 0..<rows {
      let gr = gates + j &* g4
      let hr = j &* hs &+ k
      let i = Float8.load(gr + k, count: n)
      let f = Float8.load(gr + (hs &+ k), count: n)
      let g = Float8.load(gr + (2 &* hs &+ k), count: n)
      let o = Float8.load(gr + (3 &* hs &+ k), count: n)
      let tc = Float8.load(tanhC + hr, count: n)
      let dh = Float8.load(dhOut + hr, count: n) + Float8.load(dhCarry + hr, count: n)
      let dc = Float8.load(dcCarry + hr, count: n) + dh * o * (1 - tc * tc)
      let dO = dh * tc
      let dI = dc * g
      let dGg = dc * i
      let dF = dc * Float8.load(cPrev + hr, count: n)
      (dc * f).store(dcCarry + hr, count: n)
      let gi = dI * i * (1 - i)
      let gf = dF * f * (1 - f)
      let gg = dGg * (1 - g * g)
      let go = dO * o * (1 - o)
      let dr = dGates + j &* g4
      gi.store(dr + k, count: n)
      gf.store(dr + (hs &+ k), count: n)
      gg.store(dr + (2 &* hs &+ k), count: n)
      go.store(dr + (3 &* hs &+ k), count: n)
      bi += gi
      bf += gf
      bg += gg
      bo += go
    }
    bi.store(db + k, count: n)
    bf.store(db + (hs &+ k), count: n)
    bg.store(db + (2 &* hs &+ k), count: n)
    bo.store(db + (3 &* hs &+ k), count: n)
  }
}
