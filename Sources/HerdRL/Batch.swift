import HerdMath
import HerdNN

/// A training batch: N = B / T fragments as `[N, T, ...]` tensors (DESIGN.md "Batch").
///
/// Shapes: `obs [N, T+1, F]` (slot `seqLens[i]` holds fragment i's bootstrap
/// observation), `prevActions [N, T+1]` and `prevRewards [N, T+1]` (the previous
/// action/reward each step's input sees, through the bootstrap slot; for Box
/// actions `prevActionValues [N, T+1, D]`, as sampled), `actions [N, T]`,
/// `rewards [N, T]`, `behaviourLogits [N, T, A]`, `mask [N, T]` (1 for steps
/// `< seqLens[i]`), `seqLens [N]`, `stateIn [N, S]`. Everything past a fragment's
/// length is zero padding: it never reaches the loss, V-trace or a gradient.
public struct Batch: Sendable {
  public let sequences: Int
  public let maxLength: Int
  public let observationSize: Int
  public let actionCount: Int
  /// The action heads (actions are packed in mixed radix, see ``ActionHeads``);
  /// one head of 1 for a Gaussian policy (whose actions are ``actionValues``).
  public let heads: ActionHeads
  /// What `behaviourLogits` parameterise.
  public let distribution: ActionDistribution
  /// Box actions `[N, T, D]` (empty for discrete actions).
  public var actionValues: [Float]
  public let stateSize: Int
  /// Bytes when every fragment's observations are bytes (uint8 images).
  public var obs: ObservationData
  public var prevActions: [Int32]
  /// Box actions: the previous action each step's input sees `[N, T+1, D]`, as
  /// sampled (empty for discrete actions).
  public var prevActionValues: [Float]
  public var prevRewards: [Float]
  public var actions: [Int32]
  public var rewards: [Float]
  public var behaviourLogits: [Float]
  public var mask: [Float]
  public var seqLens: [Int]
  public var stateIn: [Float]
  public var ends: [FragmentEnd]
  public var policyVersions: [Int]
  /// Whether `obs` went through the observation filter already (the learner
  /// filters each fragment with its worker's filter); raw otherwise, and the
  /// network's forward applies its own.
  public var observationsFiltered = false

  /// Valid steps in the batch (sum of seqLens).
  public var validSteps: Int { seqLens.reduce(0, +) }
}

/// Errors from assembling a batch.
public enum BatchError: Error, Equatable, CustomStringConvertible {
  /// A fragment does not fit the model or T; the reason names the field.
  case badFragment(index: Int, reason: String)

  public var description: String {
    switch self {
    case .badFragment(let i, let reason): return "fragment \(i): \(reason)"
    }
  }
}

extension Batch {
  /// Builds the padded batch from fragments.
  ///
  /// - Throws: ``BatchError/badFragment(index:reason:)`` when a fragment is empty,
  ///   longer than T, or its arrays do not match F, A or S.
  public init(
    fragments: [Fragment], maxLength t: Int, observationSize f: Int, actionCount a: Int, stateSize s: Int,
    heads: ActionHeads? = nil, distribution: ActionDistribution? = nil
  ) throws {
    let distribution = distribution ?? .categorical(heads ?? ActionHeads(single: a))
    let heads = distribution.heads ?? ActionHeads(single: 1)
    precondition(distribution.inputs == a, "\(distribution) has \(distribution.inputs) inputs, not A = \(a)")
    self.heads = heads
    self.distribution = distribution
    let d = distribution.actionWidth
    actionValues = [Float](repeating: 0, count: fragments.count * t * d)
    let n = fragments.count
    sequences = n
    maxLength = t
    observationSize = f
    actionCount = a
    stateSize = s
    let bytes = !fragments.isEmpty && fragments.allSatisfy { $0.observations.isBytes }
    var obsBytes = [UInt8](repeating: 0, count: bytes ? n * (t + 1) * f : 0)
    var obsFloats = [Float](repeating: 0, count: bytes ? 0 : n * (t + 1) * f)
    prevActions = [Int32](repeating: 0, count: n * (t + 1))
    prevActionValues = [Float](repeating: 0, count: n * (t + 1) * d)
    prevRewards = [Float](repeating: 0, count: n * (t + 1))
    actions = [Int32](repeating: 0, count: n * t)
    rewards = [Float](repeating: 0, count: n * t)
    behaviourLogits = [Float](repeating: 0, count: n * t * a)
    mask = [Float](repeating: 0, count: n * t)
    seqLens = [Int](repeating: 0, count: n)
    stateIn = [Float](repeating: 0, count: n * s)
    ends = []
    policyVersions = []
    for (i, fr) in fragments.enumerated() {
      let len = fr.length
      func bad(_ reason: String) -> BatchError { .badFragment(index: i, reason: reason) }
      guard len >= 1 && len <= t else { throw bad("length \(len), must be in 1...\(t) (max_seq_len)") }
      guard fr.observations.count == (len + 1) * f else {
        throw bad("observations hold \(fr.observations.count) floats, expected (\(len) + 1) x \(f)")
      }
      guard fr.rewards.count == len else { throw bad("rewards hold \(fr.rewards.count), expected \(len)") }
      guard fr.behaviourLogits.count == len * a else {
        throw bad("behaviour logits hold \(fr.behaviourLogits.count), expected \(len) x \(a)")
      }
      guard fr.stateIn.count == s else { throw bad("state_in holds \(fr.stateIn.count) floats, expected \(s)") }
      guard fr.actions.count == len else { throw bad("actions hold \(fr.actions.count), expected \(len)") }
      if let act = fr.actions.first(where: { $0 < 0 || Int($0) >= heads.values }) {
        throw bad("action \(act) outside 0..<\(heads.values)")
      }
      guard fr.actionValues.count == len * d else {
        throw bad("action values hold \(fr.actionValues.count) floats, expected \(len) x \(d)")
      }
      if let v = fr.actionValues.first(where: { !$0.isFinite }) { throw bad("action value \(v) is not finite") }
      for k in 0..<(len * d) { actionValues[i * t * d + k] = fr.actionValues[k] }
      guard fr.prevActionValues.isEmpty || fr.prevActionValues.count == d else {
        throw bad("the previous action holds \(fr.prevActionValues.count) floats, expected \(d) (or none: zeros)")
      }
      if let v = fr.prevActionValues.first(where: { !$0.isFinite }) {
        throw bad("previous action value \(v) is not finite")
      }
      // Step k's input sees the action before it: the fragment's previous action, then its own.
      let pav = i * (t + 1) * d
      for j in 0..<fr.prevActionValues.count { prevActionValues[pav + j] = fr.prevActionValues[j] }
      for k in 0..<(len * d) { prevActionValues[pav + d + k] = fr.actionValues[k] }
      seqLens[i] = len
      if bytes, case .bytes(let src) = fr.observations.storage {
        obsBytes.withUnsafeMutableBufferPointer { dst in
          src.withUnsafeBufferPointer { s in
            UnsafeMutableRawPointer(dst.baseAddress.unsafelyUnwrapped + i * (t + 1) * f).copyMemory(
              from: s.baseAddress.unsafelyUnwrapped, byteCount: (len + 1) * f)
          }
        }
      } else {
        obsFloats.withMutablePointer { fr.observations.widen(from: 0, count: (len + 1) * f, into: $0 + i * (t + 1) * f) }
      }
      for k in 0..<len {
        actions[i * t + k] = fr.actions[k]
        rewards[i * t + k] = fr.rewards[k]
        mask[i * t + k] = 1
      }
      for k in 0..<(len * a) { behaviourLogits[i * t * a + k] = fr.behaviourLogits[k] }
      prevActions[i * (t + 1)] = fr.prevAction
      prevRewards[i * (t + 1)] = fr.prevReward
      for k in 1...len {
        prevActions[i * (t + 1) + k] = fr.actions[k - 1]
        prevRewards[i * (t + 1) + k] = fr.rewards[k - 1]
      }
      for k in 0..<s { stateIn[i * s + k] = fr.stateIn[k] }
      ends.append(fr.end)
      policyVersions.append(fr.policyVersion)
    }
    obs = bytes ? ObservationData(bytes: obsBytes) : ObservationData(obsFloats)
  }
}

extension Batch {
  /// Multiplies the rewards the loss reads (not `prevRewards`, the network's inputs).
  public mutating func scaleRewards(by scale: Float) {
    guard scale != 1 else { return }
    for k in rewards.indices { rewards[k] *= scale }
  }
}

extension Batch {
  /// Per step `[N, T]`, whether the step waits: the observation's action-mask
  /// entries `entries` allow no action (a turn-based game's player whose turn it is
  /// not). Padding never waits. Empty when there is no mask or no step waits, so
  /// callers can skip the lookups.
  ///
  /// A waiting step's action is ignored by its environment and adds exactly 0 to
  /// the policy and entropy terms (see ``ActionMask``); the loss takes those terms'
  /// means over the steps that act, and the value loss's over every valid step.
  public func waitingSteps(actionMask entries: Range<Int>?) -> [Bool] {
    guard let entries, !entries.isEmpty, case .floats(let values) = obs.storage else { return [] }
    var waiting = [Bool](repeating: false, count: sequences * maxLength)
    var any = false
    for i in 0..<sequences {
      for t in 0..<seqLens[i] {
        let base = (i * (maxLength + 1) + t) * observationSize
        if !entries.contains(where: { values[base + $0] >= 0.5 }) {
          waiting[i * maxLength + t] = true
          any = true
        }
      }
    }
    return any ? waiting : []
  }

  /// Valid steps that do not wait (``waitingSteps(actionMask:)``).
  public func actingSteps(actionMask entries: Range<Int>?) -> Int {
    validSteps - waitingSteps(actionMask: entries).reduce(0) { $0 + ($1 ? 1 : 0) }
  }
}
