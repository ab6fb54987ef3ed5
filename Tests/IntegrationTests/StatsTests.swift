import Foundation
import HerdStats
import Testing

extension HerdProcess {
  /// The stats URL a learner printed ("stats: dashboard http://HOST:PORT/").
  var statsURL: String? {
    guard let r = stderr.range(of: "stats: dashboard ") else { return nil }
    let url = stderr[r.upperBound...].prefix { $0 != " " && $0 != "\n" }
    return url.hasSuffix("/") ? String(url.dropLast()) : String(url)
  }
}

/// The stats endpoint of a real learner with a real worker, over loopback.
@Suite(.serialized) struct StatsIntegrationTests {
  @Test func learnerStatsShowTheWorkerAndGoStaleWhenItLeaves() throws {
    let dir = HerdBinary.tempDir("stats")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let learner = try HerdProcess([
      "learner", "--env", "CartPole-v1", "--port", "0", "--stats-port", "0", "--stall-seconds", "3", "--run-dir", dir,
      "--stop-seconds", "90",
    ])
    #expect(learner.waitFor(10) { $0.contains("stats: dashboard") })
    let url = try #require(learner.statsURL, "no stats URL in: \(learner.stderr)")
    let control = try #require(learner.controlEndpoint)

    // Before any worker: starting (200), then stalled (503) after --stall-seconds.
    let early = try HTTPClient.get(url + "/healthz")
    #expect(early.status == 200 && early.text.contains("\"starting\""), "\(early.text)")

    let worker = try HerdProcess(["worker", "--learner", control, "--envs", "8", "--seed", "5"])
    var doc: StatsDocument?
    let deadline = Date(timeIntervalSinceNow: 30)
    while Date() < deadline {
      if let r = try? HTTPClient.get(url + "/stats"), r.status == 200,
        let d = try? JSONDecoder().decode(StatsDocument.self, from: Data(r.body)),
        d.updates > 0, d.workers.first?.envSteps ?? 0 > 0
      {
        doc = d
        break
      }
      usleep(200_000)
    }
    let d = try #require(doc, "the worker never showed up in /stats; learner said: \(learner.stderr)")
    #expect(d.status == "training")
    #expect(d.env == "CartPole-v1")
    #expect(d.envStepsSampled > 0 && d.envStepsTrained > 0)
    #expect(d.workers.count == 1)
    let row = try #require(d.workers.first)
    #expect(row.state == "connected")
    #expect(row.envs == 8)
    #expect(row.pid == Int(worker.process.processIdentifier))
    #expect(d.endpoints["control"] == control)
    #expect(try HTTPClient.get(url + "/healthz").status == 200)

    let metrics = try HTTPClient.get(url + "/metrics").text
    #expect(metrics.contains("herd_worker_env_steps_total{worker=\"\(row.id)\",host=\"\(row.host)\"}"))
    #expect(metrics.contains("# TYPE herd_env_steps_sampled_total counter"))

    // `herd stats` against the same endpoint: the view and the JSON.
    let view = try HerdBinary.run(["stats", url, "--once"], timeout: 20)
    #expect(view.status == 0, "\(view.stderr)")
    #expect(view.stdout.contains("CartPole-v1") && view.stdout.contains("connected"))
    #expect(view.stdout.contains("\(row.pid)"))
    let json = try HerdBinary.run(["stats", url, "--json", "--once"], timeout: 20)
    #expect(json.status == 0)
    let parsed = try JSONDecoder().decode(StatsDocument.self, from: Data(json.stdout.utf8))
    #expect(parsed.workers.first?.id == row.id)

    // The worker leaves cleanly: its row says so, and with no fragments for
    // --stall-seconds the learner reports itself stalled.
    worker.signal(SIGTERM)
    #expect(worker.wait(10) == 0)
    var health: HTTPClient.Reply?
    let until = Date(timeIntervalSinceNow: 15)
    while Date() < until {
      health = try? HTTPClient.get(url + "/healthz")
      if health?.status == 503 { break }
      usleep(250_000)
    }
    #expect(health?.status == 503)
    #expect(health?.text.contains("no fragments for") == true, "\(health?.text ?? "")")
    let after = try JSONDecoder().decode(StatsDocument.self, from: Data(try HTTPClient.get(url + "/stats").body))
    #expect(after.workers.first?.state == "left")
    #expect(after.status == "stalled")

    learner.signal(SIGTERM)
    #expect(learner.wait(20) == 0)
  }

  @Test func statsCommandErrorsNameTheProblem() throws {
    let bad = try HerdBinary.run(["stats", "ftp://x"], timeout: 10)
    #expect(bad.status != 0 && bad.stderr.contains("not an http:// URL"))
    let refused = try HerdBinary.run(["stats", "http://127.0.0.1:1", "--once"], timeout: 10)
    #expect(refused.status == 1 && refused.stderr.contains("cannot reach http://127.0.0.1:1/stats"))
    let taken = try HerdBinary.run(["learner", "--port", "0", "--stats-port", "70000"], timeout: 10)
    #expect(taken.status != 0 && taken.stderr.contains("--stats-port 70000"))
  }
}
