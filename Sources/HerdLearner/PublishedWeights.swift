/// The weights the learner published for its most recent policy versions, oldest
/// first, within a byte budget.
///
/// Workers act with published weights, and their episodes reach the learner some
/// updates later (the policy lag), so a mean return over recent episodes judges
/// weights the learner has already moved past. This keeps those weights, so that
/// `best.herd` can hold the ones that played a record window rather than whatever
/// the learner has when the record is seen. The arrays are the ones handed to the
/// broadcast (shared, not copied).
struct PublishedWeights {
  /// Bytes of weights kept at most (the newest version is kept whatever its size).
  let budgetBytes: Int
  /// Versions kept at most.
  let maxVersions: Int
  private(set) var entries: [(version: Int, weights: [Float])] = []

  init(budgetBytes: Int, maxVersions: Int) {
    self.budgetBytes = budgetBytes
    self.maxVersions = max(1, maxVersions)
  }

  /// Adds the weights of `version` (newer than every version kept) and drops the
  /// oldest versions while more than `maxVersions` or the budget are kept.
  mutating func add(version: Int, weights: [Float]) {
    if let last = entries.last, last.version >= version { entries.removeAll { $0.version >= version } }
    entries.append((version, weights))
    let size = weights.count * MemoryLayout<Float>.size
    let keep = min(maxVersions, max(1, budgetBytes / max(1, size)))
    if entries.count > keep { entries.removeFirst(entries.count - keep) }
  }

  /// Drops the versions older than `version` (no window of episodes can ask for
  /// them any more), keeping the newest in any case.
  mutating func drop(before version: Int) {
    let n = entries.prefix(entries.count - 1).prefix { $0.version < version }.count
    if n > 0 { entries.removeFirst(n) }
  }

  /// The weights of `version`; when it is no longer kept, those of the oldest
  /// version kept after it (the closest to it). Nil when nothing is kept.
  func weights(for version: Int) -> (version: Int, weights: [Float])? {
    entries.first { $0.version >= version } ?? entries.last
  }
}
