/// Action masking (`action_mask_key`): an environment whose Dict observation has an
/// entry of one 0/1 per logit says, step by step, which actions are allowed.
///
/// The network replaces each masked logit (its entry below 0.5) by ``maskedLogit``
/// after the policy head, in rollout and in training alike, so the softmax gives
/// the action a probability of exactly 0: it is never sampled, never the greedy
/// choice, its log-probability is about -1e9 (finite, so no 0 x inf in an entropy
/// or a KL), and the loss's gradient at it is 0 (every term's is a multiple of
/// its probability or of the one-hot of an action taken), so the head learns
/// nothing from it. A row may mask every action (PettingZoo's turn-based games
/// show the player whose turn it is not a mask of zeros): the worker draws one
/// of its actions uniformly (the game ignores it); the log-softmax of equal
/// logits of -1e9 rounds to 0 at each in float32, so the row adds 0 to the
/// policy loss and the entropy; the loss gives its logits, which are constants, no
/// gradient and leaves it out of those terms' means (it waits:
/// ``Batch/waitingSteps(actionMask:)``), and the backward zeroes the gradient at
/// masked logits again (``zeroGradient``). The worker's behaviour logits are masked the same way, from
/// the same observation the fragment carries, so V-trace's ratios compare like
/// with like.
///
/// The observation filter leaves the entries as they are (the learner pins their
/// mean to 0 and scale to 1), so the mask reads the same 0/1 before and after it,
/// and the policy also sees the mask as an input.
public enum ActionMask {
  /// What a masked logit becomes: finite, far below any logit a head computes.
  public static let maskedLogit: Float = -1e9

  /// Replaces the logits `[rows, A]` whose mask entry (`entries` of each
  /// observation row `[rows, features]`) is below 0.5 by ``maskedLogit``.
  @inlinable
  public static func apply(
    _ logits: UnsafeMutablePointer<Float>, observations: UnsafePointer<Float>, features: Int, entries: Range<Int>,
    rows: Int
  ) {
    set(logits, to: maskedLogit, observations: observations, features: features, entries: entries, rows: rows)
  }

  /// Zeroes the gradient `[rows, A]` at each masked logit. A masked logit is a
  /// constant, so none of the loss's gradient passes through it to the head.
  /// The IMPALA loss's gradient there is already 0: where a row allows some
  /// action because the masked one's probability is, where it allows none (a
  /// turn-based game's player waiting for its turn: every logit masked, each
  /// log-probability rounded to 0) because the loss skips the step; this keeps it
  /// so for any loss.
  @inlinable
  public static func zeroGradient(
    _ gradient: UnsafeMutablePointer<Float>, observations: UnsafePointer<Float>, features: Int, entries: Range<Int>,
    rows: Int
  ) {
    set(gradient, to: 0, observations: observations, features: features, entries: entries, rows: rows)
  }

  /// Sets each entry of `[rows, A]` whose mask entry (`entries` of each
  /// observation row `[rows, features]`) is below 0.5 to `value`.
  @inlinable
  static func set(
    _ values: UnsafeMutablePointer<Float>, to value: Float, observations: UnsafePointer<Float>, features: Int,
    entries: Range<Int>, rows: Int
  ) {
    let a = entries.count
    for r in 0..<rows {
      let mask = observations + (r &* features &+ entries.lowerBound)
      let row = values + r &* a
      for j in 0..<a where !(mask[j] >= 0.5) { row[j] = value }
    }
  }

  /// Sets a filter's mean to 0 and scale to 1 over the mask's entries, so it
  /// passes them unchanged.
  public static func pin(
    mean: UnsafeMutablePointer<Float>, scale: UnsafeMutablePointer<Float>, entries: Range<Int>
  ) {
    for k in entries {
      mean[k] = 0
      scale[k] = 1
    }
  }
}
