import ArgumentParser
import Foundation
import HerdStats

/// `herd stats URL`: the learner's stats endpoint in a terminal.
struct StatsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "stats",
    abstract: "Watch a learner: a live terminal view of its stats endpoint.",
    discussion: """
      Reads URL/stats and URL/history every --interval seconds and redraws: the run's
      state and why, steps and steps/s, returns, losses, policy lag, drops,
      sparklines of the mean return and steps/s, and one row per worker. The learner
      prints its URL at start ("stats: dashboard http://..."). Ctrl-C quits. --once
      prints one view and exits (also what happens when stdout is not a terminal);
      --json prints the /stats document instead (one line per interval, or once,
      pretty, with --once). Exit status 1 when the endpoint cannot be read.

      Examples:
        herd stats http://127.0.0.1:5558
        herd stats http://10.0.0.5:5558 --json --once | jq '."episode_return/mean"'
      """
  )

  @Argument(help: "The learner's stats URL, http://HOST:PORT.")
  var url: String
  @Flag(help: "Print one view (or one JSON document) and exit.")
  var once = false
  @Flag(help: "Print the /stats JSON instead of the view.")
  var json = false
  @Option(parsing: .unconditional, help: "Seconds between refreshes.")
  var interval: Double = 2
  @Option(help: "A file holding the bearer token of an endpoint started with --stats-token-file.")
  var tokenFile: String?

  func validate() throws {
    if !(interval >= 0.2) { throw ValidationError("--interval must be at least 0.2 seconds, got \(interval)") }
    do { _ = try HTTPClient.parse(url: url) } catch { throw ValidationError("\(error)") }
  }

  func run() throws {
    let base = url.hasSuffix("/") ? String(url.dropLast()) : url
    let token = try tokenFile.map { path -> String in
      guard let t = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw ValidationError("--token-file \(path): cannot read the file")
      }
      return t.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    let live = !once && isatty(STDOUT_FILENO) == 1
    if !live && !json || once {
      try show(base, token: token, live: false, pretty: true)
      return
    }
    StopSignals.install(interruptFlag, announce: false)
    if live && !json { print("\u{1B}[?25l", terminator: "") }  // hide the cursor
    defer { if live && !json { print("\u{1B}[?25h", terminator: "") } }
    while !interruptFlag.isSet {
      do {
        try show(base, token: token, live: live, pretty: false)
      } catch {
        if live { print("\u{1B}[H\u{1B}[2J", terminator: "") }
        print("cannot read \(base): \(error); retrying every \(interval) s (Ctrl-C quits)")
      }
      fflush(nil)
      let end = Date(timeIntervalSinceNow: interval)
      interruptFlag.wait(seconds: end.timeIntervalSinceNow)
    }
  }

  /// Fetches and prints one view or document.
  func show(_ base: String, token: String?, live: Bool, pretty: Bool) throws {
    let reply = try fetch(base + "/stats", token: token)
    if json {
      if pretty {
        writeWhole(1, reply.body)
      } else {
        let object = try JSONSerialization.jsonObject(with: Data(reply.body))
        let line = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        print(String(decoding: line, as: UTF8.self))
      }
      return
    }
    let doc = try JSONDecoder().decode(StatsDocument.self, from: Data(reply.body))
    let history = try? JSONDecoder().decode(HistoryDocument.self, from: Data(try fetch(base + "/history", token: token).body))
    let width = Int(ProcessInfo.processInfo.environment["COLUMNS"] ?? "") ?? 100
    let text = StatsView.render(doc, history: history, width: width)
    print((live ? "\u{1B}[H\u{1B}[2J" : "") + text, terminator: "")
  }

  func fetch(_ url: String, token: String?) throws -> HTTPClient.Reply {
    let reply: HTTPClient.Reply
    do {
      reply = try HTTPClient.get(url, token: token)
    } catch {
      throw CommandFailure("cannot reach \(url): \(error) (is the learner running? it prints its stats URL at start)")
    }
    guard reply.status == 200 else {
      let hint = reply.status == 401 ? " (the endpoint needs a token: --token-file)" : ""
      throw CommandFailure("\(url) answered \(reply.status)\(hint): \(reply.text.prefix(200))")
    }
    return reply
  }
}
