import CLinux
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Gymnasium environments stepped in Python host processes (`python -m
/// herd_env.host`, the package in `python/`): K copies split over P processes, and
/// each process's copies split into ``Options/groupsPerHost`` groups of rows. A host
/// steps one of its groups while the worker's policy acts for another, so neither
/// side waits for the other (with one group per host they take turns).
///
/// Each host gets three file descriptors: a command pipe (fd 0), a reply pipe
/// (fd 1) and an anonymous shared-memory file (fd 3, `memfd_create`: it has no name,
/// so nothing is left in /dev/shm however the worker ends). Observations, actions,
/// rewards and flags travel through the shared memory (the layout is
/// ``HostLayout``); a one-byte command and a one-byte reply on the pipes are the
/// wake-ups, so both sides block instead of spinning. Hosts die with the worker
/// (`PR_SET_PDEATHSIG`, and the command pipe closes).
///
/// A host that dies is started again (counted in ``faults``): the episodes it held
/// end as truncated, bootstrapping from their last observation.
public final class HostedEnvironments: VectorEnv {
  public let spec: EnvSpec
  /// What the host says about the spaces it shows (a PettingZoo game whose agents'
  /// spaces it made alike), for the worker's log.
  public let notes: [String]
  public let count: Int
  public let observationSize: Int
  public let actionDims: Int
  /// Whether actions are float vectors (a Box action space): the actions region
  /// holds float32 instead of int32, the same 4 bytes each.
  public let continuous: Bool
  public let groups: [Range<Int>]
  public private(set) var observations: [Float]
  public private(set) var finalObservations: [Float]
  public private(set) var episodeInfo: [Float]
  public var infoKeyCount: Int { options.infoKeys.count }
  public private(set) var outcomes: [StepOutcome]
  public private(set) var faults = EnvFaults()
  /// Whether observations travel as bytes (every observation leaf is a uint8 Box).
  public let bytes: Bool
  let options: Options
  private var hosts: [Host]
  /// Each group's host, and its index among the host's groups (-1: the host has one).
  private let groupHost: [Int]
  private let groupIndex: [Int]
  private var restartTimes: [Date] = []
  private let log: (String) -> Void
  /// Called every half second while the worker waits for a host, with the
  /// seconds waited (the rollout worker sends its heartbeats from it).
  private var waiting: ((Double) throws -> Void)?

  /// How to start the hosts.
  public struct Options: Sendable {
    /// The Gymnasium id (`CartPole-v1`, `my_package.envs:MyEnv-v0`).
    public var id: String
    /// `env_config` as a JSON object (keyword arguments of `gymnasium.make`).
    public var config: String
    /// Copies K in all.
    public var count: Int
    /// Host processes P (at most K).
    public var processes: Int
    /// Copy i is seeded `seed + i` at ``reset()``.
    public var seed: UInt64
    /// The Python interpreter that has herd_env, gymnasium and the environment's package.
    public var python: String
    /// Seconds a host may take to start (imports, making K environments).
    public var startSeconds: Double = 120
    /// Seconds one step (or reset) of one group may take before the host is taken
    /// as hung: its Python stack is printed (SIGUSR1, `faulthandler`), then it is
    /// killed and started again. A sixth of this is logged once per host as slow.
    public var stepSeconds: Double = 60
    /// Row groups per host process (at most its copies): 2 lets a host step one
    /// half while the policy acts for the other.
    public var groupsPerHost = 2
    /// Write copy 0's first episode to this GIF file (the host renders it with
    /// `render_mode="rgb_array"`; not again after a restart).
    public var record: String?
    /// Info keys read at each episode's end (``VectorEnv/episodeInfo``).
    public var infoKeys: [String] = []
    /// Gymnasium wrappers around each copy, innermost first: `env_wrappers` as a
    /// config writes it (JSON: `"module:Class"` or `{"module:Class": {kwargs}}`
    /// entries); nil for none.
    public var wrappers: String?
    /// For a PettingZoo environment (`pz:ID`, whose games take a row per
    /// agent): whether a ``count`` that is not whole games is rounded up to them
    /// (an evaluation's or a spec's) instead of refused (a training worker's,
    /// which must step `num_envs_per_worker` rows).
    public var roundUpToGames = true
    /// Rows a game takes (its agents; 1 for Gymnasium), asked of a probe host.
    var rowsPerGame = 1

    public init(id: String, config: String, count: Int, processes: Int, seed: UInt64, python: String) {
      self.id = id
      self.config = config
      self.count = count
      self.processes = processes
      self.seed = seed
      self.python = python
    }
  }

  /// One host process and its channels.
  final class Host {
    let rows: Range<Int>
    var pid: pid_t = 0
    var command: Int32 = -1
    var reply: Int32 = -1
    let memory: Int32
    let base: UnsafeMutableRawPointer
    let layout: HostLayout
    /// Groups whose step was asked for and not collected, in the order asked (the
    /// host answers in that order).
    var pending: [Int] = []
    /// Whether a slow answer of this process was logged (once per process).
    var saidSlow = false
    /// Whether a wait for its answer was given up (the waiting handler threw): it
    /// may be busy with a step nobody will collect.
    var abandoned = false

    init(rows: Range<Int>, memory: Int32, base: UnsafeMutableRawPointer, layout: HostLayout) {
      self.rows = rows
      self.memory = memory
      self.base = base
      self.layout = layout
    }
  }

  /// Starts P hosts, reads their spec (every host must report the same one), maps
  /// the shared memory. Throws an ``EnvHostError`` naming the environment when a
  /// host cannot start or its spaces are unusable.
  public init(_ options: Options, log: @escaping (String) -> Void) throws {
    precondition(options.count >= 1 && options.processes >= 1)
    signal(SIGPIPE, SIG_IGN)  // a dead host's pipe must not kill the worker
    var options = options
    if options.id.hasPrefix(Self.pettingZooPrefix) {
      // A game's agents are consecutive rows of one host and one group: split along whole games.
      let n = try Self.probeRowsPerGame(options)
      options.rowsPerGame = n
      if options.count % n != 0 {
        let (down, up) = (options.count / n * n, (options.count / n + 1) * n)
        guard options.roundUpToGames else {
          throw EnvHostError(
            "\(options.id): a game has \(n) agents and each plays on a row, so \(options.count) rows are not whole games: num_envs_per_worker must be a multiple of \(n)\(down > 0 ? " (\(down) or \(up))" : " (\(up))")"
          )
        }
        options.count = up
      }
    }
    self.options = options
    self.log = log
    count = options.count
    let unit = options.rowsPerGame
    let games = options.count / unit
    let p = min(options.processes, games)
    let hostRows = (0..<p).map { g in (g * games / p * unit)..<((g + 1) * games / p * unit) }
    var groups: [Range<Int>] = []
    var groupHost: [Int] = []
    var groupIndex: [Int] = []
    for (h, rows) in hostRows.enumerated() {
      let s = Self.groupCount(options, rows: rows)
      let hostGames = rows.count / unit
      for j in 0..<s {
        groups.append(
          (rows.lowerBound + j * hostGames / s * unit)..<(rows.lowerBound + (j + 1) * hostGames / s * unit))
        groupHost.append(h)
        groupIndex.append(s == 1 ? -1 : j)
      }
    }
    self.groups = groups
    self.groupHost = groupHost
    self.groupIndex = groupIndex
    // Start every host, then read the specs (they import and make in parallel).
    var started: [(rows: Range<Int>, pid: pid_t, command: Int32, reply: Int32, memory: Int32)] = []
    do {
      for rows in hostRows {
        let memory = herd_memfd_create("herd-env")
        guard memory >= 0 else { throw EnvHostError("memfd_create failed: \(String(cString: strerror(errno)))") }
        let (pid, command, reply) = try Self.spawn(options, rows: rows, restarts: 0, memory: memory)
        started.append((rows, pid, command, reply, memory))
      }
      var specs: [EnvSpec] = []
      var notes: [String] = []
      for s in started {
        let (spec, agents, said) = try Self.readSpec(reply: s.reply, pid: s.pid, options: options)
        notes = said
        guard agents == options.rowsPerGame else {
          throw EnvHostError("\(options.id): a host reports \(agents) agents per game, its probe \(options.rowsPerGame)")
        }
        specs.append(spec)
      }
      let first = specs[0]
      for (g, s) in specs.enumerated() where s != first {
        throw EnvHostError(
          "\(options.id): host \(g) reports \(s.difference(from: first) ?? "a different spec") (host 0: \(first))")
      }
      try first.observation.checkObservation()
      let box = try first.action.continuousAction()
      let heads = box == nil ? try first.action.actionHeads() : []
      spec = first
      self.notes = notes
      observationSize = first.observation.flatSize
      continuous = box != nil
      actionDims = box?.low.count ?? heads.count
      bytes = first.observation.flatIsBytes
    } catch {
      for s in started { Self.terminate(pid: s.pid, command: s.command, reply: s.reply) }
      for s in started { Glibc.close(s.memory) }
      throw error
    }
    var made: [Host] = []
    for s in started {
      let lay = HostLayout(
        k: s.rows.count, f: observationSize, d: actionDims, itemSize: bytes ? 1 : 4, infoCount: options.infoKeys.count)
      guard ftruncate(s.memory, off_t(lay.size)) == 0,
        let base = mmap(nil, lay.size, PROT_READ | PROT_WRITE, MAP_SHARED, s.memory, 0), base != MAP_FAILED
      else {
        for s in started { Self.terminate(pid: s.pid, command: s.command, reply: s.reply) }
        throw EnvHostError("shared memory of \(lay.size) bytes: \(String(cString: strerror(errno)))")
      }
      lay.writeHeader(base)
      let h = Host(rows: s.rows, memory: s.memory, base: base, layout: lay)
      (h.pid, h.command, h.reply) = (s.pid, s.command, s.reply)
      made.append(h)
    }
    hosts = made
    observations = [Float](repeating: 0, count: count * observationSize)
    finalObservations = observations
    episodeInfo = [Float](repeating: .nan, count: count * options.infoKeys.count)
    outcomes = [StepOutcome](repeating: StepOutcome(reward: 0, terminated: false, truncated: false), count: count)
    do {
      for h in hosts { try attach(h) }
    } catch {
      close()
      throw error
    }
  }

  deinit { close() }

  // MARK: VectorEnv

  public func reset() throws {
    for h in hosts {
      while let g = h.pending.first { try finishStep(group: g) }
    }
    for h in hosts { try ask(h, "R", expect: "r") }
    for h in hosts { copyObservations(h) }
  }

  public func beginStep(group: Int, actions: UnsafePointer<Int32>) throws {
    precondition(!continuous, "\(spec.id) takes float actions")
    try begin(group: group, actions: UnsafeRawPointer(actions))
  }

  public func beginStep(group: Int, continuousActions: UnsafePointer<Float>) throws {
    precondition(continuous, "\(spec.id) takes discrete actions")
    try begin(group: group, actions: UnsafeRawPointer(continuousActions))
  }

  /// Copies the group's rows of `[K, D]` 4-byte actions into its host's memory and starts the step.
  private func begin(group: Int, actions: UnsafeRawPointer) throws {
    let h = hosts[groupHost[group]]
    let rows = groups[group]
    let dst = h.base + h.layout.actions + (rows.lowerBound - h.rows.lowerBound) * actionDims * 4
    dst.copyMemory(from: actions + rows.lowerBound * actionDims * 4, byteCount: rows.count * actionDims * 4)
    let j = groupIndex[group]
    // "S" steps all of a host's copies, "a", "b", ... one group of them. A dead
    // host: finishStep sees no answer and restarts it.
    _ = write(h.command, j < 0 ? "S" : Character(Unicode.Scalar(UInt8(97 + j))))
    h.pending.append(group)
  }

  /// Collects `group`'s step. The groups of one host must be finished in the order
  /// they began (the rollout worker does).
  ///
  /// A host that died or hung is started again and every group of it under way
  /// ends its episodes as truncated. (A group of that host that was between
  /// finishStep and beginStep keeps observations from before the restart; the
  /// rollout worker never leaves one there while it waits for another.)
  public func finishStep(group: Int) throws {
    let h = hosts[groupHost[group]]
    guard let at = h.pending.firstIndex(of: group) else { return }  // ended by a restart, outcomes set
    precondition(at == 0, "groups of one env host must finish in the order they began")
    h.pending.removeFirst()
    if try read(h, expect: "s", seconds: options.stepSeconds, doing: "a step") {
      collect(h, rows: groups[group])
      return
    }
    // The host died (or hung): its episodes under way end here, truncated.
    let lost = [group] + h.pending
    h.pending.removeAll()
    try restart(h)
    let f = observationSize
    let n = options.infoKeys.count
    for g in lost {
      for i in groups[g] {
        outcomes[i] = StepOutcome(reward: 0, terminated: false, truncated: true)
        for j in 0..<f { finalObservations[i * f + j] = observations[i * f + j] }
        for j in 0..<n { episodeInfo[i * n + j] = .nan }
      }
      copyObservations(h, rows: groups[g])
    }
  }

  public func setWaitingHandler(_ handler: ((Double) throws -> Void)?) { waiting = handler }

  public func close() {
    for h in hosts where h.pid > 0 {
      // A step left under way (the caller stopped waiting): nothing in it to keep,
      // and the host would not read the quit command before the step ends.
      if h.abandoned || !h.pending.isEmpty { kill(h.pid, SIGKILL) }
      Self.terminate(pid: h.pid, command: h.command, reply: h.reply)
      h.pid = 0
      munmap(h.base, h.layout.size)
      Glibc.close(h.memory)
    }
    hosts.removeAll()
  }

  /// The pids of the host processes (tests and logs).
  public var hostPIDs: [Int32] { hosts.map(\.pid) }
  /// Rows one game takes: a PettingZoo environment's agents, 1 for Gymnasium.
  public var agentsPerGame: Int { options.rowsPerGame }

  // MARK: Steps

  /// Copies a finished step's `rows` out of shared memory.
  private func collect(_ h: Host, rows: Range<Int>) {
    let lay = h.layout
    let rewards = (h.base + lay.rewards).assumingMemoryBound(to: Float.self)
    let flags = (h.base + lay.flags).assumingMemoryBound(to: UInt8.self)
    let info = (h.base + lay.episodeInfo).assumingMemoryBound(to: Float.self)
    let f = observationSize
    let n = lay.infoCount
    for i in rows {
      let r = i - h.rows.lowerBound
      let flag = flags[r]
      outcomes[i] = StepOutcome(
        reward: rewards[r], terminated: flag & HostLayout.terminated != 0, truncated: flag & HostLayout.truncated != 0)
      if flag & HostLayout.stepError != 0 { faults.stepErrors += 1 }
      if flag & HostLayout.nonFinite != 0 { faults.nonFiniteObservations += 1 }
      if flag & (HostLayout.stepError | HostLayout.nonFinite) != 0 {
        // No final observation from the host: bootstrap from the one the action was
        // taken on (this row still holds it).
        for j in 0..<f { finalObservations[i * f + j] = observations[i * f + j] }
      } else if outcomes[i].done {
        finalObservations.withUnsafeMutableBufferPointer { fin in
          copyRow(h.base + lay.finalObservations, row: r, into: fin.baseAddress.unsafelyUnwrapped + i * f)
        }
      }
      if outcomes[i].done {
        for j in 0..<n { episodeInfo[i * n + j] = info[r * n + j] }
      }
    }
    copyObservations(h, rows: rows)
  }

  private func copyObservations(_ h: Host, rows: Range<Int>? = nil) {
    let f = observationSize
    observations.withUnsafeMutableBufferPointer { obs in
      for i in rows ?? h.rows {
        let r = i - h.rows.lowerBound
        copyRow(h.base + h.layout.observations, row: r, into: obs.baseAddress.unsafelyUnwrapped + i * f)
      }
    }
  }

  private func copyRow(_ region: UnsafeMutableRawPointer, row: Int, into dst: UnsafeMutablePointer<Float>) {
    let f = observationSize
    if bytes {
      let src = region.assumingMemoryBound(to: UInt8.self) + row * f
      for j in 0..<f { dst[j] = Float(src[j]) }
    } else {
      dst.update(from: region.assumingMemoryBound(to: Float.self) + row * f, count: f)
    }
  }

  // MARK: Processes

  /// Sends `command` and waits for `expect`; a dead host is restarted and asked again.
  private func ask(_ h: Host, _ command: Character, expect: Character) throws {
    for _ in 0..<3 {
      let doing = command == "R" ? "a reset" : "'\(command)'"
      if write(h.command, command), try read(h, expect: expect, seconds: options.stepSeconds, doing: doing) {
        return
      }
      try restart(h)
    }
    throw EnvHostError("\(options.id): the env host does not answer '\(command)'")
  }

  private func attach(_ h: Host) throws {
    guard write(h.command, "M"), try read(h, expect: "m", seconds: options.startSeconds, doing: "mapping its memory") else {
      throw EnvHostError("\(options.id): the env host (pid \(h.pid)) ended before mapping its shared memory")
    }
  }

  /// Starts a dead or hung host again over the same shared memory. Gives up when
  /// hosts died 5 times within a minute.
  private func restart(_ h: Host) throws {
    let status = Self.terminate(pid: h.pid, command: h.command, reply: h.reply)
    faults.hostRestarts += 1
    let now = Date()
    restartTimes = restartTimes.filter { now.timeIntervalSince($0) < 60 } + [now]
    guard restartTimes.count <= 5 else {
      throw EnvHostError(
        "\(options.id): env hosts died \(restartTimes.count) times within a minute (last: \(status)); giving up")
    }
    log(
      "env host for copies \(h.rows.lowerBound)..<\(h.rows.upperBound) of \(options.id) (pid \(h.pid)) \(status); starting it again (restart \(faults.hostRestarts))"
    )
    let (pid, command, reply) = try Self.spawn(options, rows: h.rows, restarts: faults.hostRestarts, memory: h.memory)
    (h.pid, h.command, h.reply) = (pid, command, reply)
    let (again, _, _) = try Self.readSpec(reply: reply, pid: pid, options: options)
    guard again == spec else { throw EnvHostError("\(options.id): the restarted host reports \(again), not \(spec)") }
    try attach(h)
    guard write(h.command, "R"), try read(h, expect: "r", seconds: options.startSeconds, doing: "a reset") else {
      throw EnvHostError("\(options.id): the restarted env host (pid \(pid)) does not reset")
    }
  }

  /// Row groups of a host with `rows`: as asked, at most one per copy (per game
  /// of a PettingZoo environment) and 26 (commands `a` to `z`).
  static func groupCount(_ o: Options, rows: Range<Int>) -> Int {
    max(1, min(o.groupsPerHost, rows.count / o.rowsPerGame, 26))
  }

  /// The prefix of a PettingZoo environment's id (`pz:classic/tictactoe-v3`).
  public static let pettingZooPrefix = "pz:"

  /// The rows one game of a PettingZoo environment takes (its agents), from a
  /// host started with `--probe`, which makes one game, describes it and exits.
  static func probeRowsPerGame(_ o: Options) throws -> Int {
    let memory = herd_memfd_create("herd-env-probe")
    guard memory >= 0 else { throw EnvHostError("memfd_create failed: \(String(cString: strerror(errno)))") }
    defer { Glibc.close(memory) }
    let (pid, command, reply) = try spawn(o, rows: 0..<1, restarts: 0, memory: memory, probe: true)
    defer { terminate(pid: pid, command: command, reply: reply) }
    let (_, agents, _) = try readSpec(reply: reply, pid: pid, options: o)
    return agents
  }

  /// Spawns one host with its pipes and the shared memory on fd 3.
  static func spawn(_ o: Options, rows: Range<Int>, restarts: Int, memory: Int32, probe: Bool = false) throws -> (
    pid_t, Int32, Int32
  ) {
    var commandPipe: [Int32] = [0, 0]
    var replyPipe: [Int32] = [0, 0]
    guard pipe2(&commandPipe, O_CLOEXEC) == 0, pipe2(&replyPipe, O_CLOEXEC) == 0 else {
      throw EnvHostError("pipe: \(String(cString: strerror(errno)))")
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    // Move the shared memory out of 0...3 first so the dup2s cannot clobber it.
    let mem = fcntl(memory, F_DUPFD_CLOEXEC, 10)
    defer { Glibc.close(mem) }
    posix_spawn_file_actions_adddup2(&actions, commandPipe[0], 0)
    posix_spawn_file_actions_adddup2(&actions, replyPipe[1], 1)
    posix_spawn_file_actions_adddup2(&actions, mem, 3)
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    // Default dispositions and no blocked signals: the worker ignores or blocks some.
    var all = sigset_t()
    sigfillset(&all)
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigdefault(&attr, &all)
    posix_spawnattr_setsigmask(&attr, &none)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
    // A restarted host draws new episodes: its seeds move on by a stride per restart.
    let seed = o.seed &+ UInt64(restarts) &* 7_000_003
    var args: [String] = [
      o.python, "-m", "herd_env.host", "--env", o.id, "--config", o.config, "--count", String(rows.count),
      "--seed", String(seed), "--first-index", String(rows.lowerBound), "--shm-fd", "3",
      "--groups", String(probe ? 1 : groupCount(o, rows: rows)),
    ]
    if !o.infoKeys.isEmpty { args += ["--info-keys", Self.jsonList(o.infoKeys)] }
    if let wrappers = o.wrappers { args += ["--wrappers", wrappers] }
    if let record = o.record, rows.contains(0), restarts == 0, !probe { args += ["--record", record] }
    if probe { args.append("--probe") }
    var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
    defer { for a in argv { free(a) } }
    var pid: pid_t = 0
    let rc = posix_spawnp(&pid, o.python, &actions, &attr, &argv, Glibc.environ)
    Glibc.close(commandPipe[0])
    Glibc.close(replyPipe[1])
    guard rc == 0 else {
      Glibc.close(commandPipe[1])
      Glibc.close(replyPipe[0])
      throw EnvHostError(
        "cannot start \(o.python) for the env host: \(String(cString: strerror(rc))) (set --python or HERD_PYTHON to an interpreter with herd_env installed: make venv)"
      )
    }
    return (pid, commandPipe[1], replyPipe[0])
  }

  /// Reads the host's first line: its spec, or its error.
  /// `keys` as a JSON list of strings.
  static func jsonList(_ keys: [String]) -> String {
    let data = (try? JSONSerialization.data(withJSONObject: keys, options: [.withoutEscapingSlashes])) ?? Data("[]".utf8)
    return String(decoding: data, as: UTF8.self)
  }

  /// The spec a host writes first, and the rows each of its games takes (1 but
  /// for a PettingZoo environment).
  static func readSpec(reply: Int32, pid: pid_t, options o: Options) throws -> (
    EnvSpec, agents: Int, notes: [String]
  ) {
    var line: [UInt8] = []
    let deadline = Date().addingTimeInterval(o.startSeconds)
    while line.last != UInt8(ascii: "\n") {
      let left = deadline.timeIntervalSinceNow
      guard left > 0 else { throw EnvHostError("\(o.id): the env host (pid \(pid)) did not start within \(Int(o.startSeconds)) s") }
      var p = pollfd(fd: reply, events: Int16(POLLIN), revents: 0)
      let r = poll(&p, 1, Int32(min(left, 1) * 1000))
      if r < 0 && errno == EINTR { continue }
      if r == 0 { continue }
      var buf = [UInt8](repeating: 0, count: 4096)
      let n = Glibc.read(reply, &buf, buf.count)
      if n < 0 && errno == EINTR { continue }
      guard n > 0 else {
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        throw EnvHostError(
          "\(o.id): the env host (\(o.python) -m herd_env.host) exited with status \(status >> 8) before describing the environment; its error is above. Is herd_env installed in that interpreter, and from this version of Herd (make venv, or pip install -e python/)?"
        )
      }
      line += buf[0..<n]
    }
    let text = String(decoding: line.dropLast(), as: UTF8.self)
    let obj = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
    if let e = obj?["error"] as? String {
      throw EnvHostError("environment \(o.id) cannot be made: \(e)")
    }
    // A herd_env from another version of Herd lays the shared memory out otherwise
    // (one from before the layout was said speaks version 1).
    let layout = obj?["layout"] as? Int ?? 1
    guard layout == HostLayout.version else {
      let place = (obj?["herd_env"] as? String).map { " (\($0))" } ?? ""
      throw EnvHostError(
        "\(o.id): the herd_env of \(o.python)\(place) lays out shared memory version \(layout), this herd version \(HostLayout.version): they are from different versions of Herd. Install this checkout's into that interpreter (make venv, or pip install -e python/)"
      )
    }
    let agents = obj?["agents"] as? Int ?? 1
    guard agents >= 1 else { throw EnvHostError("\(o.id): the env host reports \(agents) agents per game") }
    return (try EnvSpec(json: text), agents, obj?["notes"] as? [String] ?? [])
  }

  /// Ends a host: quit command, closed pipes, then SIGKILL if it has not exited
  /// within 3 s. Returns how it ended, in words.
  @discardableResult
  static func terminate(pid: pid_t, command: Int32, reply: Int32) -> String {
    _ = Self.writeByte(command, UInt8(ascii: "Q"))
    Glibc.close(command)
    Glibc.close(reply)
    guard pid > 0 else { return "was not running" }
    var status: Int32 = 0
    for _ in 0..<300 {
      let r = waitpid(pid, &status, WNOHANG)
      if r == pid { return describe(status) }
      if r < 0 { return "is gone" }
      usleep(10_000)
    }
    kill(pid, SIGKILL)
    waitpid(pid, &status, 0)
    return "did not exit and was killed"
  }

  static func describe(_ status: Int32) -> String {
    let sig = status & 0x7f
    if sig != 0 { return "was killed by signal \(sig)" }
    return "exited with status \((status >> 8) & 0xff)"
  }

  private func write(_ fd: Int32, _ c: Character) -> Bool { Self.writeByte(fd, c.asciiValue ?? 0) }

  static func writeByte(_ fd: Int32, _ b: UInt8) -> Bool {
    var byte = b
    while true {
      let n = Glibc.write(fd, &byte, 1)
      if n == 1 { return true }
      if n < 0 && errno == EINTR { continue }
      return false
    }
  }

  /// Blocks (poll, no spinning) for one byte of `h`'s reply; false on EOF, a wrong
  /// byte or after `seconds`. Calls the waiting handler every half second (an
  /// error it throws ends the wait and is thrown on: the worker is stopping), and
  /// logs once per host process when an answer takes a sixth of `seconds` (a slow
  /// environment, not yet a hung one). At `seconds` the host is asked for its Python
  /// stack (SIGUSR1: `faulthandler` writes every thread's to the worker's stderr),
  /// so the log shows where it hangs, and killed; the caller starts it again.
  private func read(_ h: Host, expect: Character, seconds: Double, doing: String) throws -> Bool {
    var p = pollfd(fd: h.reply, events: Int16(POLLIN), revents: 0)
    let start = Date()
    let slowAfter = seconds / 6
    let key = seconds == options.stepSeconds ? " (env_step_timeout_seconds)" : ""
    while true {
      let waited = -start.timeIntervalSinceNow
      if waited >= seconds {
        log(
          "env host for copies \(h.rows.lowerBound)..<\(h.rows.upperBound) of \(options.id) (pid \(h.pid)) did not finish \(doing) within \(Self.format(seconds)) s\(key); taking it as hung: its Python stack follows, then it is killed"
        )
        if h.pid > 0 && kill(h.pid, SIGUSR1) == 0 {
          usleep(500_000)  // time to write the stack
          kill(h.pid, SIGKILL)  // it would not read a quit command
        }
        return false
      }
      if waited >= slowAfter && !h.saidSlow && h.pid > 0 {
        h.saidSlow = true
        log(
          "env host for copies \(h.rows.lowerBound)..<\(h.rows.upperBound) of \(options.id) (pid \(h.pid)): \(doing) has taken \(Self.format(waited)) s so far; at \(Self.format(seconds)) s\(key) it is taken as hung (said once per host process)"
        )
      }
      let slice = min(0.5, seconds - waited, slowAfter > waited ? slowAfter - waited : 0.5)
      let r = poll(&p, 1, Int32(max(1, (slice * 1000).rounded(.up))))
      if r < 0 && errno == EINTR { continue }
      if r <= 0 {
        do {
          try waiting?(-start.timeIntervalSinceNow)
        } catch {
          h.abandoned = true
          throw error
        }
        continue
      }
      var byte: UInt8 = 0
      let n = Glibc.read(h.reply, &byte, 1)
      if n < 0 && errno == EINTR { continue }
      return n == 1 && byte == expect.asciiValue
    }
  }

  /// Seconds in a log line: whole from 10 on, else one decimal.
  static func format(_ seconds: Double) -> String { String(format: seconds >= 10 ? "%.0f" : "%.1f", seconds) }
}

/// The shared-memory layout a host and its worker agree on (herd_env/layout.py has
/// the same function). Regions, each aligned to 64 bytes: a 64-byte header (`HERD`,
/// then uint32 version 2, K, F, D, item size, N), actions `[K, D]` (int32, or float32
/// for a Box action space), float32 rewards `[K]`, uint8 flags `[K]`, observations
/// `[K, F]` and final observations `[K, F]` (float32, or uint8 when every observation
/// leaf is a uint8 Box), and float32 episode info `[K, N]` (the N info keys of the step
/// that ended a row's episode).
public struct HostLayout: Sendable, Equatable {
  public static let terminated: UInt8 = 1
  public static let truncated: UInt8 = 2
  public static let stepError: UInt8 = 4
  public static let nonFinite: UInt8 = 8
  /// The layout's version, in the header and in the host's spec line.
  public static let version = 2

  public let k: Int, f: Int, d: Int, itemSize: Int, infoCount: Int
  public let actions: Int, rewards: Int, flags: Int, observations: Int, finalObservations: Int, episodeInfo: Int
  public let size: Int

  public init(k: Int, f: Int, d: Int, itemSize: Int, infoCount: Int = 0) {
    func align(_ x: Int) -> Int { (x + 63) / 64 * 64 }
    (self.k, self.f, self.d, self.itemSize, self.infoCount) = (k, f, d, itemSize, infoCount)
    actions = 64
    rewards = align(actions + 4 * k * d)
    flags = align(rewards + 4 * k)
    observations = align(flags + k)
    finalObservations = align(observations + k * f * itemSize)
    episodeInfo = align(finalObservations + k * f * itemSize)
    size = align(episodeInfo + 4 * k * infoCount)
  }

  func writeHeader(_ base: UnsafeMutableRawPointer) {
    let magic: [UInt8] = Array("HERD".utf8)
    for (i, b) in magic.enumerated() { base.storeBytes(of: b, toByteOffset: i, as: UInt8.self) }
    for (i, v) in [Self.version, k, f, d, itemSize, infoCount].enumerated() {
      base.storeBytes(of: UInt32(v).littleEndian, toByteOffset: 4 + 4 * i, as: UInt32.self)
    }
  }
}

/// An env host that cannot start or keeps failing; names the environment.
public struct EnvHostError: Error, CustomStringConvertible, Equatable {
  public var description: String
  public init(_ description: String) { self.description = description }
}
