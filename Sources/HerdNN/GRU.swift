import HerdMath

/// A gated recurrent unit with PyTorch's `nn.GRU` semantics (one layer).
///
/// Per step (Cho et al. 2014, in PyTorch's formulation and gate order r, z, n):
/// ```
/// [xr, xz, xn] = x W_ih^T + b_ih          [hr, hz, hn] = h W_hh^T + b_hh
/// r = sigmoid(xr + hr)   z = sigmoid(xz + hz)   n = tanh(xn + r * hn)
/// h' = (1 - z) * n + z * h                (computed as n + z * (h - n))
/// ```
/// Note `b_hn` sits inside the product with r, which is why the two biases are not
/// merged. Parameters: `weight_ih [3H, I]`, `weight_hh [3H, H]`, `bias_ih [3H]`,
/// `bias_hh [3H]`, all ~ U(-1/sqrt(H), 1/sqrt(H)).
public struct GRU: RecurrentLayer, Equatable {
  public let inputSize: Int
  public let hiddenSize: Int
  public var stateCount: Int { 1 }
  /// `[3H, I]`.
  public let weightIH: ParameterSlot
  /// `[3H, H]`.
  public let weightHH: ParameterSlot
  /// `[3H]`.
  public let biasIH: ParameterSlot
  /// `[3H]`.
  public let biasHH: ParameterSlot

  /// Declares `name.weight_ih`, `name.weight_hh`, `name.bias_ih`, `name.bias_hh`.
  public init(_ name: String, inputSize: Int, hiddenSize: Int, layout: inout ParameterLayout) {
    self.inputSize = inputSize
    self.hiddenSize = hiddenSize
    let w = RecurrentWeights(name, gates: 3, inputSize: inputSize, hiddenSize: hiddenSize, layout: &layout)
    (weightIH, weightHH, biasIH, biasHH) = (w.weightIH, w.weightHH, w.biasIH, w.biasHH)
  }

  @discardableResult
  public func forward(
    _ p: Parameters, x: UnsafePointer<Float>, packing: PackedSequences,
    h0: UnsafePointer<Float>?, c0: UnsafePointer<Float>?, cache: RecurrentCache
  ) -> UnsafePointer<Float> {
    let hs = hiddenSize
    let g3 = 3 &* hs
    let rows = packing.rowCount
    cache.packing = packing
    cache.rankStates(packing, hiddenSize: hs, h0: h0, c0: nil, needsCell: false)
    let gates = cache.gates.reserve(rows &* g3)
    let hidden = cache.hidden.reserve(rows &* g3)
    let hPrev = cache.hPrev.reserve(rows &* hs)
    let h = cache.h.reserve(rows &* hs)
    cache.packForward(p, weightIH: weightIH, weightHH: weightHH, gates: g3, inputSize: inputSize, hiddenSize: hs, always: true)
    // The input projection of every step at once: its rows do not depend on h.
    project(cache.packedIH, p.value(biasIH), x: x, rows: rows, into: gates, k: inputSize)
    for t in 0..<packing.stepCount {
      let n = packing.batchSizes[t]
      let off = packing.offsets[t]
      let prevH = t == 0 ? cache.h0.pointer : h + packing.offsets[t - 1] &* hs
      (hPrev + off &* hs).update(from: prevH, count: n &* hs)  // kept for dW_hh
      recurrentStep(
        p, cache, hPrev: hPrev + off &* hs, rows: n, gates: gates + off &* g3, hidden: hidden + off &* g3,
        h: h + off &* hs)
    }
    return UnsafePointer(h)
  }

  public func step(
    _ p: Parameters, x: UnsafePointer<Float>, rows: Int, h: UnsafeMutablePointer<Float>,
    c: UnsafeMutablePointer<Float>?, cache: RecurrentCache
  ) {
    let hs = hiddenSize
    let g3 = 3 &* hs
    cache.packForward(p, weightIH: weightIH, weightHH: weightHH, gates: g3, inputSize: inputSize, hiddenSize: hs, always: false)
    let gates = cache.gates.reserve(rows &* g3)
    project(cache.packedIH, p.value(biasIH), x: x, rows: rows, into: gates, k: inputSize)
    recurrentStep(p, cache, hPrev: h, rows: rows, gates: gates, hidden: cache.hidden.reserve(rows &* g3), h: h)
  }

  /// One time step for `rows` rows after the input projection, shared by ``forward``
  /// and ``step`` (the same bits whatever the row counts; see ``LSTM``).
  /// `hPrev` may equal `h`.
  @inline(__always)
  private func recurrentStep(
    _ p: Parameters, _ cache: RecurrentCache, hPrev: UnsafePointer<Float>, rows: Int,
    gates: UnsafeMutablePointer<Float>, hidden: UnsafeMutablePointer<Float>, h: UnsafeMutablePointer<Float>
  ) {
    let hs = hiddenSize
    let g3 = 3 &* hs
    project(cache.packedHH, p.value(biasHH), x: hPrev, rows: rows, into: hidden, k: hs)
    for j in 0..<rows {
      Self.cellForward(
        gates: gates + j &* g3, hidden: hidden + j &* g3, hPrev: hPrev + j &* hs, h: h + j &* hs,
        hiddenSize: hs)
    }
  }

  /// `out[rows, 3H] = b + x W^T`: the bias first, then the packed product
  /// accumulates onto it (the same order in forward and step, so both give the same bits).
  @inline(__always)
  private func project(
    _ packed: PackedMatrix, _ b: UnsafePointer<Float>, x: UnsafePointer<Float>, rows: Int,
    into out: UnsafeMutablePointer<Float>, k: Int
  ) {
    let g3 = 3 &* hiddenSize
    for r in 0..<rows { (out + r &* g3).update(from: b, count: g3) }
    packed.multiply(x, lda: k, rows: rows, into: out, ldc: g3, accumulate: true)
  }

  /// One row: `gates` holds x-side pre-activations on entry and (r, z, n) on exit;
  /// `hidden` holds the h-side projections and is kept; `hPrev` may equal `h`.
  @inlinable @inline(__always)
  static func cellForward(
    gates: UnsafeMutablePointer<Float>, hidden: UnsafePointer<Float>, hPrev: UnsafePointer<Float>,
    h: UnsafeMutablePointer<Float>, hiddenSize hs: Int
  ) {
    var k = 0
    while k &+ 16 <= hs {
      cellForward16(gates: gates, hidden: hidden, hPrev: hPrev, h: h, hiddenSize: hs, at: k, count: 16)
      k &+= 16
    }
    if k < hs { cellForward16(gates: gates, hidden: hidden, hPrev: hPrev, h: h, hiddenSize: hs, at: k, count: hs &- k) }
  }

  /// Units `k..<k+m` (m <= 16) of one row; the tail has its own call, as the LSTM's.
  @inlinable @inline(__always)
  static func cellForward16(
    gates: UnsafeMutablePointer<Float>, hidden: UnsafePointer<Float>, hPrev: UnsafePointer<Float>,
    h: UnsafeMutablePointer<Float>, hiddenSize hs: Int, at k: Int, count m: Int
  ) {
    typealias V = Float16s
    let r = simdSigmoid(V.load(gates + k, count: m) + V.load(hidden + k, count: m))
    let z = simdSigmoid(V.load(gates + (hs &+ k), count: m) + V.load(hidden + (hs &+ k), count: m))
    let n = simdTanh(V.load(gates + (2 &* hs &+ k), count: m) + r * V.load(hidden + (2 &* hs &+ k), count: m))
    let hp = V.load(hPrev + k, count: m)
    r.store(gates + k, count: m)
    z.store(gates + (hs &+ k), count: m)
    n.store(gates + (2 &* hs &+ k), count: m)
    (n + z * (hp - n)).store(h + k, count: m)
  }
}

extension GRU {
  public func backward(
    _ p: Parameters, x: UnsafePointer<Float>, dH: UnsafePointer<Float>, cache: RecurrentCache,
    dx: UnsafeMutablePointer<Float>?, dh0: UnsafeMutablePointer<Float>?,
    dc0: UnsafeMutablePointer<Float>?
  ) {
    guard let packing = cache.packing else { preconditionFailure("GRU.backward before forward") }
    let hs = hiddenSize
    let g3 = 3 &* hs
    let rows = packing.rowCount
    let gates = cache.gates.pointer
    let hidden = cache.hidden.pointer
    let hPrev = cache.hPrev.pointer
    let dGx = cache.gradGates.reserve(rows &* g3)
    let dGh = cache.gradHidden.reserve(rows &* g3)
    let dhCarry = cache.dhCarry.zeroed(packing.sequenceCount &* hs)
    cache.packedHHBackward.pack(p.value(weightHH), ld: hs, transposed: false, k: g3, n: hs)
    for t in stride(from: packing.stepCount - 1, through: 0, by: -1) {
      let n = packing.batchSizes[t]
      let off = packing.offsets[t]
      for j in 0..<n {
        let r = off &+ j
        Self.cellBackward(
          gates: gates + r &* g3, hidden: hidden + r &* g3, hPrev: hPrev + r &* hs,
          dhOut: dH + r &* hs, dhCarry: dhCarry + j &* hs, dGx: dGx + r &* g3, dGh: dGh + r &* g3,
          hiddenSize: hs)
      }
      // dh_{t-1} = z * dh (written by the cell) + dGh_t W_hh; at t = 0 that is dh0,
      // skipped when nobody asks for it.
      if t > 0 || dh0 != nil {
        cache.packedHHBackward.multiply(dGh + off &* g3, lda: g3, rows: n, into: dhCarry, ldc: hs, accumulate: true)
      }
    }
    BLAS.gemm(
      .transposed, .none, m: g3, n: inputSize, k: rows, a: dGx, lda: g3, b: x, ldb: inputSize,
      beta: 1, c: p.grad(weightIH), ldc: inputSize)
    BLAS.gemm(
      .transposed, .none, m: g3, n: hs, k: rows, a: dGh, lda: g3, b: hPrev, ldb: hs,
      beta: 1, c: p.grad(weightHH), ldc: hs)
    Kernels.columnSums(dGx, rows: rows, cols: g3, lda: g3, into: p.grad(biasIH), accumulate: true)
    Kernels.columnSums(dGh, rows: rows, cols: g3, lda: g3, into: p.grad(biasHH), accumulate: true)
    if let dx {
      BLAS.gemm(
        .none, .none, m: rows, n: inputSize, k: g3, a: dGx, lda: g3, b: p.value(weightIH),
        ldb: inputSize, beta: 0, c: dx, ldc: inputSize)
    }
    if let dh0 { packing.scatterRows(dhCarry, features: hs, into: dh0) }
  }

  /// One row of BPTT: reads the carry from step t+1 and replaces it with the direct
  /// part `z * dh` of the carry into t-1; writes the x-side and h-side gradients.
  @inlinable @inline(__always)
  static func cellBackward(
    gates: UnsafePointer<Float>, hidden: UnsafePointer<Float>, hPrev: UnsafePointer<Float>,
    dhOut: UnsafePointer<Float>, dhCarry: UnsafeMutablePointer<Float>,
    dGx: UnsafeMutablePointer<Float>, dGh: UnsafeMutablePointer<Float>, hiddenSize hs: Int
  ) {
    var k = 0
    while k < hs {
      let m = min(8, hs &- k)
      let r = Float8.load(gates + k, count: m)
      let z = Float8.load(gates + (hs &+ k), count: m)
      let n = Float8.load(gates + (2 &* hs &+ k), count: m)
      let hn = Float8.load(hidden + (2 &* hs &+ k), count: m)
      let hp = Float8.load(hPrev + k, count: m)
      let dh = Float8.load(dhOut + k, count: m) + Float8.load(dhCarry + k, count: m)
      let dnPre = dh * (1 - z) * (1 - n * n)
      let dzPre = dh * (hp - n) * z * (1 - z)
      let drPre = dnPre * hn * r * (1 - r)
      (dh * z).store(dhCarry + k, count: m)
      drPre.store(dGx + k, count: m)
      dzPre.store(dGx + (hs &+ k), count: m)
      dnPre.store(dGx + (2 &* hs &+ k), count: m)
      drPre.store(dGh + k, count: m)
      dzPre.store(dGh + (hs &+ k), count: m)
      (dnPre * r).store(dGh + (2 &* hs &+ k), count: m)
      k &+= 8
    }
  }
}
