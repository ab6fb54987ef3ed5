import HerdMath

/// A long short-term memory layer with PyTorch's `nn.LSTM` semantics (one layer,
/// unidirectional).
///
/// Per step (Hochreiter & Schmidhuber 1997; PyTorch's formulation and gate order):
/// ```
/// [i, f, g, o] = x W_ih^T + b_ih + h W_hh^T + b_hh        (gates, 4H, in that order)
/// i, f, o = sigmoid(.)   g = tanh(.)
/// c' = f * c + i * g     h' = o * tanh(c')
/// ```
/// Parameters (PyTorch names without the `_l0` suffix): `weight_ih [4H, I]`,
/// `weight_hh [4H, H]`, `bias_ih [4H]`, `bias_hh [4H]`, rows in gate order i, f, g, o,
/// all ~ U(-1/sqrt(H), 1/sqrt(H)).
///
/// Cost per sequence batch: the input projection of all packed rows as one product,
/// then the recurrent product per step on the active prefix, both on weights packed
/// once per call (``PackedMatrix``); backward one packed product per step plus three
/// general products over all packed rows for the weight and input gradients (the two
/// weight gradients in one call that shares `dG^T`).
public struct LSTM: RecurrentLayer, Equatable {
  public let inputSize: Int
  public let hiddenSize: Int
  public var stateCount: Int { 2 }
  /// `[4H, I]`.
  public let weightIH: ParameterSlot
  /// `[4H, H]`.
  public let weightHH: ParameterSlot
  /// `[4H]`.
  public let biasIH: ParameterSlot
  /// `[4H]`.
  public let biasHH: ParameterSlot

  /// Declares `name.weight_ih`, `name.weight_hh`, `name.bias_ih`, `name.bias_hh`.
  public init(_ name: String, inputSize: Int, hiddenSize: Int, layout: inout ParameterLayout) {
    self.inputSize = inputSize
    self.hiddenSize = hiddenSize
    let w = RecurrentWeights(name, gates: 4, inputSize: inputSize, hiddenSize: hiddenSize, layout: &layout)
    (weightIH, weightHH, biasIH, biasHH) = (w.weightIH, w.weightHH, w.biasIH, w.biasHH)
  }

  // MARK: Forward

  @discardableResult
  public func forward(
    _ p: Parameters, x: UnsafePointer<Float>, packing: PackedSequences,
    h0: UnsafePointer<Float>?, c0: UnsafePointer<Float>?, cache: RecurrentCache
  ) -> UnsafePointer<Float> {
    let hs = hiddenSize
    let g4 = 4 &* hs
    let rows = packing.rowCount
    cache.packing = packing
    cache.rankStates(packing, hiddenSize: hs, h0: h0, c0: c0, needsCell: true)
    let bias = combinedBias(p, cache)
    let gates = cache.gates.reserve(rows &* g4)
    let hPrev = cache.hPrev.reserve(rows &* hs)
    let cell = cache.cell.reserve(rows &* hs)
    let tanhCell = cache.tanhCell.reserve(rows &* hs)
    let h = cache.h.reserve(rows &* hs)
    cache.packForward(p, weightIH: weightIH, weightHH: weightHH, gates: g4, inputSize: inputSize, hiddenSize: hs, always: true)
    // The input projection of every step at once: its rows do not depend on h.
    cache.packedIH.multiply(x, lda: inputSize, rows: rows, into: gates, ldc: g4, accumulate: false)
    for t in 0..<packing.stepCount {
      let n = packing.batchSizes[t]
      let off = packing.offsets[t]
      let prevH = t == 0 ? cache.h0.pointer : h + packing.offsets[t - 1] &* hs
      let prevC = t == 0 ? cache.c0.pointer : cell + packing.offsets[t - 1] &* hs
      (hPrev + off &* hs).update(from: prevH, count: n &* hs)  // kept for dW_hh
      recurrentStep(
        cache, bias: bias, hPrev: hPrev + off &* hs, cPrev: prevC, rows: n,
        gates: gates + off &* g4, c: cell + off &* hs, tanhC: tanhCell + off &* hs, h: h + off &* hs)
    }
    return UnsafePointer(h)
  }

  public func step(
    _ p: Parameters, x: UnsafePointer<Float>, rows: Int, h: UnsafeMutablePointer<Float>,
    c: UnsafeMutablePointer<Float>?, cache: RecurrentCache
  ) {
    guard let c else { preconditionFailure("LSTM.step needs a cell state") }
    let hs = hiddenSize
    let g4 = 4 &* hs
    cache.packForward(p, weightIH: weightIH, weightHH: weightHH, gates: g4, inputSize: inputSize, hiddenSize: hs, always: false)
    let gates = cache.gates.reserve(rows &* g4)
    cache.packedIH.multiply(x, lda: inputSize, rows: rows, into: gates, ldc: g4, accumulate: false)
    recurrentStep(
      cache, bias: combinedBias(p, cache), hPrev: h, cPrev: c, rows: rows,
      gates: gates, c: c, tanhC: cache.tanhCell.reserve(rows &* hs), h: h)
  }

  /// One time step for `rows` rows after the input projection, shared by ``forward``
  /// and ``step``: `gates += h W_hh^T`, then the cell adds `b_ih + b_hh` as it
  /// reads them.
  ///
  /// Bit for bit the same on both paths, whatever the row counts: the packed
  /// kernels compute each gate as one fused multiply-add chain, over x's features
  /// and then h's, that depends on its own row only (``PackedMatrix``).
  /// `hPrev` may equal `h` and `cPrev` may equal `c` (in-place rollout update).
  @inline(__always)
  private func recurrentStep(
    _ cache: RecurrentCache, bias: UnsafePointer<Float>, hPrev: UnsafePointer<Float>,
    cPrev: UnsafePointer<Float>, rows: Int, gates: UnsafeMutablePointer<Float>,
    c: UnsafeMutablePointer<Float>, tanhC: UnsafeMutablePointer<Float>, h: UnsafeMutablePointer<Float>
  ) {
    let hs = hiddenSize
    let g4 = 4 &* hs
    cache.packedHH.multiply(hPrev, lda: hs, rows: rows, into: gates, ldc: g4, accumulate: true)
    for j in 0..<rows {
      Self.cellForward(
        gates: gates + j &* g4, bias: bias, cPrev: cPrev + j &* hs, c: c + j &* hs,
        tanhC: tanhC + j &* hs, h: h + j &* hs, hiddenSize: hs)
    }
  }

  private func combinedBias(_ p: Parameters, _ cache: RecurrentCache) -> UnsafePointer<Float> {
    let g4 = 4 &* hiddenSize
    let b = cache.bias.reserve(g4)
    let bi = p.value(biasIH)
    let bh = p.value(biasHH)
    for k in 0..<g4 { b[k] = bi[k] + bh[k] }
    return UnsafePointer(b)
  }

  /// One row's gate activations and state update. `gates` holds the products
  /// (pre-activations less the bias `[4H]`) on entry and activations (i, f, g, o) on
  /// exit; `cPrev` may equal `c`.
  ///
  /// Whole vectors of 16 first, then the tail (H not a multiple of 16) on a path of
  /// its own: with a partial load inside the main loop the compiler scalarised it.
  @inlinable @inline(__always)
  static func cellForward(
    gates: UnsafeMutablePointer<Float>, bias b: UnsafePointer<Float>, cPrev: UnsafePointer<Float>,
    c: UnsafeMutablePointer<Float>,
    tanhC: UnsafeMutablePointer<Float>, h: UnsafeMutablePointer<Float>, hiddenSize hs: Int
  ) {
    var k = 0
    while k &+ 16 <= hs {
      cellForward16(gates: gates, bias: b, cPrev: cPrev, c: c, tanhC: tanhC, h: h, hiddenSize: hs, at: k, count: 16)
      k &+= 16
    }
    if k < hs {
      cellForward16(gates: gates, bias: b, cPrev: cPrev, c: c, tanhC: tanhC, h: h, hiddenSize: hs, at: k, count: hs &- k)
    }
  }

  /// Units `k..<k+n` (n <= 16) of one row.
  @inlinable @inline(__always)
  static func cellForward16(
    gates: UnsafeMutablePointer<Float>, bias b: UnsafePointer<Float>, cPrev: UnsafePointer<Float>,
    c: UnsafeMutablePointer<Float>, tanhC: UnsafeMutablePointer<Float>, h: UnsafeMutablePointer<Float>,
    hiddenSize hs: Int, at k: Int, count n: Int
  ) {
    typealias V = Float16s
    let i = simdSigmoid(V.load(gates + k, count: n) + V.load(b + k, count: n))
    let f = simdSigmoid(V.load(gates + (hs &+ k), count: n) + V.load(b + (hs &+ k), count: n))
    let g = simdTanh(V.load(gates + (2 &* hs &+ k), count: n) + V.load(b + (2 &* hs &+ k), count: n))
    let o = simdSigmoid(V.load(gates + (3 &* hs &+ k), count: n) + V.load(b + (3 &* hs &+ k), count: n))
    let cNew = f * V.load(cPrev + k, count: n) + i * g
    let tc = simdTanh(cNew)
    i.store(gates + k, count: n)
    f.store(gates + (hs &+ k), count: n)
    g.store(gates + (2 &* hs &+ k), count: n)
    o.store(gates + (3 &* hs &+ k), count: n)
    cNew.store(c + k, count: n)
    tc.store(tanhC + k, count: n)
    (o * tc).store(h + k, count: n)
  }
}
