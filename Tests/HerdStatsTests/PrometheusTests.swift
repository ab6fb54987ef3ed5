import Foundation
@testable import HerdRL
import Testing

@testable import HerdStats

/// Prometheus' own parser (the prometheus_client package; `make test` installs
/// Debian's python3-prometheus-client). Without it the test is skipped, unless
/// HERD_REQUIRE_TOOLS=1 (set by `make test`), where a missing parser fails.
enum PrometheusParser {
  static let script = """
    import json, sys
    from prometheus_client.parser import text_string_to_metric_families
    out = []
    for f in text_string_to_metric_families(sys.stdin.read()):
        out.append({"name": f.name, "type": f.type, "samples": [[s.name, s.labels, s.value] for s in f.samples]})
    print(json.dumps(out))
    """

  static let python: String? = {
    // The project's virtualenv (make test sets HERD_PYTHON), else a system Python that has it.
    let venv = ProcessInfo.processInfo.environment["HERD_PYTHON"].map { [$0] } ?? []
    for p in venv + ["/usr/bin/python3", "/usr/local/bin/python3"] where FileManager.default.isExecutableFile(atPath: p) {
      if (try? run(p, ["-c", "import prometheus_client"], input: ""))?.status == 0 { return p }
    }
    return nil
  }()

  static var required: Bool { ProcessInfo.processInfo.environment["HERD_REQUIRE_TOOLS"] == "1" }

  static func run(_ exe: String, _ args: [String], input: String) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("herd-prom-\(UUID().uuidString)").path
    _ = FileManager.default.createFile(atPath: base + ".in", contents: Data(input.utf8))
    _ = FileManager.default.createFile(atPath: base + ".out", contents: nil)
    _ = FileManager.default.createFile(atPath: base + ".err", contents: nil)
    defer { for s in [".in", ".out", ".err"] { try? FileManager.default.removeItem(atPath: base + s) } }
    p.standardInput = FileHandle(forReadingAtPath: base + ".in")
    p.standardOutput = FileHandle(forWritingAtPath: base + ".out")
    p.standardError = FileHandle(forWritingAtPath: base + ".err")
    try p.run()
    p.waitUntilExit()
    let out = (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? ""
    let err = (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? ""
    return (p.terminationStatus, out, err)
  }

  /// The families as the parser reads them: name -> (type, samples).
  static func parse(_ text: String) throws -> [String: (type: String, samples: [(String, [String: String], Double)])] {
    let python = try #require(python, "no python3 with prometheus_client (make test installs it into .venv)")
    let r = try run(python, ["-c", script], input: text)
    #expect(r.status == 0, "prometheus_client could not parse the text: \(r.err)")
    let families = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]])
    var out: [String: (type: String, samples: [(String, [String: String], Double)])] = [:]
    for f in families {
      let samples = (f["samples"] as? [[Any]] ?? []).map {
        ($0[0] as? String ?? "", $0[1] as? [String: String] ?? [:], ($0[2] as? NSNumber)?.doubleValue ?? .nan)
      }
      out[f["name"] as? String ?? ""] = (f["type"] as? String ?? "", samples)
    }
    return out
  }
}

@Suite struct PrometheusTests {
  @Test(.enabled(if: PrometheusParser.python != nil || PrometheusParser.required))
  func metricsParseWithPrometheusOwnParser() throws {
    let board = StatusBoard()
    board.publish(sampleStatus())
    let (doc, health) = makeService(board: board).document()
    let text = MetricsExporter().render(doc, health: health)
    let families = try PrometheusParser.parse(text)

    // Counters are counters (the parser strips _total from the family name).
    #expect(families["herd_env_steps_sampled"]?.type == "counter")
    #expect(families["herd_env_steps_sampled"]?.samples.first?.0 == "herd_env_steps_sampled_total")
    #expect(families["herd_env_steps_sampled"]?.samples.first?.2 == 123_456)
    #expect(families["herd_updates"]?.type == "counter")
    #expect(families["herd_episodes"]?.samples.first?.2 == 901)
    // Gauges are gauges, with the document's values.
    #expect(families["herd_policy_version"]?.type == "gauge")
    #expect(families["herd_policy_version"]?.samples.first?.2 == 77)
    #expect(families["herd_episode_return_mean"]?.samples.first?.2 == 212.5)
    #expect(families["herd_policy_lag_p95"]?.samples.first?.2 == 7)
    #expect(families["herd_up"]?.samples.first?.2 == 1)
    let losses = families["herd_loss"]?.samples ?? []
    #expect(losses.first { $0.1["term"] == "baseline" }?.2 == 3.5)
    let dropped = families["herd_dropped_messages"]?.samples ?? []
    #expect(dropped.first { $0.1["reason"] == "stale_policy" }?.2 == 6)
    // Per-worker labels, escaped and read back intact.
    let steps = families["herd_worker_env_steps"]?.samples ?? []
    #expect(steps.count == 2)
    #expect(steps.first { $0.1["worker"] == "1" }?.1["host"] == "node-a")
    #expect(steps.first { $0.1["worker"] == "1" }?.2 == 60_000)
    #expect(steps.contains { $0.1["host"] == "odd\"host\\name" })
    // A worker without a return has no sample rather than a made-up one.
    #expect(families["herd_worker_mean_return"]?.samples.count == 1)
    let states = families["herd_workers"]?.samples ?? []
    #expect(states.first { $0.1["state"] == "lost" }?.2 == 1)
  }

  @Test(.enabled(if: PrometheusParser.python != nil || PrometheusParser.required))
  func metricsBeforeTheFirstUpdateParse() throws {
    let (doc, health) = makeService(board: StatusBoard()).document()
    let families = try PrometheusParser.parse(MetricsExporter().render(doc, health: health))
    #expect(families["herd_env_steps_sampled"]?.samples.first?.2 == 0)
    #expect(families["herd_episode_return_mean"] == nil || families["herd_episode_return_mean"]?.samples.isEmpty == true)
  }
}

@Suite struct StatusBoardTests {
  /// The history stays under its capacity over a long run and keeps its ends in order.
  @Test func historyIsBoundedAndOrdered() {
    let board = StatusBoard(capacity: 64)
    for i in 0..<5000 {
      var s = sampleStatus(envSteps: i * 100)
      s.wallSeconds = Double(i)
      board.publish(s)
    }
    let h = board.history
    #expect(h.count < 64 && h.count >= 16)
    #expect(h.first?.wallSeconds == 0)
    #expect(zip(h, h.dropFirst()).allSatisfy { $0.wallSeconds < $1.wallSeconds })
    #expect((h.last?.wallSeconds ?? 0) > 4000, "recent points are kept")
  }

  @Test func sparklines() {
    #expect(Sparkline.render([0, 1, 2, 3, 4, 5, 6, 7], width: 8) == "▁▂▃▄▅▆▇█")
    #expect(Sparkline.render([0, 0, 7, 7], width: 2) == "▁█")
    #expect(Sparkline.render([nil, 1, 2], width: 3) == " ▁█")
    #expect(Sparkline.render([5, 5], width: 4) == "▄▄")
    #expect(Sparkline.render([], width: 4) == "")
  }

  /// The terminal view shows the numbers and one row per worker.
  @Test func terminalView() throws {
    let board = StatusBoard()
    board.publish(sampleStatus())
    let service = makeService(board: board)
    let doc = service.document().0
    let hist = try JSONDecoder().decode(HistoryDocument.self, from: Data(service.historyJSON()))
    let text = StatsView.render(doc, history: hist)
    #expect(text.contains("[training]"))
    #expect(text.contains("123.5k sampled"))
    #expect(text.contains("212.50 mean"))
    #expect(text.contains("stale_policy 6"))
    let rows = text.split(separator: "\n").filter { $0.contains("node-a") || $0.contains("odd\"host") }
    #expect(rows.count == 2)
    #expect(rows[0].hasSuffix("connected") && rows[1].hasSuffix("lost"))
    #expect(!text.contains("info "), "no episode_info_keys: no info line")
  }

  /// `episode_info_keys` means: a line of the terminal view, and a gauge per key
  /// in /metrics (none for a key no episode had yet).
  @Test func episodeInfoInTheViewAndTheMetrics() throws {
    let board = StatusBoard()
    var status = sampleStatus()
    status.stats.episodeInfo = [
      RunStats.InfoMean(key: "is_success", mean: 0.75, episodes: 100), RunStats.InfoMean(key: "never", mean: nil, episodes: 0),
    ]
    board.publish(status)
    let service = makeService(board: board)
    let doc = service.document().0
    #expect(doc.episodeInfo.count == 2 && doc.episodeInfo["is_success"] == 0.75 && doc.episodeInfo["never"] == .some(nil))
    let text = StatsView.render(doc, history: nil)
    #expect(text.contains("info        is_success 0.75   never -   (means over the last 100 episodes)"), "\(text)")
    let metrics = MetricsExporter().render(doc, health: service.document().1)
    #expect(metrics.contains(#"herd_episode_info_mean{key="is_success"} 0.75"#), "\(metrics)")
    // /history has the curve of each key an episode had.
    let hist = try JSONDecoder().decode(HistoryDocument.self, from: Data(service.historyJSON()))
    #expect(hist.episodeInfo == ["is_success": [0.75]], "\(hist.episodeInfo)")
    #expect(!metrics.contains(#"key="never""#))
  }

  /// An evaluation of the learner's weights: a line of the terminal view, its
  /// gauges in /metrics, the objects of /stats, and a column of /history (null at
  /// the points before it).
  @Test func evaluationsInTheViewTheMetricsAndTheHistory() throws {
    let board = StatusBoard()
    board.publish(sampleStatus())
    var status = sampleStatus()
    var latest = EvaluationFigures(
      policyVersion: 40, envSteps: 250_112, wallSeconds: 30, seconds: 2.5, episodes: 10, greedy: true, returnMean: 431.5,
      returnStd: 12, returnMin: 402, returnMax: 500, lengthMean: 431.5)
    latest.info = ["is_success": 0.9, "never": nil]
    var best = latest
    (best.policyVersion, best.envSteps, best.returnMean) = (30, 200_000, 480.25)
    (status.evaluation, status.bestEvaluation, status.evaluations) = (latest, best, 3)
    board.publish(status)
    let service = makeService(board: board)
    let doc = service.document().0
    #expect(doc.evaluation == latest && doc.bestEvaluation == best && doc.evaluations == 3)
    #expect(doc.evaluationReturnMean == 431.5 && doc.evaluationEnvSteps == 250_112)
    let object = try #require(try JSONSerialization.jsonObject(with: Data(doc.json())) as? [String: Any])
    let l = try #require(object["evaluation/latest"] as? [String: Any])
    #expect(l["return_mean"] as? Double == 431.5 && l["env_steps"] as? Int == 250_112 && l["greedy"] as? Bool == true)
    #expect((l["info"] as? [String: Any])?["never"] is NSNull)
    let text = StatsView.render(doc, history: nil)
    #expect(
      text.contains(
        "evaluation  431.50 mean (402.00 .. 500.00 over 10 greedy episodes) at 250.1k env steps   best 480.25 at 200.0k env steps   evaluations 3"
      ), "\(text)")
    let metrics = MetricsExporter().render(doc, health: service.document().1)
    for line in [
      "herd_evaluation_return_mean 431.5", "herd_evaluation_return_best 480.25", "herd_evaluations_total 3",
      "herd_evaluation_env_steps 250112", #"herd_evaluation_info_mean{key="is_success"} 0.9"#,
    ] {
      #expect(metrics.contains(line), "\(line): \(metrics)")
    }
    #expect(!metrics.contains(#"herd_evaluation_info_mean{key="never"}"#))
    let hist = try JSONDecoder().decode(HistoryDocument.self, from: Data(service.historyJSON()))
    #expect(hist.evaluationReturn == [nil, 431.5], "\(String(describing: hist.evaluationReturn))")
    // Without evaluations: no line, no gauge but the count.
    let plain = makeService(board: { let b = StatusBoard(); b.publish(sampleStatus()); return b }()).document()
    #expect(!StatsView.render(plain.0, history: nil).contains("evaluation"))
    let none = MetricsExporter().render(plain.0, health: plain.1)
    #expect(none.contains("herd_evaluations_total 0") && !none.contains("herd_evaluation_return_mean"), "\(none)")
  }
}
