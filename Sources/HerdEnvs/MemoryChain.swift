import HerdMath

/// bsuite's memory task (`memory_len`, Osband et al. 2020) with one context bit:
/// only memory can solve it.
///
/// An episode lasts `length` steps. The observation is
/// `[time remaining, query, context]`:
/// - time remaining `1 - t / length` at step t (so the last step is recognisable);
/// - query 1 on the last step (when the answer is due), else 0;
/// - context +1 or -1 on the first step only (drawn per episode), else 0.
/// Actions 0 and 1 answer -1 and +1. The action on the last step is the answer:
/// reward +1 when it matches the context, -1 otherwise; every other reward is 0.
/// The episode then terminates. A memoryless policy answers right half the time.
///
/// Differences from bsuite's `MemoryChain`: bsuite writes the query as the index of
/// the bit asked (always 0 with one bit) and repeats the first observation once;
/// here the query is a flag and each step has its own observation.
public struct MemoryChain: Environment, Sendable {
  /// Tuned keys: Adam at 1e-3, a GRU, and orthogonal initialisation, whose value
  /// head starts at full scale: with PyTorch's (0.01), most runs fell back to chance
  /// for a while after solving the task (docs/ARCHITECTURE.md, "Runs that collapse").
  public static let registration = EnvironmentRegistration(
    id: "MemoryChain-v0", summary: "remember a bit for `length` steps (bsuite's memory task)",
    options: ["length": 10],
    trainingDefaults: #"{"optimizer": "adam", "lr": 0.001, "rnn_type": "gru", "weight_init": "orthogonal"}"#
  ) { MemoryChain(length: max(1, $0["length"] ?? 10)) }

  /// Steps per episode (at least 1).
  public let length: Int
  /// This episode's context bit: 0 (shown as -1) or 1 (shown as +1).
  public private(set) var context = 0
  private var t = 0
  private var rng: SeededGenerator

  /// A chain of `length` steps whose contexts are drawn from `seed`.
  public init(length: Int, seed: UInt64 = 0) {
    precondition(length >= 1, "MemoryChain length \(length)")
    self.length = length
    rng = SeededGenerator(seed: seed)
  }

  public var observationSpace: Space { .box(low: [0, 0, -1], high: [1, 1, 1]) }
  public var actionSpace: Space { .discrete(2) }

  public mutating func reset(seed: UInt64?, observation: UnsafeMutablePointer<Float>) {
    if let seed { rng = SeededGenerator(seed: seed) }
    context = Int(rng.next() >> 63)
    t = 0
    write(observation)
  }

  public mutating func step(_ action: Int, observation: UnsafeMutablePointer<Float>) -> StepOutcome {
    let last = t == length - 1
    t += 1
    write(observation)
    guard last else { return StepOutcome(reward: 0, terminated: false, truncated: false) }
    return StepOutcome(reward: action == context ? 1 : -1, terminated: true, truncated: false)
  }

  private func write(_ o: UnsafeMutablePointer<Float>) {
    o[0] = 1 - Float(min(t, length)) / Float(length)
    o[1] = t == length - 1 ? 1 : 0
    o[2] = t == 0 ? (context == 1 ? 1 : -1) : 0
  }
}
