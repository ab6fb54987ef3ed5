import HerdEnvs
import HerdMath
import HerdTestSupport
import Testing

@Suite struct CartPoleTests {
  /// Herd's CartPole replays Gymnasium's trajectories from the same initial states.
  @Test func agreesWithGymnasium() throws {
    let f = try Fixture("cartpole")
    guard let episodes = f.object["episodes"] as? [[String: Any]] else { throw FixtureError.missing("episodes") }
    #expect(episodes.count == 10)
    var truncations = 0
    for episode in episodes {
      // Hex floats: exact (Foundation's JSON parser can be 1 ulp off, which grows).
      let s = try #require(episode["initial_state"] as? [String]).compactMap(Double.init)
      try #require(s.count == 4)
      let steps = try #require(episode["steps"] as? [[String: Any]])
      var env = CartPole()
      var obs = [Float](repeating: 0, count: 4)
      obs.withMutablePointer { env.start(from: (s[0], s[1], s[2], s[3]), observation: $0) }
      for (t, step) in steps.enumerated() {
        let action = try #require(step["action"] as? Int)
        let expected = try #require(step["obs"] as? [Double]).map(Float.init)
        let outcome = obs.withMutablePointer { env.step(action, observation: $0) }
        let r = closeness(obs, expected, rtol: 1e-5, atol: 1e-6)
        #expect(r.ok, "seed \(episode["seed"] ?? "?") step \(t): \(r)")
        #expect(outcome.reward == Float(try #require(step["reward"] as? Double)))
        #expect(outcome.terminated == (step["terminated"] as? Bool), "terminated at step \(t)")
        #expect(outcome.truncated == (step["truncated"] as? Bool), "truncated at step \(t)")
        if outcome.truncated { truncations += 1 }
      }
    }
    #expect(truncations == 2, "the fixture covers the 500-step time limit")
  }

  @Test func resetIsSeededAndSmall() {
    var a = CartPole()
    var b = CartPole()
    let oa = a.reset(seed: 42)
    #expect(oa == b.reset(seed: 42))
    #expect(oa != b.reset(seed: 43))
    #expect(oa.allSatisfy { abs($0) <= 0.05 })
    #expect(a.observationSpace.flatSize == 4 && a.actionSpace == .discrete(2))
  }

  @Test func statelessCartPoleShowsPositionAndAngleOnly() {
    var full = CartPole()
    var stateless = StatelessCartPole()
    let o = full.reset(seed: 7)
    let s = stateless.reset(seed: 7)
    #expect(s == [o[0], o[2]])
    for action in [1, 1, 0, 1, 0, 0, 1] {
      let (fo, fout) = full.step(action)
      let (so, sout) = stateless.step(action)
      #expect(so == [fo[0], fo[2]])
      #expect(fout == sout)
    }
    #expect(stateless.observationSpace.flatSize == 2)
  }
}

@Suite struct MemoryChainTests {
  @Test(arguments: [1, 2, 10, 30])
  func contextFirstQueryLastRewardForTheRightAnswer(length: Int) {
    for seed in UInt64(0)..<20 {
      for answerRight in [true, false] {
        var env = MemoryChain(length: length)
        let first = env.reset(seed: seed)
        #expect(first[0] == 1)
        #expect(abs(first[2]) == 1, "context shown on the first step")
        #expect(first[1] == (length == 1 ? 1 : 0))
        let context = first[2] > 0 ? 1 : 0
        var total: Float = 0
        for t in 0..<length {
          let action = t == length - 1 ? (answerRight ? context : 1 - context) : Int(seed % 2)
          let (obs, out) = env.step(action)
          total += out.reward
          #expect(out.terminated == (t == length - 1))
          #expect(!out.truncated)
          if t < length - 1 {
            #expect(out.reward == 0)
            #expect(obs[2] == 0, "context hidden after the first step")
            #expect(obs[1] == (t + 1 == length - 1 ? 1 : 0), "query flag on the last step only")
          }
        }
        #expect(total == (answerRight ? 1 : -1))
      }
    }
  }

  @Test func contextsAreBalanced() {
    var env = MemoryChain(length: 3, seed: 5)
    var plus = 0
    for _ in 0..<2000 where env.reset(seed: nil)[2] > 0 { plus += 1 }
    #expect(plus > 900 && plus < 1100)
  }
}

@Suite struct VectorEnvironmentTests {
  @Test func copiesAreSeededPerIndexAndResetAutomatically() {
    let venv = VectorEnvironment(count: 3, seed: 10) { _ in MemoryChain(length: 2) }
    venv.reset()
    var single = MemoryChain(length: 2)
    #expect(Array(venv.observations[3..<6]) == single.reset(seed: 11))
    let actions: [Int32] = [0, 1, 0]
    actions.withUnsafeBufferPointer { venv.step($0.baseAddress!) }
    #expect(venv.outcomes.allSatisfy { !$0.done })
    actions.withUnsafeBufferPointer { venv.step($0.baseAddress!) }
    #expect(venv.outcomes.allSatisfy { $0.terminated })
    // The final observation of the ended episode, and a fresh first observation.
    for i in 0..<3 {
      #expect(venv.finalObservations[i * 3] == 0, "time remaining 0 at the end")
      #expect(venv.observations[i * 3] == 1, "time remaining 1 after the reset")
      #expect(abs(venv.observations[i * 3 + 2]) == 1)
    }
  }

  @Test func truncationKeepsTheFinalObservation() {
    let venv = VectorEnvironment(count: 2, seed: 3) { _ in CartPole(maxEpisodeSteps: 5) }
    venv.reset()
    let actions: [Int32] = [0, 1]
    var last = venv.observations
    for t in 0..<5 {
      actions.withUnsafeBufferPointer { venv.step($0.baseAddress!) }
      if t < 4 { last = venv.observations }
    }
    #expect(venv.outcomes.allSatisfy { $0.truncated })
    #expect(venv.finalObservations != last, "final observation is the step after the previous one")
    #expect(venv.observations.allSatisfy { abs($0) <= 0.05 }, "new episodes started")
  }
}

@Suite struct PendulumTests {
  /// Herd's Pendulum replays Gymnasium's trajectories from the same initial states,
  /// torques beyond the bounds included (the environment clips them as Gymnasium's does).
  @Test func agreesWithGymnasium() throws {
    let f = try Fixture("pendulum")
    guard let episodes = f.object["episodes"] as? [[String: Any]] else { throw FixtureError.missing("episodes") }
    #expect(episodes.count == 4)
    var outside = 0
    for episode in episodes {
      let s = try #require(episode["initial_state"] as? [String]).compactMap(Double.init)
      try #require(s.count == 2)
      let steps = try #require(episode["steps"] as? [[String: Any]])
      #expect(steps.count == 200)
      var env = Pendulum()
      env.set(theta: s[0], thetaDot: s[1])
      var obs = [Float](repeating: 0, count: 3)
      for (t, step) in steps.enumerated() {
        var u = [Float(try #require(step["action"] as? Double))]
        if abs(u[0]) > 2 { outside += 1 }
        let outcome = obs.withMutablePointer { o in u.withPointer { env.step(continuous: $0, observation: o) } }
        let expected = try #require(step["obs"] as? [Double]).map(Float.init)
        let r = closeness(obs, expected, rtol: 1e-5, atol: 1e-5)
        #expect(r.ok, "seed \(episode["seed"] ?? "?") step \(t): \(r)")
        let reward = try #require(step["reward"] as? Double)
        #expect(abs(Double(outcome.reward) - reward) <= 1e-5 * max(1, abs(reward)), "reward at step \(t)")
        #expect(!outcome.terminated)
        #expect(outcome.truncated == (step["truncated"] as? Bool), "truncated at step \(t)")
        u[0] = 0
      }
    }
    #expect(outside > 100, "the fixture covers torques beyond the bounds")
  }

  /// StatelessPendulum shows cos and sin of the angle only, with the same dynamics.
  @Test func statelessPendulumHidesTheVelocity() {
    var full = Pendulum()
    var stateless = Pendulum(hideVelocity: true)
    let a = full.reset(seed: 5)
    let b = stateless.reset(seed: 5)
    #expect(a.count == 3 && b.count == 2 && Array(a.prefix(2)) == b)
    #expect(abs(a[2]) <= 1 && a[2] != 0)
    for _ in 0..<10 {
      var o3 = [Float](repeating: 0, count: 3)
      var o2 = [Float](repeating: 0, count: 2)
      let u: [Float] = [1.5]
      let r3 = o3.withMutablePointer { o in u.withPointer { full.step(continuous: $0, observation: o) } }
      let r2 = o2.withMutablePointer { o in u.withPointer { stateless.step(continuous: $0, observation: o) } }
      #expect(r3 == r2 && Array(o3.prefix(2)) == o2)
    }
    #expect(try! stateless.actionSpace.continuousAction()! == ([-2], [2]))
    #expect(Environments.named("StatelessPendulum-v1") != nil && Environments.named("Pendulum-v1") != nil)
  }

  /// Box action spaces: bounds per element, and the spaces Herd refuses.
  @Test func boxActionSpacesAreCheckedAndExpanded() throws {
    let box = Space.box(shape: [2, 2], dtype: "float32", low: [-1], high: [3])
    let b = try #require(try box.continuousAction())
    #expect(b.low == [-1, -1, -1, -1] && b.high == [3, 3, 3, 3])
    #expect(try Space.discrete(3).continuousAction() == nil)
    #expect(throws: SpaceError.self) { try Space.box(shape: [2], dtype: "int64", low: [0], high: [3]).checkAction() }
    #expect(throws: SpaceError.self) { try Space.box(shape: [2], dtype: "float32", low: [1, 0], high: [0, 1]).checkAction() }
    #expect(throws: SpaceError.self) { try Space.box(shape: [3], dtype: "float32", low: [0, 0], high: [1, 1]).checkAction() }
    #expect(throws: SpaceError.self) { try Space.box(shape: [0], dtype: "float32", low: [], high: []).checkAction() }
    try Space.discrete(2).checkAction()
    // A float Box has no categorical heads, and says so rather than calling itself unsupported.
    #expect {
      try box.actionHeads()
    } throws: { error in
      "\(error)".contains("is continuous: it has no categorical heads") && !"\(error)".contains("not supported")
    }
  }
}
