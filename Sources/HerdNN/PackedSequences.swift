/// The packed, time-major layout of a batch of variable-length sequences
/// (PyTorch's `PackedSequence`).
///
/// Given `seqLens [N]` (any order), sequences are ranked by length, longest first
/// (stable). Step t of the packed layout holds `batchSizes[t]` rows, one per
/// sequence still running at t, in rank order; the rows of step t start at
/// `offsets[t]`. Because ranks are ordered by length, the rows active at step t are
/// a prefix of those active at t - 1, so each step's matrix products run on a
/// prefix and padding costs no arithmetic.
///
/// Shapes: padded `[N, T, F]` (sequence-major, as the batch holds it) <-> packed
/// `[P, F]` with `P = sum(seqLens)`.
public struct PackedSequences: Sendable, Equatable {
  /// Lengths in the caller's order.
  public let seqLens: [Int]
  /// Padded time dimension T.
  public let maxLength: Int
  /// `order[rank]` = caller's index of the rank-th longest sequence.
  public let order: [Int]
  /// `rank[i]` = rank of the caller's sequence i.
  public let rank: [Int]
  /// Rows per step, non-increasing; `batchSizes.count` = longest length.
  public let batchSizes: [Int]
  /// Start row of each step; `offsets.last` = P.
  public let offsets: [Int]

  /// Packs `seqLens` for a padded time dimension `maxLength`.
  ///
  /// - Throws: ``NNError/badSequenceLength(index:length:maxLength:)`` for a length
  ///   outside `0...maxLength`.
  public init(seqLens: [Int], maxLength: Int) throws {
    for (i, n) in seqLens.enumerated() where n < 0 || n > maxLength {
      throw NNError.badSequenceLength(index: i, length: n, maxLength: maxLength)
    }
    self.seqLens = seqLens
    self.maxLength = maxLength
    let order = seqLens.indices.sorted { a, b in
      seqLens[a] != seqLens[b] ? seqLens[a] > seqLens[b] : a < b
    }
    self.order = order
    var rank = [Int](repeating: 0, count: seqLens.count)
    for (r, i) in order.enumerated() { rank[i] = r }
    self.rank = rank
    let longest = seqLens.max() ?? 0
    var sizes = [Int](repeating: 0, count: longest)
    for n in seqLens where n > 0 { for t in 0..<n { sizes[t] += 1 } }
    batchSizes = sizes
    var offsets = [0]
    for s in sizes { offsets.append(offsets[offsets.count - 1] + s) }
    self.offsets = offsets
  }

  /// Number of sequences N.
  public var sequenceCount: Int { seqLens.count }
  /// Number of packed rows P (valid steps).
  public var rowCount: Int { offsets[offsets.count - 1] }
  /// Number of packed steps (the longest length).
  public var stepCount: Int { batchSizes.count }

  /// Packed row of (caller's sequence `i`, time `t`), `t < seqLens[i]`.
  @inlinable public func row(sequence i: Int, time t: Int) -> Int { offsets[t] + rank[i] }

  /// Copies padded `[N, T, F]` into packed `[P, F]`.
  public func pack(
    _ padded: UnsafePointer<Float>, features f: Int, into packed: UnsafeMutablePointer<Float>
  ) {
    for t in 0..<stepCount {
      for r in 0..<batchSizes[t] {
        let i = order[r]
        (packed + (offsets[t] &+ r) &* f).update(from: padded + (i &* maxLength &+ t) &* f, count: f)
      }
    }
  }

  /// Copies packed `[P, F]` into padded `[N, T, F]`, zeroing the padding.
  public func unpack(
    _ packed: UnsafePointer<Float>, features f: Int, into padded: UnsafeMutablePointer<Float>
  ) {
    padded.update(repeating: 0, count: sequenceCount &* maxLength &* f)
    for t in 0..<stepCount {
      for r in 0..<batchSizes[t] {
        let i = order[r]
        (padded + (i &* maxLength &+ t) &* f).update(from: packed + (offsets[t] &+ r) &* f, count: f)
      }
    }
  }

  /// Copies per-sequence rows `[N, F]` from caller's order into rank order.
  public func gatherRows(
    _ rows: UnsafePointer<Float>, features f: Int, into ranked: UnsafeMutablePointer<Float>
  ) {
    for (r, i) in order.enumerated() { (ranked + r &* f).update(from: rows + i &* f, count: f) }
  }

  /// Copies per-sequence rows `[N, F]` from rank order back to caller's order.
  public func scatterRows(
    _ ranked: UnsafePointer<Float>, features f: Int, into rows: UnsafeMutablePointer<Float>
  ) {
    for (r, i) in order.enumerated() { (rows + i &* f).update(from: ranked + r &* f, count: f) }
  }
}
