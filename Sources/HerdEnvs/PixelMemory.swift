import HerdMath

/// bsuite's memory task drawn in pixels: a 16 x 16 grey image (uint8 values,
/// shape [16, 16, 1]) where the answer is visible only in the pixels, and only on
/// the first step.
///
/// - Step 0 shows the cue: a 4 x 4 white square (255) at a random place in the
///   left half (context 0) or the right half (context 1) of the top 12 rows.
/// - Every step shows a grey distractor square (96) at a random place in those
///   rows, so the cue is found by its brightness, not by there being a square.
/// - The bottom row is a clock: `16 t / length` pixels lit grey (128) at step t,
///   and the whole row white on the last step, when the answer is due.
///
/// Actions 0 and 1 answer left and right. The action on the last step is the
/// answer: reward +1 when it names the cue's side, -1 otherwise, and the episode
/// terminates; every other reward is 0. A memoryless policy scores 0 on average
/// when `length` > 1; with `length` 1 the cue and the question share one frame (a
/// test of the pixels alone).
public struct PixelMemory: Environment, Sendable {
  /// Tuned keys as MemoryChain's (orthogonal initialisation included), with a
  /// small encoder for the 16x16 frame and fragments of one episode.
  public static let registration = EnvironmentRegistration(
    id: "PixelMemory-v0", summary: "remember which side a cue appeared on, from 16x16 uint8 pixels",
    options: ["length": 10],
    trainingDefaults:
      #"{"optimizer": "adam", "lr": 0.001, "rnn_type": "gru", "conv_filters": [[8, 4, 2], [16, 3, 2]], "conv_fc_hiddens": [64], "num_envs_per_worker": 16, "max_seq_len": 10, "train_batch_size": 320, "weight_init": "orthogonal"}"#
  ) { PixelMemory(length: max(1, $0["length"] ?? 10)) }

  /// Image side.
  public static let size = 16
  /// Steps per episode (at least 1).
  public let length: Int
  /// This episode's context: 0 (cue on the left) or 1 (right).
  public private(set) var context = 0
  private var t = 0
  private var rng: SeededGenerator

  /// Episodes of `length` steps whose cues are drawn from `seed`.
  public init(length: Int, seed: UInt64 = 0) {
    precondition(length >= 1, "PixelMemory length \(length)")
    self.length = length
    rng = SeededGenerator(seed: seed)
  }

  public var observationSpace: Space {
    let n = Self.size * Self.size
    return .box(
      shape: [Self.size, Self.size, 1], dtype: "uint8", low: [Float](repeating: 0, count: n),
      high: [Float](repeating: 255, count: n))
  }
  public var actionSpace: Space { .discrete(2) }

  public mutating func reset(seed: UInt64?, observation: UnsafeMutablePointer<Float>) {
    if let seed { rng = SeededGenerator(seed: seed) }
    context = Int(rng.next() >> 63)
    t = 0
    draw(observation)
  }

  public mutating func step(_ action: Int, observation: UnsafeMutablePointer<Float>) -> StepOutcome {
    let last = t == length - 1
    t += 1
    draw(observation)
    guard last else { return StepOutcome(reward: 0, terminated: false, truncated: false) }
    return StepOutcome(reward: action == context ? 1 : -1, terminated: true, truncated: false)
  }

  private mutating func uniform(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }

  private func square(_ o: UnsafeMutablePointer<Float>, row: Int, col: Int, value: Float) {
    for y in row..<(row + 4) {
      for x in col..<(col + 4) { o[y * Self.size + x] = max(o[y * Self.size + x], value) }
    }
  }

  private mutating func draw(_ o: UnsafeMutablePointer<Float>) {
    let s = Self.size
    o.update(repeating: 0, count: s * s)
    // A distractor anywhere in the top 12 rows (before the cue: the cue stays white).
    square(o, row: uniform(9), col: uniform(s - 3), value: 96)
    if t == 0 { square(o, row: uniform(9), col: context * (s / 2) + uniform(s / 2 - 3), value: 255) }
    let clock = t >= length - 1 ? s : s * t / length
    for x in 0..<clock { o[(s - 1) * s + x] = t >= length - 1 ? 255 : 128 }
  }
}
