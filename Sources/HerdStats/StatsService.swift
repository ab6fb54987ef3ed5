import Foundation
import HerdRL
import HerdWire

/// Where the stats endpoint reads from: values and closures that copy, never the
/// trainer's own state. The trainer publishes a ``TrainerStatus`` once a second;
/// the network thread's worker table and drop counters are copied under their lock.
public struct StatsSources: Sendable {
  public var env: String
  public var runID: String
  public var runDir: String
  public var board: StatusBoard
  public var workers: @Sendable () -> [WorkerSession]
  public var drops: @Sendable () -> [DropReason: Int]
  public var endpoints: [String: String]

  public init(
    env: String, runID: String, runDir: String, board: StatusBoard,
    workers: @escaping @Sendable () -> [WorkerSession] = { [] },
    drops: @escaping @Sendable () -> [DropReason: Int] = { [:] }, endpoints: [String: String] = [:]
  ) {
    self.env = env
    self.runID = runID
    self.runDir = runDir
    self.board = board
    self.workers = workers
    self.drops = drops
    self.endpoints = endpoints
  }
}

/// Whether the run makes progress, and why not.
public struct Health: Sendable, Equatable {
  /// `training`, `starting`, `degraded` (training, but the run directory refuses
  /// writes: disk full), `stalled` or `stopped`.
  public var status: String
  public var reason: String
  /// 200 for `training`, `starting` and `degraded`, 503 otherwise. A full disk
  /// stays 200: restarting the learner would not free space, and it keeps training.
  public var healthy: Bool { status == "training" || status == "starting" || status == "degraded" }

  /// The rule: stopped when the trainer said so; stalled when its loop has not gone
  /// round for `stallSeconds` (trainer stuck) or no fragment arrived for
  /// `stallSeconds` (none since the start counts once the run is that old);
  /// starting before the first fragment; training otherwise.
  public static func judge(
    status: TrainerStatus?, uptime: Double, secondsSinceBeat: Double, secondsSinceFragments: Double?,
    workersConnected: Int, stallSeconds: Double
  ) -> Health {
    func f(_ x: Double) -> String { String(format: "%.0f", x) }
    if let why = status?.stoppedBecause { return Health(status: "stopped", reason: "the run has stopped: \(why)") }
    if secondsSinceBeat > stallSeconds {
      return Health(status: "stalled", reason: "trainer stuck: its loop has not gone round for \(f(secondsSinceBeat)) s")
    }
    let workers = "\(workersConnected) worker\(workersConnected == 1 ? "" : "s") connected"
    guard let since = secondsSinceFragments else {
      if uptime > stallSeconds {
        return Health(status: "stalled", reason: "no fragments since the start \(f(uptime)) s ago (\(workers))")
      }
      return Health(status: "starting", reason: "waiting for the first fragments (\(workers))")
    }
    if since > stallSeconds {
      return Health(status: "stalled", reason: "no fragments for \(f(since)) s (\(workers))")
    }
    let fresh = "fragments \(String(format: "%.1f", since)) s ago, \(workers)"
    if let disk = status?.diskError {
      return Health(status: "degraded", reason: "training, but the run directory refuses writes: \(disk) (\(fresh))")
    }
    return Health(status: "training", reason: fresh)
  }
}

/// The stats endpoint's routes: `/healthz`, `/stats`, `/history`, `/metrics` and
/// the dashboard at `/`.
///
/// The token rule, with `--stats-token-file`: every route that carries numbers
/// needs `Authorization: Bearer TOKEN` (a header only: a token in a URL ends up in
/// logs and browser history). `/` is a page without data and stays open;
/// `/healthz` stays open for probes but without the token answers only its
/// status word (`{"status": "training"}`), with the token also the reason and
/// the figures. Without a token file every route is open.
public final class StatsService: Sendable {
  public let sources: StatsSources
  public let stallSeconds: Double
  let token: String?
  let metrics: MetricsExporter

  public init(sources: StatsSources, stallSeconds: Double = 30, token: String? = nil) {
    self.sources = sources
    self.stallSeconds = stallSeconds
    self.token = token
    self.metrics = MetricsExporter()
  }

  /// Answers one request.
  public func handle(_ r: HTTPRequest) -> HTTPResponse {
    guard r.method == "GET" || r.method == "HEAD" else {
      var res = HTTPResponse(status: 405, text: "only GET and HEAD\n")
      res.headers.append(("Allow", "GET, HEAD"))
      return res
    }
    let open = token.map { authorised(r, token: $0) } ?? true
    if !open, r.path != "/", r.path != "/healthz", r.path != "/index.html" {
      var res = HTTPResponse(status: 401, text: "this endpoint needs Authorization: Bearer TOKEN (see --stats-token-file)\n")
      res.headers.append(("WWW-Authenticate", "Bearer realm=\"herd\""))
      return res
    }
    switch r.path {
    case "/", "/index.html":
      return HTTPResponse(status: 200, text: Dashboard.html, contentType: "text/html; charset=utf-8")
    case "/healthz":
      let (doc, health) = document()
      var body: [String: Any] = ["status": health.status]
      if open {
        body["reason"] = health.reason
        body[MetricKey.policyVersion] = doc.policyVersion
        body[MetricKey.envStepsSampled] = doc.envStepsSampled
        body["workers/connected"] = doc.workers.filter { $0.state == "connected" }.count
      }
      return json(health.healthy ? 200 : 503, body)
    case "/stats":
      do {
        return HTTPResponse(status: 200, contentType: "application/json", body: try document().0.json())
      } catch {
        return HTTPResponse(status: 500, text: "could not encode the stats: \(error)\n")
      }
    case "/history":
      return HTTPResponse(status: 200, contentType: "application/json", body: historyJSON())
    case "/metrics":
      let (doc, health) = document()
      return HTTPResponse(
        status: 200, text: metrics.render(doc, health: health), contentType: "text/plain; version=0.0.4; charset=utf-8")
    default:
      return HTTPResponse(status: 404, text: "no route \(r.path); try /, /healthz, /stats, /history or /metrics\n")
    }
  }

  /// Whether `r` carries the token in its Authorization header (compared in
  /// constant time in the token's length).
  func authorised(_ r: HTTPRequest, token: String) -> Bool {
    guard let h = r.headers["authorization"], h.lowercased().hasPrefix("bearer ") else { return false }
    let given = String(h.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces)
    let a = Array(given.utf8)
    let b = Array(token.utf8)
    var diff = UInt8(a.count == b.count ? 0 : 1)
    for i in 0..<b.count { diff |= (i < a.count ? a[i] : 0) ^ b[i] }
    return diff == 0
  }

  /// The /stats document and the health it implies, from copies only.
  public func document() -> (StatsDocument, Health) {
    let board = sources.board
    let status = board.status
    let uptime = Date().timeIntervalSince(board.started)
    let sincePublish = board.secondsSincePublish
    let sinceFragments = status?.stats.secondsSinceEnvSteps.map { $0 + sincePublish }
    let now = Date()
    let rows = sources.workers().map { w in
      StatsDocument.WorkerRow(
        id: w.id, host: w.host, pid: w.pid, envs: w.envs, envSteps: Int(w.envSteps),
        stepsPerSecond: w.stepsPerSecond.isFinite ? w.stepsPerSecond : 0, episodes: Int(w.episodes),
        meanReturn: w.meanReturn.isFinite ? w.meanReturn : nil, policyVersion: Int(w.policyVersion),
        secondsSinceHeartbeat: now.timeIntervalSince(w.lastSeen),
        state: w.connected ? "connected" : (w.saidGoodbye ? "left" : "lost"),
        envStepErrors: w.faults.stepErrors, envHostRestarts: w.faults.hostRestarts,
        envNonFinite: w.faults.nonFiniteObservations)
    }
    let health = Health.judge(
      status: status, uptime: uptime, secondsSinceBeat: board.secondsSinceBeat, secondsSinceFragments: sinceFragments,
      workersConnected: rows.filter { $0.state == "connected" }.count, stallSeconds: stallSeconds)
    var dropped = Dictionary(uniqueKeysWithValues: DropReason.allCases.map { ($0.rawValue, 0) })
    for (k, v) in sources.drops() { dropped[k.rawValue, default: 0] += v }
    dropped[DropReason.stale.rawValue, default: 0] += status?.stats.droppedStale ?? 0
    let s = status?.stats
    let u = status?.lastUpdate
    func finite(_ x: Float?) -> Float? { x.flatMap { $0.isFinite ? $0 : nil } }
    var doc = StatsDocument(
      env: sources.env, runID: sources.runID, runDir: sources.runDir, status: health.status,
      statusReason: health.reason, uptimeSeconds: uptime, policyVersion: status?.updates ?? 0,
      updates: status?.updates ?? 0, envStepsSampled: s?.envSteps ?? 0, envStepsTrained: status?.trainedSteps ?? 0,
      sampledPerSecond: status?.sampledPerSecond ?? 0, trainedPerSecond: status?.trainedPerSecond ?? 0,
      episodes: s?.episodes ?? 0, episodesWindow: s?.windowEpisodes ?? 0, returnMean: finite(s?.meanReturn),
      returnMin: finite(s?.minReturn), returnMax: finite(s?.maxReturn), lengthMean: finite(s?.meanLength),
      lossPG: finite(u?.policyLoss), lossBaseline: finite(u?.baselineLoss), lossEntropy: finite(u?.entropyLoss),
      entropy: finite(u?.entropy), gradNorm: finite(u?.gradNorm), learningRate: finite(u?.learningRate),
      meanRho: finite(u?.meanRho), skippedUpdates: s?.skippedUpdates ?? 0, lagP50: s?.lagP50 ?? 0,
      lagP95: s?.lagP95 ?? 0, lagMax: s?.lagMax ?? 0, queueDepth: status?.queueDepth ?? 0,
      queueCapacity: status?.queueCapacity ?? 0, secondsSinceFragments: sinceFragments,
      wallSeconds: status?.wallSeconds ?? 0, diskError: status?.diskError, dropped: dropped,
      endpoints: sources.endpoints, workers: rows)
    doc.envStepsReused = status?.reusedSteps ?? 0
    doc.clippedFraction = finite(u?.clippedFraction)
    doc.entropyCoeff = finite(u?.entropyCoeff)
    doc.queueBytes = status?.queueBytes ?? 0
    doc.replayFragments = status?.replayFragments ?? 0
    doc.replayBytes = status?.replayBytes ?? 0
    doc.sampleReuse = status?.sampleReuse ?? 1
    doc.envStepErrors = rows.reduce(0) { $0 + $1.envStepErrors }
    doc.envHostRestarts = rows.reduce(0) { $0 + $1.envHostRestarts }
    doc.envNonFinite = rows.reduce(0) { $0 + $1.envNonFinite }
    doc.openFiles = OpenFiles.inUse
    doc.openFilesLimit = OpenFiles.limit
    doc.episodeInfo = Dictionary(uniqueKeysWithValues: (s?.episodeInfo ?? []).map { ($0.key, finite($0.mean)) })
    doc.evaluation = status?.evaluation
    doc.bestEvaluation = status?.bestEvaluation
    doc.evaluations = status?.evaluations ?? 0
    doc.evaluationReturnMean = status?.evaluation?.returnMean.flatMap { $0.isFinite ? $0 : nil }
    doc.evaluationEnvSteps = status?.evaluation?.envSteps
    return (doc, health)
  }

  /// The learning curves, column by column (`null` where a value did not exist yet).
  func historyJSON() -> [UInt8] {
    let h = sources.board.history
    func finite(_ x: Float?) -> Float? { x.flatMap { $0.isFinite ? $0 : nil } }
    var c = HistoryDocument(
      wallSeconds: h.map(\.wallSeconds), envSteps: h.map(\.envSteps), returnMean: h.map { finite($0.meanReturn) },
      sampledPerSecond: h.map(\.sampledPerSecond), trainedPerSecond: h.map(\.trainedPerSecond),
      lossPG: h.map { finite($0.policyLoss) }, lossBaseline: h.map { finite($0.baselineLoss) },
      lossEntropy: h.map { finite($0.entropyLoss) }, lagP50: h.map(\.lagP50), lagP95: h.map(\.lagP95))
    for key in Set(h.flatMap(\.episodeInfo.keys)) { c.episodeInfo[key] = h.map { $0.episodeInfo[key] } }
    c.evaluationReturn = h.map { finite($0.evaluationReturn) }
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    return Array((try? e.encode(c)) ?? Data("{}".utf8)) + [10]
  }

  func json(_ status: Int, _ object: [String: Any]) -> HTTPResponse {
    let data =
      (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
      ?? Data("{}".utf8)
    return HTTPResponse(status: status, contentType: "application/json", body: Array(data) + [10])
  }
}
