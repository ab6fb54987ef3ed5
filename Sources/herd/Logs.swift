import ArgumentParser
import Dispatch
import Foundation
import HerdRL
import Logging
import Synchronization

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// `--log-level` and `--quiet`, shared by every long-running command.
struct LogOptions: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "Lowest level logged to stderr: trace, debug, info (progress lines, joins), notice, warning, error, critical.",
      valueName: "level"))
  var logLevel: Logger.Level = .info
  @Flag(help: "Only warnings and errors (--log-level warning).")
  var quiet = false

  var level: Logger.Level { quiet ? max(logLevel, .warning) : logLevel }

  /// Sends swift-log's output to stderr at this level and returns the command's logger.
  func bootstrap(label: String) -> Logger {
    let level = self.level
    LoggingSystem.bootstrap { name in
      var h = StderrLogHandler(label: name)
      h.logLevel = level
      return h
    }
    return Logger(label: label)
  }
}

/// Writes each log message as one line on stderr (above the status bar when one
/// is shown): the message alone at info and notice, `warning: ` / `error: ` and
/// so on before it at other levels. Metadata, when any, follows as key=value.
struct StderrLogHandler: LogHandler {
  let label: String
  var logLevel: Logger.Level = .info
  var metadata: Logger.Metadata = [:]

  subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }

  func log(event: LogEvent) {
    var line = Self.prefix(event.level) + event.message.description
    let merged = metadata.merging(event.metadata ?? [:]) { $1 }
    if !merged.isEmpty { line += " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
    printError(line)
  }

  static func prefix(_ level: Logger.Level) -> String {
    switch level {
    case .info, .notice: return ""
    case .trace: return "trace: "
    case .debug: return "debug: "
    case .warning: return "warning: "
    case .error: return "error: "
    case .critical: return "critical: "
    }
  }
}

/// SIGINT, SIGTERM and SIGHUP for commands: the first sets `flag` (a clean stop) and,
/// with `announce`, says so on stderr; another one at least ``graceSeconds``
/// later exits at once with status 130. One sooner belongs to the same stop:
/// `timeout` signals the process and then its process group (a supervisor may do
/// the same), so one request can arrive twice within microseconds; taken as a
/// second, it cut the checkpoint being written.
/// Signals a test runner or a parent left blocked are unblocked first, or SIGTERM
/// would never arrive.
enum StopSignals {
  nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []
  /// When the first signal came (`DispatchTime` nanoseconds), nil before it.
  private static let first = Mutex<UInt64?>(nil)
  /// Seconds after the first signal from which another one exits at once.
  static let graceSeconds = 1.0

  static func install(_ flag: StopFlag, announce: Bool = true) {
    // SIGHUP (the terminal closed: an ssh session dropped) is a stop too, with the
    // final checkpoint, unless the process was started to ignore it (nohup).
    var hangup = sigaction()
    let hangupIgnored =
      sigaction(SIGHUP, nil, &hangup) == 0 && unsafeBitCast(hangup.__sigaction_handler, to: Int.self) == 1  // SIG_IGN
    let signals = hangupIgnored ? [SIGINT, SIGTERM] : [SIGINT, SIGTERM, SIGHUP]
    // A reader that went away (`herd train | head`, a log pipe whose reader died)
    // must not kill the run before its final checkpoint: writes to it fail instead.
    signal(SIGPIPE, SIG_IGN)
    var set = sigset_t()
    sigemptyset(&set)
    for sig in signals { sigaddset(&set, sig) }
    pthread_sigmask(SIG_UNBLOCK, &set, nil)
    for sig in signals {
      signal(sig, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
      source.setEventHandler {
        let now = DispatchTime.now().uptimeNanoseconds
        let since = first.withLock { first -> UInt64? in
          guard let first else {
            first = now
            return nil
          }
          return now &- first
        }
        guard let since else {
          flag.set()
          if announce {
            let name = sig == SIGINT ? "Ctrl-C (SIGINT)" : sig == SIGHUP ? "SIGHUP (the terminal closed)" : "SIGTERM"
            printError("\(name): stopping cleanly; another signal a second from now or later quits at once")
          }
          return
        }
        if Double(since) >= graceSeconds * 1e9 { _exit(130) }
      }
      source.resume()
      sources.append(source)
    }
  }
}
