import HerdMath

#if canImport(Glibc)
  import Glibc
#endif

/// CartPole-v1 with Gymnasium's dynamics (Barto, Sutton & Anderson 1983).
///
/// State `[x, x_dot, theta, theta_dot]` in Double, integrated with explicit Euler at
/// tau = 0.02 s; gravity 9.8, cart mass 1.0, pole mass 0.1, half-length 0.5, force
/// 10. Action 0 pushes left, 1 right. Reward 1 every step (including the last).
/// Terminated when |x| > 2.4 or |theta| > 12 degrees; truncated after 500 steps
/// (Gymnasium's TimeLimit for v1). Reset draws each state variable from
/// U(-0.05, 0.05). Observations are the state as Float32.
public struct CartPole: Environment, Sendable {
  public static let registration = EnvironmentRegistration(
    id: "CartPole-v1", summary: "balance a pole on a cart (Gymnasium's dynamics, 500-step limit)",
    options: ["max_episode_steps": 500],
    trainingDefaults: #"{"optimizer": "adam", "lr": 0.002, "observation_filter": "MeanStdFilter", "lstm_use_prev_action": true}"#
  ) { CartPole(maxEpisodeSteps: $0["max_episode_steps"] ?? 500) }

  /// Gymnasium's constants.
  public static let gravity = 9.8
  public static let massCart = 1.0
  public static let massPole = 0.1
  public static let totalMass = massPole + massCart
  public static let length = 0.5
  public static let poleMassLength = massPole * length
  public static let forceMag = 10.0
  public static let tau = 0.02
  public static let thetaThreshold = 12 * 2 * Double.pi / 360
  public static let xThreshold = 2.4

  /// Steps after which an episode is truncated.
  public let maxEpisodeSteps: Int
  /// The physical state `[x, x_dot, theta, theta_dot]`.
  public private(set) var state: (Double, Double, Double, Double) = (0, 0, 0, 0)
  /// Steps taken in this episode.
  public private(set) var elapsedSteps = 0
  private var rng: SeededGenerator

  /// A CartPole whose episodes are drawn from `seed` (reset's seed overrides it).
  public init(seed: UInt64 = 0, maxEpisodeSteps: Int = 500) {
    self.maxEpisodeSteps = maxEpisodeSteps
    rng = SeededGenerator(seed: seed)
  }

  public var observationSpace: Space {
    let high: [Float] = [Float(Self.xThreshold * 2), .infinity, Float(Self.thetaThreshold * 2), .infinity]
    return .box(low: high.map { -$0 }, high: high)
  }

  public var actionSpace: Space { .discrete(2) }

  public mutating func reset(seed: UInt64?, observation: UnsafeMutablePointer<Float>) {
    if let seed { rng = SeededGenerator(seed: seed) }
    func u() -> Double { -0.05 + 0.1 * Double(rng.next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
    start(from: (u(), u(), u(), u()), observation: observation)
  }

  /// Starts an episode from a given state (to replay Gymnasium's trajectories).
  public mutating func start(from s: (Double, Double, Double, Double), observation: UnsafeMutablePointer<Float>) {
    state = s
    elapsedSteps = 0
    write(observation)
  }

  public mutating func step(_ action: Int, observation: UnsafeMutablePointer<Float>) -> StepOutcome {
    var (x, xDot, theta, thetaDot) = state
    let force = action == 1 ? Self.forceMag : -Self.forceMag
    let cosTheta = cos(theta)
    let sinTheta = sin(theta)
    // Gymnasium's association exactly (np.square(v) is v*v, applied first): one
    // rounding apart per step grows visibly over a 500-step episode.
    let temp = (force + Self.poleMassLength * (thetaDot * thetaDot) * sinTheta) / Self.totalMass
    let thetaAcc =
      (Self.gravity * sinTheta - cosTheta * temp)
      / (Self.length * (4.0 / 3.0 - Self.massPole * (cosTheta * cosTheta) / Self.totalMass))
    let xAcc = temp - Self.poleMassLength * thetaAcc * cosTheta / Self.totalMass
    x += Self.tau * xDot
    xDot += Self.tau * xAcc
    theta += Self.tau * thetaDot
    thetaDot += Self.tau * thetaAcc
    state = (x, xDot, theta, thetaDot)
    elapsedSteps += 1
    write(observation)
    let terminated = x < -Self.xThreshold || x > Self.xThreshold || theta < -Self.thetaThreshold || theta > Self.thetaThreshold
    return StepOutcome(reward: 1, terminated: terminated, truncated: !terminated && elapsedSteps >= maxEpisodeSteps)
  }

  private func write(_ o: UnsafeMutablePointer<Float>) {
    o[0] = Float(state.0)
    o[1] = Float(state.1)
    o[2] = Float(state.2)
    o[3] = Float(state.3)
  }
}

/// CartPole-v1 without the velocities: the observation is `[x, theta]`, as RLlib's
/// `StatelessCartPole` example defines it. A policy must infer the velocities from
/// the history, so without memory (or frame stacking) it cannot be solved.
public struct StatelessCartPole: Environment, Sendable {
  public static let registration = EnvironmentRegistration(
    id: "StatelessCartPole-v1", summary: "CartPole seeing only positions: needs memory",
    options: ["max_episode_steps": 500],
    trainingDefaults: #"{"optimizer": "adam", "lr": 0.002, "observation_filter": "MeanStdFilter", "lstm_use_prev_action": true}"#
  ) { StatelessCartPole(maxEpisodeSteps: $0["max_episode_steps"] ?? 500) }

  /// The full CartPole underneath.
  public private(set) var inner: CartPole
  private var full = (Float(0), Float(0), Float(0), Float(0))

  /// A stateless CartPole whose episodes are drawn from `seed`.
  public init(seed: UInt64 = 0, maxEpisodeSteps: Int = 500) {
    inner = CartPole(seed: seed, maxEpisodeSteps: maxEpisodeSteps)
  }

  public var observationSpace: Space {
    let high: [Float] = [Float(CartPole.xThreshold * 2), Float(CartPole.thetaThreshold * 2)]
    return .box(low: high.map { -$0 }, high: high)
  }

  public var actionSpace: Space { .discrete(2) }

  public mutating func reset(seed: UInt64?, observation: UnsafeMutablePointer<Float>) {
    withUnsafeMutablePointer(to: &full) { p in
      p.withMemoryRebound(to: Float.self, capacity: 4) { inner.reset(seed: seed, observation: $0) }
    }
    observation[0] = full.0
    observation[1] = full.2
  }

  public mutating func step(_ action: Int, observation: UnsafeMutablePointer<Float>) -> StepOutcome {
    let outcome = withUnsafeMutablePointer(to: &full) { p in
      p.withMemoryRebound(to: Float.self, capacity: 4) { inner.step(action, observation: $0) }
    }
    observation[0] = full.0
    observation[1] = full.2
    return outcome
  }
}
