import HerdMath

/// The learner's experience replay (`replay_proportion`, `replay_buffer_num_slots`):
/// the newest fragments trained on, from which each new batch draws extra fragments
/// to train on beside its own.
///
/// A fragment keeps everything V-trace needs to weigh it again: the recurrent state
/// it started from and the behaviour policy's logits at every step. What changes
/// between its first training and a replay is only the learner's policy, and the
/// importance ratios pi_current / mu_stored account for that. Fragments older than
/// `max_policy_lag` updates are dropped, like stale fresh ones.
public struct ReplayBuffer: Sendable {
  /// Fragments kept at most (one per slot).
  public let capacity: Int
  /// Replayed fragments per new one.
  public let proportion: Double
  /// The kept fragments, oldest first.
  public private(set) var fragments: [Fragment] = []
  /// The fraction of a fragment owed to the next batch.
  private var credit = 0.0
  private var rng: SeededGenerator

  public init(capacity: Int, proportion: Double, seed: UInt64) {
    precondition(capacity >= 0 && proportion >= 0)
    self.capacity = capacity
    self.proportion = proportion
    rng = SeededGenerator(seed: seed)
  }

  /// Whether it replays anything at all.
  public var isActive: Bool { capacity > 0 && proportion > 0 }

  /// Bytes its fragments hold.
  public var storageBytes: Int { fragments.reduce(0) { $0 + $1.storageBytes } }

  /// Keeps `new` (after they were trained on), dropping the oldest beyond capacity.
  public mutating func add(_ new: [Fragment]) {
    guard isActive else { return }
    fragments.append(contentsOf: new.suffix(capacity))
    if fragments.count > capacity { fragments.removeFirst(fragments.count - capacity) }
  }

  /// Drops fragments acted on more than `maxLag` updates before `version`.
  public mutating func dropStale(version: Int, maxLag: Int) {
    fragments.removeAll { version - $0.policyVersion > maxLag }
  }

  /// The fragments to mix into a batch of `newCount` new ones: `proportion *
  /// newCount` of them (the fractions carried over), drawn uniformly without
  /// replacement (with replacement only when more are owed than it holds). Empty
  /// while the buffer is.
  public mutating func draw(forNew newCount: Int) -> [Fragment] {
    guard isActive else { return [] }
    credit += proportion * Double(newCount)
    let owed = Int(credit)
    credit -= Double(owed)
    guard owed > 0, !fragments.isEmpty else { return [] }
    var picked: [Fragment] = []
    picked.reserveCapacity(owed)
    var indices = Array(fragments.indices)
    var left = indices.count
    while picked.count < owed {
      if left == 0 { left = indices.count }  // every one taken: start over
      let j = Int(rng.next() % UInt64(left))
      picked.append(fragments[indices[j]])
      indices.swapAt(j, left - 1)
      left -= 1
    }
    return picked
  }
}
