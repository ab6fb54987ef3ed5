import Foundation
import HerdMath

#if canImport(Glibc)
  import Glibc
#endif

/// Pendulum-v1 with Gymnasium's dynamics: swing a pendulum up and hold it upright
/// with a bounded torque.
///
/// State `(theta, theta_dot)` in Double, theta 0 upright. One step of dt = 0.05 s:
/// `theta_dot += (3 g / (2 l) sin theta + 3 / (m l^2) u) dt`, clipped to
/// [-8, 8], then `theta += theta_dot dt`, with g = 10, m = 1, l = 1 and the torque
/// u clipped to [-2, 2]. The reward, from the state before the step, is
/// `-(normalize(theta)^2 + 0.1 theta_dot^2 + 0.001 u^2)` (0 is best, about -16.3
/// worst). There is no terminal state; an episode is truncated after 200 steps.
/// Reset draws theta from U(-pi, pi) and theta_dot from U(-1, 1). Observations are
/// `[cos theta, sin theta, theta_dot]`; with `hideVelocity` (StatelessPendulum) only
/// `[cos theta, sin theta]`, so a policy must infer the velocity from the past.
public struct Pendulum: Environment, Sendable {
  public static let registration = EnvironmentRegistration(
    id: "Pendulum-v1",
    summary: "swing up and balance a pendulum, continuous torque (Gymnasium's dynamics, 200-step limit)",
    options: ["max_episode_steps": 200],
    trainingDefaults: pendulumDefaults
  ) { Pendulum(maxEpisodeSteps: $0["max_episode_steps"] ?? 200) }

  /// Config keys tuned for the Pendulums (README, "Continuous actions"). The log
  /// std is an output of the head per state (`free_log_std` false): in seeds 1-3 it
  /// reached -200 in 114-195k steps where the learned vector took 249-475k or more,
  /// and it took StatelessPendulum's final policies from about -330 to about -230.
  static let pendulumDefaults =
    #"{"use_lstm": false, "fcnet_hiddens": [64, 64], "observation_filter": "NoFilter", "lstm_use_prev_action": false, "num_envs_per_worker": 16, "gamma": 0.9, "vtrace_lambda": 0.95, "optimizer": "adam", "lr": 0.001, "lr_decay_env_steps": 500000, "vf_loss_coeff": 0.5, "vf_share_layers": false, "free_log_std": false, "grad_clip": 0.5, "entropy_coeff": 0, "train_batch_size": 1024, "minibatch_size": 256, "max_seq_len": 32, "num_epochs": 20, "clip_param": 0.2, "normalize_advantages": true, "learner_queue_size": 4, "max_requests_in_flight_per_worker": 1}"#

  public static let maxSpeed = 8.0
  public static let maxTorque: Float = 2
  public static let dt = 0.05
  public static let g = 10.0
  public static let m = 1.0
  public static let l = 1.0

  /// Steps after which an episode is truncated.
  public let maxEpisodeSteps: Int
  /// Observe only `[cos theta, sin theta]`.
  public let hideVelocity: Bool
  /// The state `(theta, theta_dot)`.
  public private(set) var state: (Double, Double) = (0, 0)
  /// Steps taken in this episode.
  public private(set) var elapsedSteps = 0
  private var rng: SeededGenerator

  /// A pendulum whose episodes are drawn from `seed` (reset's seed overrides it).
  public init(seed: UInt64 = 0, maxEpisodeSteps: Int = 200, hideVelocity: Bool = false) {
    self.maxEpisodeSteps = maxEpisodeSteps
    self.hideVelocity = hideVelocity
    rng = SeededGenerator(seed: seed)
  }

  public var observationSpace: Space {
    hideVelocity ? .box(low: [-1, -1], high: [1, 1]) : .box(low: [-1, -1, -8], high: [1, 1, 8])
  }

  public var actionSpace: Space { .box(shape: [1], dtype: "float32", low: [-Self.maxTorque], high: [Self.maxTorque]) }

  public mutating func reset(seed: UInt64?, observation: UnsafeMutablePointer<Float>) {
    if let seed { rng = SeededGenerator(seed: seed) }
    func u(_ a: Double) -> Double { a * (2 * Double(rng.next() >> 11) * (1.0 / 9_007_199_254_740_992.0) - 1) }
    state = (u(Double.pi), u(1))
    elapsedSteps = 0
    observe(observation)
  }

  /// Sets the state (tests).
  public mutating func set(theta: Double, thetaDot: Double) {
    state = (theta, thetaDot)
    elapsedSteps = 0
  }

  public mutating func step(continuous action: UnsafePointer<Float>, observation: UnsafeMutablePointer<Float>)
    -> StepOutcome
  {
    let u = Double(min(max(action[0], -Self.maxTorque), Self.maxTorque))
    let (th, thdot) = state
    let angle = Self.normalize(th)
    let cost = angle * angle + 0.1 * thdot * thdot + 0.001 * u * u
    var newThdot = thdot + (3 * Self.g / (2 * Self.l) * sin(th) + 3.0 / (Self.m * Self.l * Self.l) * u) * Self.dt
    newThdot = min(max(newThdot, -Self.maxSpeed), Self.maxSpeed)
    state = (th + newThdot * Self.dt, newThdot)
    elapsedSteps += 1
    observe(observation)
    return StepOutcome(reward: Float(-cost), terminated: false, truncated: elapsedSteps >= maxEpisodeSteps)
  }

  /// theta in [-pi, pi).
  public static func normalize(_ x: Double) -> Double {
    var r = fmod(x + Double.pi, 2 * Double.pi)
    if r < 0 { r += 2 * Double.pi }
    return r - Double.pi
  }

  private func observe(_ o: UnsafeMutablePointer<Float>) {
    o[0] = Float(cos(state.0))
    o[1] = Float(sin(state.0))
    if !hideVelocity { o[2] = Float(state.1) }
  }
}

/// Pendulum-v1 without the angular velocity in its observations (`[cos theta,
/// sin theta]`): the memory test for continuous control. A feed-forward policy sees
/// where the pendulum is but not where it is going. Its defaults are Pendulum's with
/// an LSTM(64), the learning rate decaying over 1M steps instead of 500k (the LSTM
/// was still improving at 500k when the rate reached 0), and 10 passes over each
/// batch instead of 20 (better best and final returns in seeds 1-3).
public enum StatelessPendulum {
  public static let registration = EnvironmentRegistration(
    id: "StatelessPendulum-v1",
    summary: "Pendulum-v1 observing only cos and sin of the angle: needs memory (200-step limit)",
    options: ["max_episode_steps": 200],
    trainingDefaults: Pendulum.pendulumDefaults.replacingOccurrences(
      of: #""use_lstm": false"#, with: #""use_lstm": true, "lstm_cell_size": 64"#
    ).replacingOccurrences(of: #""lr_decay_env_steps": 500000"#, with: #""lr_decay_env_steps": 1000000"#)
      .replacingOccurrences(of: #""num_epochs": 20"#, with: #""num_epochs": 10"#)
  ) { Pendulum(maxEpisodeSteps: $0["max_episode_steps"] ?? 200, hideVelocity: true) }
}
