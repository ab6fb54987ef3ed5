import Foundation
import HerdStats
import HerdTestSupport
import HerdWire
import Testing

/// A learner's file descriptors: three per worker, so its open-file limit bounds
/// how many workers it can hold.
@Suite(.serialized) struct OpenFilesTests {
  /// This test process's hard open-file limit (its children inherit it).
  static var hardLimit: Int {
    var r = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &r)
    return r.rlim_max == rlim_t.max ? Int.max : Int(clamping: r.rlim_max)
  }

  /// Started with a soft limit of 100 under a higher hard one (a Debian shell's
  /// 1024 under 1048576, in small), the learner raises its soft limit to the hard
  /// one and says so.
  @Test func aLearnerRaisesItsSoftOpenFileLimit() throws {
    let hard = Self.hardLimit
    try #require(hard > 100, "this test needs a hard open-file limit above 100, not \(hard)")
    let learner = try HerdProcess(
      [
        "learner", "--env", "StatelessCartPole-v1", "--port", "0", "--stop-seconds", "1", "--no-stats",
        "--run-dir", HerdBinary.tempDir("openfiles-raise"),
      ], openFiles: (soft: 100, hard: nil))
    #expect(learner.wait(60) == 0, "\(learner.stderr)")
    #expect(
      learner.stderr.contains("open-file limit raised from 100 to \(min(hard, 1 << 20))"), "\(learner.stderr)")
  }

  /// With soft and hard limits of 100, connections that bring the learner's open
  /// files within 16 of the limit get a warning that names the numbers and the
  /// remedy; /stats and /metrics show both; the learner then stops cleanly.
  @Test func aLearnerNearItsOpenFileLimitSaysSo() throws {
    let limit = 100
    let learner = try HerdProcess(
      [
        "learner", "--env", "StatelessCartPole-v1", "--port", "0", "--stats-port", "0", "--stop-seconds", "60",
        "--run-dir", HerdBinary.tempDir("openfiles-warn"),
      ], openFiles: (soft: limit, hard: limit))
    defer { _ = learner.wait(1) }
    #expect(learner.waitReady(30), "\(learner.stderr)")
    let control = try #require(learner.controlEndpoint)
    let before = try #require(learner.stats, "\(learner.stderr)")
    #expect(before.openFilesLimit == limit)
    let used = try #require(before.openFiles)
    #expect(!learner.stderr.contains("open files are in use"))

    // Within 12 of the limit: past the warning's margin (16), short of the limit,
    // so the stats endpoint can still accept a connection.
    let context = try ZMQContext()
    var sockets: [ZMQSocket] = []
    for _ in 0..<max(0, limit - 12 - used) {
      let s = try ZMQSocket(context, .dealer)
      try s.connect(control)
      sockets.append(s)
    }
    #expect(
      learner.waitFor(10) { $0.contains("open files are in use") && $0.contains("of the learner's \(limit) open files") },
      "\(learner.stderr)")
    #expect(learner.stderr.contains("ulimit -n"))
    let near = try #require(learner.stats)
    #expect((near.openFiles ?? 0) >= limit - 16, "\(String(describing: near.openFiles)) of \(limit)")
    let url = try #require(learner.statsURL)
    let metrics = String(decoding: try HTTPClient.get(url + "/metrics", timeout: 5).body, as: UTF8.self)
    #expect(metrics.contains("process_max_fds \(limit)"), "\(metrics)")
    #expect(metrics.contains("process_open_fds "))

    for s in sockets { s.close() }
    learner.signal(SIGTERM)
    #expect(learner.wait(30) == 0, "\(learner.stderr)")
  }
}
