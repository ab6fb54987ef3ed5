import ArgumentParser
import Foundation
import HerdLearner
import HerdRL
import HerdStats
import Logging

/// Options of the learner's HTTP stats endpoint (`herd learner`, `herd train`).
struct StatsOptions: ParsableArguments {
  @Option(
    parsing: .unconditional,
    help: """
      Port of the HTTP stats endpoint (/ dashboard, /healthz, /stats, /metrics) on the \
      learner's host. Default: the control port + 3 for `herd learner`, 5558 for `herd train` \
      (any free port if 5558 is taken). 0: any free port.
      """)
  var statsPort: Int?
  @Flag(help: "Run without the stats endpoint.")
  var noStats = false
  @Option(
    parsing: .unconditional,
    help: "Seconds without fragments (or without a trainer loop) before /healthz answers 503.")
  var stallSeconds: Double = 30
  @Option(
    help: """
      A file holding a bearer token that /stats, /history and /metrics then require \
      (Authorization: Bearer TOKEN header). / stays open (no data); /healthz stays open but without \
      the token answers only its status word.
      """)
  var statsTokenFile: String?

  func validate() throws {
    if let p = statsPort, !(0...65535).contains(p) { throw ValidationError("--stats-port \(p) is not a port (0-65535)") }
    if !(stallSeconds > 0) { throw ValidationError("--stall-seconds must be positive, got \(stallSeconds)") }
    if noStats && statsPort != nil { throw ValidationError("--no-stats and --stats-port contradict each other") }
  }

  /// The token from --stats-token-file (nil without one).
  func token() throws -> String? {
    guard let path = statsTokenFile else { return nil }
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
      throw ValidationError("--stats-token-file \(path): cannot read the file")
    }
    let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
    guard t.count >= 16, !t.contains(where: { $0.isWhitespace }) else {
      throw ValidationError("--stats-token-file \(path): the token must be one word of at least 16 characters")
    }
    return t
  }

  /// The daemon's stats settings on `host` (nil with --no-stats). Without
  /// --stats-port, `defaultPort` is tried and, if it is taken, any free port.
  func settings(host: String, defaultPort: Int) throws -> StatsSettings? {
    if noStats { return nil }
    var s = StatsSettings(host: host, port: statsPort ?? defaultPort)
    s.anyPortIfTaken = statsPort == nil
    s.stallSeconds = stallSeconds
    s.token = try token()
    return s
  }

  /// Logs where the endpoint is, and warns when it is open on a network.
  func announce(_ url: String, host: String, logger: Logger) {
    let reach = host == "0.0.0.0" ? url.replacingOccurrences(of: "0.0.0.0", with: ProcessInfo.processInfo.hostName) : url
    logger.info("stats: dashboard \(reach)/ (also /healthz, /stats, /metrics; `herd stats \(reach)`)")
    if host != "127.0.0.1" && host != "localhost" && statsTokenFile == nil {
      logger.warning("the stats endpoint on \(host) has no token: anyone who reaches it reads the run (see --stats-token-file)")
    }
  }
}
