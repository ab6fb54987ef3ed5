import Foundation
import HerdEnvs
import HerdMath
import HerdNN
@testable import HerdRL
import HerdTestSupport
import Testing

/// Games of `agents` rows each (consecutive rows, a seat each), in two groups of
/// whole games, as a PettingZoo environment's host lays them out. Every row acts at
/// every step; a row's reward is the action it took; all rows of game g end
/// together (terminated) after 3 + (g + serial) % 4 steps. The observation is
/// `[seat / agents, sin(t + g)]`, so a recurrent state has something to carry.
/// Logs every action taken by (game, serial, seat).
final class SeatedGames: VectorEnv {
  let spec: EnvSpec
  let count: Int
  let agentsPerGame: Int
  var observationSize: Int { 2 }
  var actionDims: Int { 1 }
  let groups: [Range<Int>]
  private(set) var observations: [Float]
  private(set) var finalObservations: [Float]
  private(set) var outcomes: [StepOutcome]
  var faults: EnvFaults { EnvFaults() }
  /// Steps into the game and games finished, per game.
  private var t: [Int]
  private(set) var serial: [Int]
  struct Move: Hashable {
    var game: Int
    var serial: Int
    var seat: Int
    var action: Int
  }
  private(set) var moves: [Move] = []

  init(games: Int, agents: Int) {
    precondition(games >= 2)
    agentsPerGame = agents
    count = games * agents
    let half = games / 2 * agents
    groups = [0..<half, half..<count]
    spec = EnvSpec(
      id: "pz:seated", config: "{}", observation: .box(low: [0, -1], high: [1, 1]), action: .discrete(4))
    observations = [Float](repeating: 0, count: count * 2)
    finalObservations = observations
    outcomes = [StepOutcome](repeating: StepOutcome(reward: 0, terminated: false, truncated: false), count: count)
    t = [Int](repeating: 0, count: games)
    serial = t
  }

  private func observe(_ g: Int) {
    for s in 0..<agentsPerGame {
      let i = g * agentsPerGame + s
      observations[i * 2] = Float(s) / Float(agentsPerGame)
      observations[i * 2 + 1] = sin(Float(t[g] + g))
    }
  }

  func reset() { for g in 0..<(count / agentsPerGame) { observe(g) } }

  func beginStep(group: Int, actions: UnsafePointer<Int32>) {
    var g = groups[group].lowerBound / agentsPerGame
    while g * agentsPerGame < groups[group].upperBound {
      t[g] += 1
      let over = t[g] == 3 + (g + serial[g]) % 4
      for s in 0..<agentsPerGame {
        let i = g * agentsPerGame + s
        let a = Int(actions[i])
        moves.append(Move(game: g, serial: serial[g], seat: s, action: a))
        outcomes[i] = StepOutcome(reward: Float(a), terminated: over, truncated: false)
      }
      observe(g)
      if over {
        for i in (g * agentsPerGame)..<((g + 1) * agentsPerGame) {
          finalObservations[i * 2] = observations[i * 2]
          finalObservations[i * 2 + 1] = observations[i * 2 + 1]
        }
        t[g] = 0
        serial[g] += 1
        observe(g)
      }
      g += 1
    }
  }

  func finishStep(group: Int) {}
  func close() {}
}

@Suite struct OpponentPoolTests {
  /// A small recurrent policy over the seated games.
  static func config(core: String = "lstm", pool: Int = 0) -> TrainingConfig {
    var config = smallConfig("CartPole-v1")
    config.env = "pz:seated"
    config.use_lstm = core != "none"
    config.rnn_type = core == "gru" ? .gru : .lstm
    config.lstm_cell_size = 12
    config.lstm_use_prev_action = true
    config.lstm_use_prev_reward = true
    config.max_seq_len = 4
    config.self_play_pool_size = pool
    config.self_play_snapshot_interval = 10
    config.self_play_past_fraction = 1
    return config
  }

  /// Default-initialised weights of `net` whose policy takes `action` (its bias
  /// raised far above the rest, so the greedy action is it whatever the state).
  static func weights(_ net: PolicyNetwork, seed: UInt64, action: Int) throws -> [Float] {
    var config = config()
    config.seed = seed
    let p = Learner(config: config, network: net).parameters
    let bias = try #require(net.layout.entry(named: "pi.bias"))
    p.values[bias.slot.offset + action] += 40
    return p.flatValues
  }

  /// Snapshots at the first version at or after each multiple of the interval,
  /// the newest `size` kept; draws as often as the fraction says, uniformly.
  @Test func thePoolKeepsTheNewestSnapshotPerInterval() throws {
    let net = PolicyNetwork(config: Self.config(), observationSize: 2, actionCount: 4)
    let pool = OpponentPool(settings: .init(size: 3, interval: 10, fraction: 0.3), layout: net.layout)
    var rng = SeededGenerator(seed: 5)
    #expect(pool.draw(rng: &rng) == nil)  // nothing kept yet
    for v in [0, 3, 10, 11, 19, 20, 45, 49] {
      try pool.offer([Float](repeating: Float(v), count: net.layout.count), version: v)
    }
    #expect(pool.snapshots.map(\.version) == [10, 20, 45])
    #expect(pool.snapshots.allSatisfy { $0.parameters.values[0] == Float($0.version) })
    var drawn: [Int: Int] = [:]
    var none = 0
    for _ in 0..<6000 {
      if let s = pool.draw(rng: &rng) { drawn[s.version, default: 0] += 1 } else { none += 1 }
    }
    #expect((3900...4500).contains(none), "\(none) of 6000 draws kept the current policy, not about 70%")
    #expect(drawn.keys.sorted() == [10, 20, 45])
    #expect(drawn.values.allSatisfy { (450...750).contains($0) }, "\(drawn)")
    let never = OpponentPool(settings: .init(size: 2, interval: 1, fraction: 0), layout: net.layout)
    try never.offer([Float](repeating: 0, count: net.layout.count), version: 0)
    #expect((0..<100).allSatisfy { _ in never.draw(rng: &rng) == nil })
  }

  /// With a pool, a past policy plays every seat of a game but one; those seats
  /// send no fragment and no episode, carry their own recurrent state (the learner
  /// still recomputes every recorded logit from the fragments alone), and the
  /// seat's episode reports its return against the past.
  @Test(arguments: ["lstm", "gru", "none"])
  func pastPoliciesPlayEverySeatButOne(core: String) throws {
    let config = Self.config(core: core, pool: 2)
    let envs = SeatedGames(games: 6, agents: 3)
    let net = try PolicyNetwork(config: config, spec: envs.spec)
    let worker = try RolloutWorker(config: config, network: net, envs: envs, workerID: 0, seed: 4, selfPlay: true)
    worker.greedy = true
    let past = try Self.weights(net, seed: 1, action: 0)
    let current = try Self.weights(net, seed: 2, action: 1)
    try worker.setWeights(past, version: 0)  // kept: the first snapshot
    try worker.setWeights(current, version: 5)  // not due until 10
    #expect(worker.pool?.snapshots.map(\.version) == [0])
    var fragments: [Fragment] = []
    var episodes: [EpisodeRecord] = []
    for _ in 0..<60 { try worker.step(emit: { fragments.append($0) }, episode: { episodes.append($0) }) }

    // Serial 0 was played by the current policy on every seat (the pool was empty
    // when it started); every later game by the past one on all seats but one.
    var byGame: [[Int]: [Int: Set<Int>]] = [:]
    for m in envs.moves { byGame[[m.game, m.serial], default: [:]][m.seat, default: []].insert(m.action) }
    var learnerSeats = [Int](repeating: 0, count: 3)
    for (key, seats) in byGame {
      if key[1] == 0 {
        #expect(seats.values.allSatisfy { $0 == [1] }, "game \(key): \(seats)")
      } else {
        let mine = seats.filter { $0.value == [1] }.map(\.key)
        #expect(mine.count == 1 && seats.filter { $0.value == [0] }.count == 2, "game \(key): \(seats)")
        if let s = mine.first { learnerSeats[s] += 1 }
      }
    }
    #expect(learnerSeats.allSatisfy { $0 >= 3 }, "the learner's seat is drawn among all: \(learnerSeats)")
    // Fragments and episodes come from the current policy's seats alone.
    #expect(!fragments.isEmpty && fragments.allSatisfy { $0.actions.allSatisfy { $0 == 1 } })
    #expect(episodes.allSatisfy { $0.envReturn == Float($0.length) })
    let firstRound = episodes.filter { $0.info.count == 1 && $0.info[0].isNaN }
    let againstPast = episodes.filter { $0.info.count == 1 && $0.info[0] == $0.envReturn }
    #expect(firstRound.count == 18 && againstPast.count == episodes.count - 18, "\(episodes.map(\.info))")
    #expect(againstPast.count >= 30)
    // Every step is counted once, the past seats' apart (the last step of each
    // group is under way, not yet recorded).
    let pastMoves = envs.moves.filter { byGame[[$0.game, $0.serial]]![$0.seat] == [0] }.count
    #expect(worker.envSteps + worker.pastSteps == envs.moves.count - envs.count)
    #expect((pastMoves - envs.count...pastMoves).contains(worker.pastSteps), "\(worker.pastSteps) of \(pastMoves)")
    // Recorded logits are the learner's, from each fragment's stored state.
    let p = Parameters(layout: net.layout)
    try p.load(flatValues: current)
    let (recomputed, recorded) = try recomputedAndRecordedLogits(
      net, p, fragments: fragments, maxLength: config.max_seq_len)
    let c = closeness(recomputed, recorded, rtol: 1e-5, atol: 1e-5)
    #expect(c.ok, "\(core): \(c)")
  }

  /// The past seats' actions come from the past weights with their own state: a
  /// run whose past policy is the current one acts, on every row, exactly as a
  /// worker without a pool does.
  @Test func aPastPolicyEqualToTheCurrentOneChangesNothing() throws {
    let config = Self.config(pool: 1)
    let net = try PolicyNetwork(config: config, spec: SeatedGames(games: 4, agents: 2).spec)
    var plain = config
    plain.self_play_pool_size = 0
    var rng = SeededGenerator(seed: 12)
    let w = (0..<net.layout.count).map { _ in rng.nextUnitFloat() * 2 - 1 }
    var runs: [[SeatedGames.Move]] = []
    for (c, selfPlay) in [(config, true), (plain, false)] {
      let envs = SeatedGames(games: 4, agents: 2)
      let worker = try RolloutWorker(config: c, network: net, envs: envs, workerID: 0, seed: 9, selfPlay: selfPlay)
      worker.greedy = true
      try worker.setWeights(w, version: 0)
      for _ in 0..<40 { try worker.step(emit: { _ in }, episode: { _ in }) }
      #expect(selfPlay ? worker.pastSteps > 100 : worker.pastSteps == 0)
      runs.append(envs.moves)
    }
    let differ = runs[0].indices.first { $0 >= runs[1].count || runs[0][$0] != runs[1][$0] }
    #expect(runs[0].count == runs[1].count && differ == nil, "moves differ from \(differ ?? -1) on")
    #expect(Set(runs[0].map(\.action)).count > 1, "the policy's actions depend on its inputs")
  }

  /// A fixed opponent of another model plays every seat but one of every game;
  /// the seat left moves on by one each game, starting from seat g in game g.
  @Test func aFixedOpponentOfAnotherModelTakesTurnsOfSeats() throws {
    let config = Self.config()
    let envs = SeatedGames(games: 4, agents: 3)
    let net = try PolicyNetwork(config: config, spec: envs.spec)
    let other = try PolicyNetwork(config: Self.config(core: "gru"), spec: envs.spec)
    #expect(other.layout != net.layout)
    let worker = try RolloutWorker(
      config: config, network: net, envs: envs, workerID: 0, seed: 2,
      opponent: try Self.weights(other, seed: 3, action: 2), opponentNetwork: other)
    worker.greedy = true
    try worker.setWeights(try Self.weights(net, seed: 4, action: 1), version: 7)
    var episodes: [EpisodeRecord] = []
    for _ in 0..<40 { try worker.step(emit: { _ in }, episode: { episodes.append($0) }) }
    var byGame: [[Int]: [Int: Set<Int>]] = [:]
    for m in envs.moves { byGame[[m.game, m.serial], default: [:]][m.seat, default: []].insert(m.action) }
    #expect(byGame.count >= 30)
    for (key, seats) in byGame {
      let mine = (key[0] + key[1]) % 3
      #expect(seats[mine] == [1] && seats.filter { $0.key != mine }.allSatisfy { $0.value == [2] }, "\(key): \(seats)")
    }
    // Only the evaluated seat reports its episode: game g's k-th from seat (g + k) mod 3.
    for g in 0..<4 {
      let seats = episodes.filter { $0.envIndex / 3 == g }.map { $0.envIndex % 3 }
      #expect(seats.count >= 6 && seats.enumerated().allSatisfy { $1 == (g + $0) % 3 }, "game \(g): \(seats)")
    }
    #expect(worker.pool?.snapshots.count == 1 && worker.pool?.snapshots[0].version == 0)  // no snapshot of its own
    // One agent per game leaves no seat to an opponent.
    do {
      _ = try RolloutWorker(
        config: config, network: net, envs: SeatedGames(games: 2, agents: 1), workerID: 0, seed: 2,
        opponent: try Self.weights(net, seed: 3, action: 2))
      Issue.record("an opponent in a one-agent environment")
    } catch let error as ConfigError {
      #expect("\(error)".contains("one agent per game"))
    }
  }
}
