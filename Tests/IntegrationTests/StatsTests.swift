import Foundation
import HerdStats
import HerdTestSupport
import Testing

/// The stats endpoint of a real learner with a real worker, over loopback.
@Suite(.serialized) struct StatsIntegrationTests {
  @Test func learnerStatsShowTheWorkerAndGoStaleWhenItLeaves() throws {
    let dir = HerdBinary.tempDir("stats")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let learner = try HerdProcess([
      "learner", "--env", "CartPole-v1", "--port", "0", "--stats-port", "0", "--stall-seconds", "3", "--run-dir", dir,
      "--stop-seconds", "90",
    ])
    #expect(learner.waitReady(10), "\(learner.stderr)")
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

  /// A worker given the learner's stats port or fragment port instead of its
  /// control port says which mistake it looks like, instead of "no answer" alone.
  /// A --learner that is no TCP address, or whose port cannot exist, is refused at
  /// once by name (a port past 65535 was tried for ever, "no answer").
  @Test func aLearnerAddressThatCannotBeIsRefused() throws {
    for (address, expected) in [
      ("foo", "--learner foo is not tcp://HOST:PORT"), ("tcp://127.0.0.1", "is not tcp://HOST:PORT"),
      ("tcp://127.0.0.1:99999", "--learner tcp://127.0.0.1:99999: port 99999 is not a TCP port (1 to 65535"),
      ("tcp://127.0.0.1:0", "port 0 is not a TCP port"),
    ] {
      let r = try HerdBinary.run(["worker", "--learner", address], timeout: 10)
      #expect(r.status == 1 && r.stderr.contains(expected) && !r.stderr.contains("no answer"), "\(address): \(r.stderr)")
    }
  }

  @Test func aWorkerPointedAtTheWrongPortSaysSo() throws {
    let dir = HerdBinary.tempDir("wrong-port")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let base = freePortBlock(4)
    let learner = try HerdProcess([
      "learner", "--env", "CartPole-v1", "--port", String(base), "--stats-port", String(base + 3), "--run-dir", dir,
      "--stop-seconds", "60",
    ])
    #expect(learner.waitReady(10), "\(learner.stderr)")
    let stats = try HerdProcess(["worker", "--learner", "tcp://127.0.0.1:\(base + 3)"])
    let fragments = try HerdProcess(["worker", "--learner", "tcp://127.0.0.1:\(base + 1)"])
    #expect(
      stats.waitFor(15) {
        $0.contains(
          "tcp://127.0.0.1:\(base + 3) does not speak ZeroMQ (the handshake broke off): is it the learner's control port (--port), not its stats port?"
        )
      }, "\(stats.stderr)")
    #expect(
      fragments.waitFor(15) {
        $0.contains(
          "tcp://127.0.0.1:\(base + 1) closed the connection during the handshake: is it the learner's control port (--port)?")
      }, "\(fragments.stderr)")
    for p in [stats, fragments] {
      p.signal(SIGTERM)
      #expect(p.wait(10) == 0, "\(p.stderr)")
    }
    learner.signal(SIGTERM)
    #expect(learner.wait(20) == 0, "\(learner.stderr.suffix(800))")
  }

  /// A learner that stops while a worker connects breaks off one handshake and
  /// then refuses connections: the worker does not call that address "not
  /// ZeroMQ" or "not a control port" (it says so only when a second handshake
  /// fails the same way, as at a stats or fragment port above).
  @Test func oneBrokenHandshakeIsNotCalledAWrongPort() throws {
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    try #require(listener >= 0)
    var yes: Int32 = 1
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 }
    }
    try #require(bound && listen(listener, 4) == 0)
    let port = Int(UInt16(bigEndian: address.sin_port))
    let worker = try HerdProcess(["worker", "--learner", "tcp://127.0.0.1:\(port)"])
    // One connection: read the start of its greeting, then close it and the port.
    let connection = accept(listener, nil, nil)
    var greeting = [UInt8](repeating: 0, count: 10)
    _ = read(connection, &greeting, greeting.count)
    close(connection)
    close(listener)
    #expect(greeting.first == 0xFF, "a ZeroMQ greeting starts with 0xFF")
    #expect(worker.waitFor(8) { $0.contains("no answer from") }, "\(worker.stderr)")
    worker.signal(SIGTERM)
    #expect(worker.wait(10) == 0, "\(worker.stderr)")
    #expect(!worker.stderr.contains("does not speak ZeroMQ"), "\(worker.stderr)")
    #expect(!worker.stderr.contains("closed the connection during the handshake"), "\(worker.stderr)")
  }

  /// A --learner whose host name does not resolve is named as such (libzmq alone
  /// retries it silently), and the worker goes on trying until stopped.
  @Test func aLearnerHostThatDoesNotResolveIsSaid() throws {
    let worker = try HerdProcess(["worker", "--learner", "tcp://no-such-learner.invalid:5555"])
    #expect(
      worker.waitFor(15) {
        $0.contains("the learner's host no-such-learner.invalid does not resolve (")
          && $0.contains("is --learner tcp://no-such-learner.invalid:5555 right?")
      }, "\(worker.stderr)")
    worker.signal(SIGTERM)
    #expect(worker.wait(10) == 0, "\(worker.stderr)")
  }

  /// A learner's port that another program holds, a host that is not this
  /// machine's, and ports past 65535 are errors that name the option.
  @Test func learnerEndpointErrorsNameTheOption() throws {
    let base = freePortBlock()
    let root = HerdBinary.tempDir("bind")
    defer { try? FileManager.default.removeItem(atPath: root) }
    var runs = 0
    var learner: [String] {
      runs += 1
      return ["learner", "--env", "CartPole-v1", "--no-stats", "--run-dir", root + "/\(runs)"]
    }
    for (held, role, option) in [(0, "control", "(--port)"), (1, "fragment", "(--fragment-port, default --port + 1)")] {
      let fd = try #require(holdPort(base + held))
      defer { close(fd) }
      let r = try HerdBinary.run(learner + ["--port", String(base)], timeout: 20)
      #expect(
        r.status == 1 && r.stderr.contains("Error: the \(role) port \(base + held) \(option) is in use on 127.0.0.1:")
          && r.stderr.contains("or --port 0 for free ports"), "\(r.stderr.suffix(600))")
      #expect(!FileManager.default.fileExists(atPath: root + "/\(runs)"), "a learner that cannot serve makes no run folder")
    }
    let host = try HerdBinary.run(learner + ["--host", "10.255.255.1", "--port", "0"], timeout: 20)
    #expect(
      host.status == 1 && host.stderr.contains("Error: --host 10.255.255.1 is not an address of this machine ("),
      "\(host.stderr.suffix(600))")
    #expect(!FileManager.default.fileExists(atPath: root + "/\(runs)"), "a learner that cannot serve makes no run folder")
    let high = try HerdBinary.run(learner + ["--port", "65534"], timeout: 20)
    #expect(
      high.status == 64 && high.stderr.contains("--port 65534: the weights port would be 65536 (port+2), past 65535"),
      "\(high.stderr.suffix(600))")
  }
}

/// CURVE between real processes: an authorised worker trains, a worker with an
/// unknown key and one without keys are refused and cannot push a single fragment.
@Suite(.serialized) struct CurveIntegrationTests {
  @Test func onlyTheAuthorisedWorkerTrains() throws {
    let dir = HerdBinary.tempDir("curve")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    for (name, out) in [("learner", dir + "/keys"), ("w1", dir + "/keys/workers"), ("intruder", dir + "/keys/other")] {
      let r = try HerdBinary.run(["keys", "generate", "--name", name, "--out", out], timeout: 10)
      #expect(r.status == 0, "\(r.stderr)")
    }
    let learner = try HerdProcess([
      "learner", "--env", "CartPole-v1", "--port", "0", "--stats-port", "0", "--run-dir", dir + "/run",
      "--curve-secret-key", dir + "/keys/learner.key", "--authorized-keys", dir + "/keys/workers", "--stop-seconds", "60",
    ])
    #expect(learner.waitReady(10), "\(learner.stderr)")
    let url = try #require(learner.statsURL)
    let control = try #require(learner.controlEndpoint)
    let keys = ["--learner-public-key", dir + "/keys/learner.pub"]
    let intruder = try HerdProcess(["worker", "--learner", control, "--curve-secret-key", dir + "/keys/other/intruder.key"] + keys)
    let plain = try HerdProcess(["worker", "--learner", control])
    // Another learner's public key: this learner cannot read the hello.
    let lost = try HerdProcess([
      "worker", "--learner", control, "--curve-secret-key", dir + "/keys/workers/w1.key", "--learner-public-key",
      dir + "/keys/other/intruder.pub",
    ])
    #expect(intruder.waitFor(15) { $0.contains("refused the handshake (authentication, status 400)") }, "\(intruder.stderr)")
    #expect(
      plain.waitFor(15) { $0.contains("refused the handshake (CURVE): it requires CURVE keys (--learner-public-key") },
      "\(plain.stderr)")
    #expect(
      lost.waitFor(15) { $0.contains("broke off: is --learner-public-key that learner's public key") }, "\(lost.stderr)")
    for w in [plain, lost] {
      w.signal(SIGTERM)
      _ = w.wait(10)
    }
    let good = try HerdProcess(["worker", "--learner", control, "--curve-secret-key", dir + "/keys/workers/w1.key"] + keys)

    var doc: StatsDocument?
    let deadline = Date(timeIntervalSinceNow: 30)
    while Date() < deadline {
      if let r = try? HTTPClient.get(url + "/stats"), let d = try? JSONDecoder().decode(StatsDocument.self, from: Data(r.body)),
        d.updates >= 20
      {
        doc = d
        break
      }
      usleep(250_000)
    }
    let d = try #require(doc, "no training with the authorised worker: \(learner.stderr)")
    #expect(d.workers.count == 1, "only the authorised worker has a session")
    #expect(d.workers.first?.pid == Int(good.process.processIdentifier))
    #expect((d.dropped["unauthorized"] ?? 0) >= 1)
    #expect(d.dropped["unknown_worker"] == 0 && d.dropped["undecodable"] == 0, "nothing from the refused workers got in")
    #expect(learner.stderr.contains("is not among the authorized keys"))
    #expect(!intruder.stderr.contains("welcomed"))
    #expect(!plain.stderr.contains("welcomed"))
    // A worker whose keys do not go together is a usage error naming both options.
    let half = try HerdBinary.run(["worker", "--learner", control, "--curve-secret-key", dir + "/keys/workers/w1.key"], timeout: 10)
    #expect(half.status != 0 && half.stderr.contains("--learner-public-key and --curve-secret-key go together"))
    for p in [intruder, plain, good] { p.signal(SIGTERM) }
    learner.signal(SIGTERM)
    #expect(learner.wait(20) == 0)
  }
}

/// The dashboard's script in a real browser: headless Chromium loads the page from a
/// learner with a worker, runs its script, and the DOM it leaves holds the worker
/// row, the status badge and drawn charts. Skipped (saying so) without Chromium,
/// which `make test` does not install (it is large); the screenshot in docs/ was
/// checked by eye.
@Suite(.serialized) struct DashboardBrowserTests {
  static let chromium = which("chromium") ?? which("chromium-browser")

  /// The dashboard at `url` as headless Chromium leaves it after 4 s of its time.
  static func dom(_ url: String, profile: String) throws -> String {
    let r = try HerdBinary.runCommand(
      try #require(chromium),
      [
        "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", "--virtual-time-budget=4000",
        "--user-data-dir=\(profile)", url + "/",
      ], timeout: 90)
    #expect(r.status == 0, "\(r.stderr.suffix(500))")
    return r.stdout
  }

  @Test(.enabled(if: chromium != nil, "needs Debian's chromium for a headless browser"))
  func dashboardRendersInHeadlessChromium() throws {
    let dir = HerdBinary.tempDir("dash")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let learner = try HerdProcess([
      "learner", "--env", "CartPole-v1", "--port", "0", "--stats-port", "0", "--run-dir", dir + "/run",
      "--stop-seconds", "60", "--set", "evaluation_interval_env_steps=5000", "--set", "evaluation_episodes=4",
    ])
    #expect(learner.waitReady(10), "\(learner.stderr)")
    let url = try #require(learner.statsURL)
    let worker = try HerdProcess(["worker", "--learner", try #require(learner.controlEndpoint), "--envs", "8"])
    #expect(
      learner.waitForStats(30) { $0.updates > 0 && $0.envStepsSampled > 0 && ($0.evaluations ?? 0) >= 1 },
      "\(learner.stderr)")
    sleep(3)  // a few history points
    let dom = try Self.dom(url, profile: dir + "/profile")
    #expect(dom.contains("class=\"badge training\""), "the status badge is set from /stats")
    #expect(dom.contains("<td>\(worker.process.processIdentifier)</td>"), "the worker row is filled in")
    #expect(dom.contains("connected"))
    #expect(dom.contains("<div id=\"error\" style=\"display: none;\"></div>"), "no fetch error shown")
    #expect(dom.contains("CartPole-v1"))
    #expect(
      dom.range(of: #"<section id="s-info" style="display: ?none;?">"#, options: .regularExpression) != nil,
      "no episode_info_keys: no info chart")
    #expect(dom.contains("</i>mean return</span>") && dom.contains("</i>evaluation</span>"), "the evaluations' line")
    #expect(dom.contains("<td style=\"text-align:left\">evaluation</td>"), "and their figures")
    worker.signal(SIGTERM)
    learner.signal(SIGTERM)
    _ = worker.wait(10)
    #expect(learner.wait(20) == 0)
  }

  /// With episode_info_keys the dashboard shows their chart, one line per key.
  @Test(.enabled(if: chromium != nil && (envHostPython != nil || requireTools), "needs chromium and herd_env"))
  func dashboardChartsEpisodeInfo() throws {
    let dir = HerdBinary.tempDir("dashinfo")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let learner = try HerdProcess([
      "learner", "--env", "gym:herd_env.testing_envs:HerdTest/Scored-v0", "--port", "0", "--stats-port", "0",
      "--run-dir", dir + "/run", "--stop-seconds", "60", "--set", #"episode_info_keys=["is_success", "steps"]"#,
    ])
    #expect(learner.waitReady(10), "\(learner.stderr)")
    let url = try #require(learner.statsURL)
    let worker = try HerdProcess([
      "worker", "--learner", try #require(learner.controlEndpoint), "--envs", "8", "--python", envHostPython ?? "python3",
    ])
    #expect(learner.waitForStats(30) { $0.episodeInfo["steps"] != nil }, "\(learner.stderr)\n\(worker.stderr)")
    sleep(3)  // a few history points
    let dom = try Self.dom(url, profile: dir + "/profile")
    #expect(dom.contains("<section id=\"s-info\" style=\"\">"), "\(dom.prefix(3000))")
    #expect(dom.contains("</i>is_success</span>") && dom.contains("</i>steps</span>"), "the legend names the keys")
    #expect(dom.contains("<td style=\"text-align:left\">info steps</td><td style=\"text-align:left\">5.00</td>"))
    worker.signal(SIGTERM)
    learner.signal(SIGTERM)
    _ = worker.wait(10)
    #expect(learner.wait(20) == 0)
  }
}
