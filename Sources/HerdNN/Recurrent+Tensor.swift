import HerdMath

extension RecurrentLayer {
  /// Runs over a padded batch `[N, T, I]` with `seqLens [N]` and optional initial
  /// states `[N, H]`, returning `[N, T, H]` (zero past each length) and final states.
  ///
  /// - Throws: ``NNError/shapeMismatch(context:expected:actual:)`` for inputs or states
  ///   of the wrong shape, ``NNError/badSequenceLength(index:length:maxLength:)``.
  public func forward(
    _ p: Parameters, input: Tensor, seqLens: [Int], initialState: RecurrentState? = nil,
    cache: RecurrentCache
  ) throws -> RecurrentOutput {
    guard input.rank == 3, input.shape[0] == seqLens.count, input.shape[2] == inputSize else {
      throw NNError.shapeMismatch(
        context: "\(Self.self) input [N, T, I]",
        expected: [seqLens.count, input.shape.count > 1 ? input.shape[1] : 0, inputSize],
        actual: input.shape)
    }
    let (nSeq, steps, hs) = (input.shape[0], input.shape[1], hiddenSize)
    if let s = initialState {
      try s.h.require([nSeq, hs], "\(Self.self) initial h")
      if stateCount == 2 {
        guard let c = s.c else {
          throw NNError.shapeMismatch(context: "\(Self.self) initial c (missing)", expected: [nSeq, hs], actual: [])
        }
        try c.require([nSeq, hs], "\(Self.self) initial c")
      }
    }
    let packing = try PackedSequences(seqLens: seqLens, maxLength: steps)
    let xp = cache.xPacked.reserve(max(1, packing.rowCount &* inputSize))
    input.scalars.withPointer { packing.pack($0, features: inputSize, into: xp) }
    let h0 = initialState?.h.scalars ?? []
    let c0 = initialState?.c?.scalars ?? []
    let packedOut = h0.withPointer { ph in
      c0.withPointer { pc in
        forward(
          p, x: xp, packing: packing, h0: initialState == nil ? nil : ph,
          c0: initialState?.c == nil ? nil : pc, cache: cache)
      }
    }
    var output = Tensor(shape: [nSeq, steps, hs])
    output.scalars.withMutablePointer { packing.unpack(packedOut, features: hs, into: $0) }
    // Final states: each sequence's last packed row, or its initial state.
    var fh = Tensor(shape: [nSeq, hs])
    var fc = Tensor(shape: [nSeq, hs])
    for i in 0..<nSeq {
      let len = seqLens[i]
      let r = packing.rank[i]
      let hsrc =
        len > 0 ? packedOut + packing.row(sequence: i, time: len - 1) &* hs : UnsafePointer(cache.h0.pointer + r &* hs)
      fh.scalars.withMutablePointer { ($0 + i &* hs).update(from: hsrc, count: hs) }
      if stateCount == 2 {
        let csrc =
          len > 0 ? cache.cell.pointer + packing.row(sequence: i, time: len - 1) &* hs : cache.c0.pointer + r &* hs
        fc.scalars.withMutablePointer { ($0 + i &* hs).update(from: csrc, count: hs) }
      }
    }
    return RecurrentOutput(output: output, final: RecurrentState(h: fh, c: stateCount == 2 ? fc : nil))
  }

  /// Backpropagation through time after ``forward(_:input:seqLens:initialState:cache:)``.
  ///
  /// - Parameter gradOutput: `[N, T, H]`; entries past each length are ignored.
  /// - Returns: the gradient w.r.t. the input `[N, T, I]` (zero in the padding) and
  ///   w.r.t. the initial state.
  public func backward(
    _ p: Parameters, gradOutput: Tensor, cache: RecurrentCache
  ) throws -> (input: Tensor, initialState: RecurrentState) {
    guard let packing = cache.packing else {
      throw NNError.invalidValue(name: "cache", value: "empty", reason: "call forward first")
    }
    let (nSeq, steps, hs) = (packing.sequenceCount, packing.maxLength, hiddenSize)
    try gradOutput.require([nSeq, steps, hs], "\(Self.self) gradOutput")
    let rows = packing.rowCount
    let dHp = cache.dHPacked.reserve(max(1, rows &* hs))
    gradOutput.scalars.withPointer { packing.pack($0, features: hs, into: dHp) }
    let dxp = cache.dxPacked.reserve(max(1, rows &* inputSize))
    var dh0 = Tensor(shape: [nSeq, hs])
    var dc0 = Tensor(shape: [nSeq, hs])
    dh0.scalars.withMutablePointer { ph in
      dc0.scalars.withMutablePointer { pc in
        backward(
          p, x: cache.xPacked.pointer, dH: dHp, cache: cache, dx: dxp, dh0: ph,
          dc0: stateCount == 2 ? pc : nil)
      }
    }
    var dInput = Tensor(shape: [nSeq, steps, inputSize])
    dInput.scalars.withMutablePointer { packing.unpack(dxp, features: inputSize, into: $0) }
    return (dInput, RecurrentState(h: dh0, c: stateCount == 2 ? dc0 : nil))
  }
}
