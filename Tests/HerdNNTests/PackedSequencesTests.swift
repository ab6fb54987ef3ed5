import HerdMath
import HerdNN
import Testing

@Suite struct PackedSequencesTests {
  @Test func ranksByLengthAndCountsActiveRowsPerStep() throws {
    let p = try PackedSequences(seqLens: [2, 5, 0, 5, 3], maxLength: 5)
    #expect(p.order == [1, 3, 4, 0, 2])  // longest first, ties in caller's order
    #expect(p.batchSizes == [4, 4, 3, 2, 2])
    #expect(p.offsets == [0, 4, 8, 11, 13, 15])
    #expect(p.rowCount == 15)
    #expect(p.row(sequence: 4, time: 2) == 8 + 2)
    // Active rows at t are a prefix of those at t - 1.
    for t in 1..<p.stepCount { #expect(p.batchSizes[t] <= p.batchSizes[t - 1]) }
  }

  @Test func packThenUnpackRestoresValidStepsAndZeroesPadding() throws {
    let lens = [3, 1, 4]
    let p = try PackedSequences(seqLens: lens, maxLength: 4)
    let f = 2
    let padded = (0..<(3 * 4 * f)).map { Float($0 + 1) }
    var packed = [Float](repeating: 0, count: p.rowCount * f)
    var back = [Float](repeating: -1, count: padded.count)
    padded.withPointer { src in packed.withMutablePointer { p.pack(src, features: f, into: $0) } }
    packed.withPointer { src in back.withMutablePointer { p.unpack(src, features: f, into: $0) } }
    for i in 0..<3 {
      for t in 0..<4 {
        for k in 0..<f {
          let idx = (i * 4 + t) * f + k
          #expect(back[idx] == (t < lens[i] ? padded[idx] : 0))
        }
      }
    }
  }

  @Test func rejectsLengthsOutOfRange() {
    #expect(throws: NNError.badSequenceLength(index: 1, length: -1, maxLength: 3)) {
      try PackedSequences(seqLens: [1, -1], maxLength: 3)
    }
    #expect(throws: NNError.badSequenceLength(index: 0, length: 4, maxLength: 3)) {
      try PackedSequences(seqLens: [4], maxLength: 3)
    }
  }
}
