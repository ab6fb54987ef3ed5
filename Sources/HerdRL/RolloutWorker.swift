import HerdEnvs
import HerdMath
import HerdNN

/// One finished episode, as a worker reports it.
public struct EpisodeRecord: Sendable, Equatable {
  public var workerID: Int
  public var envReturn: Float
  public var length: Int
  /// The env it ran in, within its worker (not sent over the wire: 0 there).
  public var envIndex: Int
  /// The policy version the worker acted with when the episode ended (over the
  /// wire: the newest version among its batch's fragments); nil when unknown.
  public var policyVersion: Int?
  /// The run's `episode_info_keys`, in order, from the info of the step that ended
  /// the episode (NaN for a key it lacked); empty without them.
  public var info: [Float]

  public init(
    workerID: Int, envReturn: Float, length: Int, envIndex: Int = 0, policyVersion: Int? = nil, info: [Float] = []
  ) {
    self.workerID = workerID
    self.envReturn = envReturn
    self.length = length
    self.envIndex = envIndex
    self.policyVersion = policyVersion
    self.info = info
  }

  // NaN info values (keys an episode lacked) are equal here: records compare by content.
  public static func == (a: EpisodeRecord, b: EpisodeRecord) -> Bool {
    a.workerID == b.workerID && a.envReturn == b.envReturn && a.length == b.length && a.envIndex == b.envIndex
      && a.policyVersion == b.policyVersion && a.info.count == b.info.count
      && zip(a.info, b.info).allSatisfy { $0.bitPattern == $1.bitPattern || $0 == $1 }
  }
}

/// The rollout side: K environments stepped as one batch with a recurrent state
/// per env, recording fragments as it goes (DESIGN.md "Rollout").
///
/// The environments' rows come in groups (one per env host process, one for the
/// built-in environments). For each group, a step is: collect the group's last step
/// and record it -> act (one batched forward for the group's observations with each
/// env's carried state, sample actions) -> start the group's next step. With two
/// groups the policy runs for one while the other's environments step. An env whose
/// episode ended starts the next step from zero state and zero previous
/// action/reward.
public final class RolloutWorker {
  public let network: PolicyNetwork
  public let workerID: Int
  /// Random per run: a restarted worker has a new one.
  public let runID: UInt64
  public let envs: any VectorEnv
  let parameters: Parameters
  /// Policy version of the weights in use.
  public private(set) var policyVersion = 0
  let maxLength: Int
  var rng: SeededGenerator
  let ws = PolicyWorkspace()
  var h: [Float]
  var c: [Float]
  var prevActions: [Int32]
  var prevRewards: [Float]
  /// Each env's last action, packed (``ActionHeads``): what fragments record.
  var actions: [Int32]
  /// The same actions as components `[K, D]`, what the environments take (D > 1 only).
  var envActions: [Int32]
  /// Box actions: each env's last action as sampled `[K, D]` (what fragments
  /// record), and clipped to the space's bounds (what the environments take).
  var actionValues: [Float]
  var clippedActionValues: [Float]
  /// Box actions: each env's previous action as sampled `[K, D]` (zeros at an
  /// episode start), an input of the policy with `lstm_use_prev_action`.
  var prevActionValues: [Float]
  /// The Box action space's bounds `[D]` each (empty for discrete actions).
  let actionLow: [Float]
  let actionHigh: [Float]
  /// The logits each env's last action was drawn from `[K, A]`.
  var logits: [Float]
  var builders: [FragmentBuilder]
  var episodeIDs: [UInt64]
  var stepInEpisode: [Int]
  var episodeReturns: [Float]
  var openingState: [[Float]]
  /// The raw observations each env's last action was taken on `[K, F]` (the
  /// environments' buffer holds the next ones by the time a step is recorded).
  /// Fragments hold raw observations: the filter is part of the model (see
  /// ``ObservationFilter``).
  var actedOn: [Float]
  var nextEpisodeID: UInt64 = 0
  /// Groups whose step is under way.
  var inFlight: [Bool]
  /// Env steps taken (recorded).
  public private(set) var envSteps = 0
  /// Act with each head's most likely action instead of sampling (evaluation).
  public var greedy = false
  /// Past policies playing some seats of its games (nil: the current policy plays
  /// every row).
  public let pool: OpponentPool?
  /// Rows one game takes (1 but for games of several agents).
  let agents: Int
  /// Per game: the past policy playing its seats but `learnerSeat`, chosen when
  /// the game starts (nil: the current policy plays them all).
  var games: [(opponent: OpponentPool.Snapshot?, learnerSeat: Int)]
  /// Each episode record ends with its return against a past policy (NaN in a
  /// game the current policy played alone): the run's `return_vs_past`.
  let reportsPastReturn: Bool
  /// Env steps taken by past policies (not recorded, not in ``envSteps``).
  public private(set) var pastSteps = 0
  /// A fixed opponent of another model: its network and recurrent state per row
  /// (`[K, H']` each).
  final class OtherModel {
    let network: PolicyNetwork
    var h: [Float]
    var c: [Float]
    init(_ network: PolicyNetwork, rows: Int) {
      self.network = network
      h = [Float](repeating: 0, count: rows * network.stateWidth)
      c = h
    }
  }
  let otherModel: OtherModel?

  /// A worker for `config` over built-in environments made here, with env seeds
  /// `seed * 1000 + workerID * 100000 + i` (tests and tools).
  public convenience init(
    config: TrainingConfig, network: PolicyNetwork, workerID: Int, seed: UInt64, runID: UInt64? = nil,
    selfPlay: Bool = false
  ) throws {
    let envs = try EnvironmentFactory.make(
      config, count: config.num_envs_per_worker, seed: Self.envSeed(seed: seed, workerID: workerID), exactCount: true)
    try self.init(
      config: config, network: network, envs: envs, workerID: workerID, seed: seed, runID: runID, selfPlay: selfPlay)
  }

  /// The seed of a worker's first env.
  public static func envSeed(seed: UInt64, workerID: Int) -> UInt64 { seed &* 1000 &+ UInt64(workerID) &* 100_000 }

  /// A worker stepping `envs` (reset here) with its own sampling RNG; `runID`
  /// identifies the process session (drawn from the seed when nil). With
  /// `selfPlay` (a training run's workers; evaluations play the present alone) it
  /// keeps the run's pool of past policies for games of several agents
  /// (``OpponentPool``); with an `opponent` (weights of `opponentNetwork`, a model
  /// of the same spaces, or of `network` when nil) that policy plays every seat of
  /// every game but one, which takes turns.
  public init(
    config: TrainingConfig, network: PolicyNetwork, envs: any VectorEnv, workerID: Int, seed: UInt64,
    runID: UInt64? = nil, selfPlay: Bool = false, opponent: [Float]? = nil, opponentNetwork: PolicyNetwork? = nil
  ) throws {
    precondition(envs.observationSize == network.observationSize, "environments and network disagree on F")
    let width = network.distribution.actionWidth
    precondition(
      envs.actionDims == (width > 0 ? width : network.heads.count), "environments and network disagree on the actions")
    let bounds = try envs.spec.action.continuousAction()
    precondition((bounds != nil) == (width > 0), "environments and network disagree on the action space")
    actionLow = bounds?.low ?? []
    actionHigh = bounds?.high ?? []
    actionValues = [Float](repeating: 0, count: envs.count * width)
    clippedActionValues = actionValues
    prevActionValues = actionValues
    self.network = network
    self.workerID = workerID
    var rng = SeededGenerator(seed: seed &* 7919 &+ UInt64(workerID))
    self.runID = runID ?? rng.next()
    self.rng = rng
    self.envs = envs
    let k = envs.count
    parameters = Parameters(layout: network.layout)
    maxLength = config.max_seq_len
    let hs = network.stateWidth
    h = [Float](repeating: 0, count: k * hs)
    c = h
    prevActions = [Int32](repeating: 0, count: k)
    prevRewards = [Float](repeating: 0, count: k)
    actions = prevActions
    envActions = network.heads.count > 1 ? [Int32](repeating: 0, count: k * network.heads.count) : []
    logits = [Float](repeating: 0, count: k * network.actionCount)
    builders = (0..<k).map { _ in
      FragmentBuilder(
        maxLength: config.max_seq_len, observationSize: network.observationSize, actionCount: network.actionCount,
        actionWidth: width, observationBytes: envs.spec.observation.flatIsBytes)
    }
    episodeIDs = (0..<k).map { UInt64($0) }
    nextEpisodeID = UInt64(k)
    stepInEpisode = [Int](repeating: 0, count: k)
    episodeReturns = [Float](repeating: 0, count: k)
    openingState = [[Float]](repeating: [], count: k)
    actedOn = [Float](repeating: 0, count: k * network.observationSize)
    inFlight = [Bool](repeating: false, count: envs.groups.count)
    agents = envs.agentsPerGame
    precondition(k % agents == 0, "rows are whole games")
    games = [(opponent: OpponentPool.Snapshot?, learnerSeat: Int)](
      repeating: (nil, 0), count: k / agents)
    if let opponent {
      guard agents > 1 else {
        throw ConfigError("\(config.env) has one agent per game: there is no seat for an opponent to play")
      }
      pool = try OpponentPool(opponent: opponent, network: opponentNetwork, layout: network.layout)
    } else {
      pool = (selfPlay ? OpponentPool.Settings(config: config, agents: agents) : nil).map {
        OpponentPool(settings: $0, layout: network.layout)
      }
    }
    reportsPastReturn = selfPlay && config.reportsPastReturn
    otherModel = opponent == nil ? nil : opponentNetwork.map { OtherModel($0, rows: k) }
    if let pool {
      for g in games.indices { startGame(g, pool: pool) }
    }
    try envs.reset()
  }

  /// Replaces the weights (between steps) with policy `version`.
  public func setWeights(_ blob: [Float], version: Int) throws {
    try parameters.load(flatValues: blob)
    policyVersion = version
    try pool?.offer(blob, version: version)
  }

  /// The past policy playing row `i` (nil: the current one).
  func pastPolicy(row i: Int) -> OpponentPool.Snapshot? {
    guard pool != nil else { return nil }
    let g = games[i / agents]
    guard let o = g.opponent, i % agents != g.learnerSeat else { return nil }
    return o
  }

  /// One step of all K envs, group by group; finished fragments go to `emit`,
  /// finished episodes to `episode`. A group's step is recorded by the next call.
  /// With `cut`, every fragment still open after recording is closed there too
  /// (`.cut`, bootstrapping from the current observation), so the next ones start
  /// together (`sync_sampling`'s rollout windows).
  public func step(emit: (Fragment) -> Void, episode: (EpisodeRecord) -> Void, cut: Bool = false) throws {
    for (g, rows) in envs.groups.enumerated() {
      if inFlight[g] {
        inFlight[g] = false
        try envs.finishStep(group: g)
        record(rows, emit: emit, episode: episode)
        if cut { cutOpenFragments(rows, emit: emit) }
      }
      act(rows)
      if network.distribution.isContinuous {
        try clippedActionValues.withUnsafeBufferPointer {
          try envs.beginStep(group: g, continuousActions: $0.baseAddress.unsafelyUnwrapped)
        }
      } else {
        try (envActions.isEmpty ? actions : envActions).withUnsafeBufferPointer {
          try envs.beginStep(group: g, actions: $0.baseAddress.unsafelyUnwrapped)
        }
      }
      inFlight[g] = true
    }
  }

  /// Closes the open fragments of `rows` as cut, bootstrapping from the
  /// observation each env acts on next.
  func cutOpenFragments(_ rows: Range<Int>, emit: (Fragment) -> Void) {
    let f = network.observationSize
    envs.observations.withPointer { next in
      for i in rows where builders[i].count > 0 {
        if let fr = builders[i].finish(bootstrap: next + i * f, end: .cut) { emit(fr) }
      }
    }
  }

  /// Waits for the steps under way and drops them (the session ends).
  public func drain() {
    for g in envs.groups.indices where inFlight[g] {
      inFlight[g] = false
      try? envs.finishStep(group: g)
    }
  }

  /// The policy for `rows`: one batched forward over their observations, sample.
  func act(_ rows: Range<Int>) {
    let f = network.observationSize
    let a = network.actionCount
    let hs = network.stateWidth
    // The state a fragment starts from is the state before its first step: keep a
    // copy for envs about to open one (the forward updates the state in place).
    let cells = network.core?.stateCount ?? 0
    for i in rows where builders[i].count == 0 {
      openingState[i] = Array(h[(i * hs)..<((i + 1) * hs)]) + (cells == 2 ? Array(c[(i * hs)..<((i + 1) * hs)]) : [])
    }
    let r0 = rows.lowerBound
    let n = rows.count
    // Keep the observations acted on for the fragments.
    envs.observations.withPointer { raw in
      actedOn.withMutablePointer { ($0 + r0 * f).update(from: raw + r0 * f, count: n * f) }
    }
    let d = network.distribution.actionWidth
    if pool != nil, rows.contains(where: { pastPolicy(row: $0) != nil }) {
      // Some rows are past policies' seats: one forward per policy (nil: the
      // current one) over its rows.
      var byPolicy: [(past: OpponentPool.Snapshot?, rows: [Int])] = []
      for i in rows {
        let past = pastPolicy(row: i)
        if let j = byPolicy.firstIndex(where: { $0.past === past }) {
          byPolicy[j].rows.append(i)
        } else {
          byPolicy.append((past, [i]))
        }
      }
      for (past, idx) in byPolicy {
        if let past, past.network != nil, let otherModel {
          forward(
            past.parameters, gathering: idx, network: otherModel.network, h: &otherModel.h, c: &otherModel.c,
            ws: past.workspace)
        } else {
          forward(
            past?.parameters ?? parameters, gathering: idx, network: network, h: &h, c: &c, ws: past?.workspace ?? ws)
        }
      }
    } else {
      actedOn.withPointer { obs in
        prevActions.withUnsafeBufferPointer { pa in
          prevActionValues.withUnsafeBufferPointer { pav in
            prevRewards.withPointer { pr in
              h.withMutablePointer { ph in
                c.withMutablePointer { pc in
                  network.step(
                    parameters, obs: obs + r0 * f, prevActions: pa.baseAddress.unsafelyUnwrapped + r0,
                    prevActionValues: d > 0 ? pav.baseAddress.unsafelyUnwrapped + r0 * d : nil, prevRewards: pr + r0,
                    rows: n, h: ph + r0 * hs, c: pc + r0 * hs, ws: ws)
                }
              }
            }
          }
        }
      }
      logits.withMutablePointer { (($0 + r0 * a).update(from: ws.logits.pointer, count: n * a)) }
    }
    logits.withMutablePointer { dst in
      let heads = network.heads
      if d > 0 {
        // The Gaussian: the sample (or the mean) as recorded, clipped for the environment.
        actionValues.withMutablePointer { av in
          for i in rows {
            DiagGaussian.sample(dst + i * a, dims: d, greedy: greedy, rng: &rng, into: av + i * d)
            for j in 0..<d {
              clippedActionValues[i * d + j] = min(max(av[i * d + j], actionLow[j]), actionHigh[j])
            }
          }
        }
      } else if greedy {
        for i in rows {
          var packed = 0
          for h in 0..<heads.count {
            let best = heads.mostLikely(dst + i * a, head: h)
            if heads.count > 1 { envActions[i * heads.count + h] = Int32(best) }
            packed += best * heads.strides[h]
          }
          actions[i] = Int32(packed)
        }
      } else if heads.count == 1 {
        for i in rows { actions[i] = Int32(sampleCategorical(dst + i * a, count: a, rng: &rng)) }
      } else {
        // One independent draw per head; the action is their mixed-radix packing.
        for i in rows {
          var packed = 0
          for h in 0..<heads.count {
            let c = sampleCategorical(dst + i * a + heads.offsets[h], count: heads.sizes[h], rng: &rng)
            envActions[i * heads.count + h] = Int32(c)
            packed += c * heads.strides[h]
          }
          actions[i] = Int32(packed)
        }
      }
    }
  }

  /// The forward of policy `p` (of `network`, whose recurrent state per row is
  /// `h` and `c`) for the scattered rows `idx`: their inputs and states gathered,
  /// their logits and new states put back.
  func forward(
    _ p: Parameters, gathering idx: [Int], network: PolicyNetwork, h: inout [Float], c: inout [Float],
    ws: PolicyWorkspace
  ) {
    let f = network.observationSize
    let a = network.actionCount
    let hs = network.stateWidth
    let d = network.distribution.actionWidth
    let n = idx.count
    /// Rows `idx` of `src` (`width` each), one after another.
    func gathered<T>(_ src: [T], width: Int) -> [T] { idx.flatMap { src[($0 * width)..<(($0 + 1) * width)] } }
    /// Puts the rows of `rows` back at `idx` in `dst`.
    func scatter<T>(_ rows: [T], into dst: inout [T], width: Int) {
      for (j, i) in idx.enumerated() {
        dst.replaceSubrange((i * width)..<((i + 1) * width), with: rows[(j * width)..<((j + 1) * width)])
      }
    }
    let obs = gathered(actedOn, width: f)
    let pa = gathered(prevActions, width: 1)
    let pav = d > 0 ? gathered(prevActionValues, width: d) : [0]
    let pr = gathered(prevRewards, width: 1)
    var hg = gathered(h, width: hs)
    var cg = gathered(c, width: hs)
    obs.withPointer { o in
      pa.withUnsafeBufferPointer { pap in
        pav.withPointer { pavp in
          pr.withPointer { prp in
            hg.withMutablePointer { ph in
              cg.withMutablePointer { pc in
                network.step(
                  p, obs: o, prevActions: pap.baseAddress.unsafelyUnwrapped, prevActionValues: d > 0 ? pavp : nil,
                  prevRewards: prp, rows: n, h: ph, c: pc, ws: ws)
              }
            }
          }
        }
      }
    }
    scatter(Array(UnsafeBufferPointer(start: ws.logits.pointer, count: n * a)), into: &logits, width: a)
    scatter(hg, into: &h, width: hs)
    scatter(cg, into: &c, width: hs)
  }

  /// Records the last step of `rows`; closes fragments at episode ends and at T steps.
  func record(_ rows: Range<Int>, emit: (Fragment) -> Void, episode: (EpisodeRecord) -> Void) {
    let f = network.observationSize
    let a = network.actionCount
    let hs = network.stateWidth
    let stateSize = network.stateSize
    actedOn.withPointer { obs in
      logits.withPointer { lg in
        let d = network.distribution.actionWidth
        for i in rows {
          let outcome = envs.outcomes[i]
          // A past policy's seat: its state goes on, nothing is recorded.
          let past = pastPolicy(row: i) != nil
          if past { pastSteps += 1 } else { envSteps += 1 }
          if !past {
            actionValues.withPointer { av in
              builders[i].record(
                observation: obs + i * f, action: actions[i], actionValues: d > 0 ? av + i * d : nil,
                logits: lg + i * a, reward: outcome.reward
              ) {
                FragmentOrigin(
                  stateIn: openingState[i].count == stateSize
                    ? openingState[i] : [Float](repeating: 0, count: stateSize),
                  prevAction: prevActions[i], prevReward: prevRewards[i], policyVersion: policyVersion,
                  workerID: workerID, runID: runID, envIndex: i, episodeID: episodeIDs[i],
                  indexInEpisode: stepInEpisode[i],
                  prevActionValues: d > 0 ? Array(prevActionValues[(i * d)..<((i + 1) * d)]) : [])
              }
            }
          }
          stepInEpisode[i] += 1
          episodeReturns[i] += outcome.reward
          if outcome.done && !past {
            envs.finalObservations.withPointer { fin in
              if let fr = builders[i].finish(bootstrap: fin + i * f, end: outcome.terminated ? .terminated : .truncated) {
                emit(fr)
              }
            }
            let n = envs.infoKeyCount
            var info = n == 0 ? [] : Array(envs.episodeInfo[(i * n)..<((i + 1) * n)])
            if reportsPastReturn { info.append(games[i / agents].opponent == nil ? .nan : episodeReturns[i]) }
            episode(
              EpisodeRecord(
                workerID: workerID, envReturn: episodeReturns[i], length: stepInEpisode[i], envIndex: i,
                policyVersion: policyVersion, info: info))
          }
          if outcome.done {
            // New episode: zero state, zero previous action and reward.
            for j in 0..<hs {
              h[i * hs + j] = 0
              c[i * hs + j] = 0
            }
            if let otherModel {
              let w = otherModel.network.stateWidth
              for j in 0..<w {
                otherModel.h[i * w + j] = 0
                otherModel.c[i * w + j] = 0
              }
            }
            prevActions[i] = 0
            for j in 0..<d { prevActionValues[i * d + j] = 0 }
            prevRewards[i] = 0
            episodeReturns[i] = 0
            stepInEpisode[i] = 0
            episodeIDs[i] = nextEpisodeID
            nextEpisodeID += 1
          } else {
            prevActions[i] = actions[i]
            for j in 0..<d { prevActionValues[i * d + j] = actionValues[i * d + j] }
            prevRewards[i] = outcome.reward
            if builders[i].count == maxLength {
              envs.observations.withPointer { next in
                if let fr = builders[i].finish(bootstrap: next + i * f, end: .cut) { emit(fr) }
              }
            }
          }
        }
      }
    }
    if let pool { drawOpponents(rows, pool: pool) }
  }

  /// Picks who plays each game of `rows` that has just ended (all its rows done):
  /// a past policy for all seats but one (``OpponentPool/draw(rng:)``), or nil.
  func drawOpponents(_ rows: Range<Int>, pool: OpponentPool) {
    var g = rows.lowerBound / agents
    while g * agents < rows.upperBound {
      let seats = (g * agents)..<((g + 1) * agents)
      if seats.allSatisfy({ envs.outcomes[$0].done }) { startGame(g, pool: pool) }
      g += 1
    }
  }

  /// Who plays game `g`, about to start: a fixed opponent with the seat after the
  /// last one (game g's first is seat g mod n), else a draw from the pool.
  func startGame(_ g: Int, pool: OpponentPool) {
    if pool.isFixed {
      let first = games[g].opponent == nil
      games[g] = (pool.snapshots[0], first ? g % agents : (games[g].learnerSeat + 1) % agents)
    } else {
      let opponent = pool.draw(rng: &rng)
      games[g] = (opponent, opponent == nil ? 0 : Int(rng.next() % UInt64(agents)))
    }
  }
}

/// Samples an index from softmax(`logits[count]`) with `rng`. Only an index of
/// nonzero probability comes out, rounding or not (a masked action's is 0).
@inlinable
public func sampleCategorical<G: RandomNumberGenerator>(_ logits: UnsafePointer<Float>, count: Int, rng: inout G) -> Int
{
  var m = -Float.infinity
  for j in 0..<count { m = max(m, logits[j]) }
  var total: Float = 0
  for j in 0..<count { total += expf(logits[j] - m) }
  var u = rng.nextUnitFloat() * total
  var last = count - 1
  for j in 0..<count {
    let e = expf(logits[j] - m)
    guard e > 0 else { continue }
    u -= e
    last = j
    if u < 0 { return j }
  }
  return last
}

#if canImport(Glibc)
  import Glibc
#endif
