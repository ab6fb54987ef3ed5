import Foundation
import Testing

/// Resident memory of a process in MiB, from /proc.
func residentMiB(_ pid: Int32) -> Double? {
  guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
    let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
    let kb = Double(line.split(separator: " ").dropFirst().first ?? "")
  else { return nil }
  return kb / 1024
}

@Suite(.serialized) struct BackpressureTests {
  /// max_requests_in_flight_per_worker: with a learner slower than its worker
  /// process, the policy lag of what it trains stays within what the queue, one
  /// batch on the way, the pending batch and the one in training allow (here 8
  /// updates per batch); without the limit the sockets' buffers hold many more
  /// batches and the lag is several times larger (which shows the setup can fail).
  @Test func flowControlKeepsThePolicyLagLow() throws {
    func lagP95(_ inFlight: Int) throws -> Double {
      let dir = HerdBinary.tempDir("flow-\(inFlight)")
      defer { try? FileManager.default.removeItem(atPath: dir) }
      let r = try HerdBinary.run([
        "train", "--env", "StatelessCartPole-v1", "--stop-steps", "60000", "--seed", "1", "--run-dir", dir,
        "--log-level", "warning", "--no-stats", "--set", "num_envs_per_worker=8", "--set", "max_seq_len=32",
        "--set", "train_batch_size=256", "--set", "num_epochs=8", "--set", "learner_queue_size=4",
        "--set", "max_policy_lag=100000", "--set", "progress_interval_seconds=0.5",
        "--set", "max_requests_in_flight_per_worker=\(inFlight)",
      ])
      #expect(r.status == 0, "stderr: \(r.stderr)")
      let lines = try String(contentsOfFile: dir + "/progress.jsonl", encoding: .utf8).split(separator: "\n")
      let last = try JSONSerialization.jsonObject(with: Data(lines[lines.count - 1].utf8)) as? [String: Any] ?? [:]
      let summary = try HerdBinary.json(dir + "/summary.json")
      #expect(summary["dropped_stale_fragments"] as? Int == 0)
      return try #require(last["policy_lag/p95"] as? Double)
    }
    let updatesPerBatch = 8.0
    let limited = try lagP95(1)
    let unlimited = try lagP95(0)
    print("policy lag p95: \(limited) updates with max_requests_in_flight_per_worker 1, \(unlimited) without")
    #expect(limited <= 6 * updatesPerBatch, "with flow control: p95 lag \(limited) updates")
    #expect(unlimited > 2 * limited && unlimited > 6 * updatesPerBatch, "without: p95 lag \(unlimited) updates")
  }

  /// Workers that produce far faster than the learner trains slow down; the
  /// learner's memory stays flat instead of queueing everything.
  @Test func aSlowLearnersMemoryStaysFlat() throws {
    let dir = HerdBinary.tempDir("slow")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    // A cheap environment and a learner made slow by a large model and batch.
    let learner = try HerdProcess([
      "learner", "--env", "MemoryChain-v0", "--port", "0", "--run-dir", dir, "--stop-seconds", "16",
      "--set", "lstm_cell_size=384", "--set", "train_batch_size=5120", "--set", "fcnet_hiddens=[256]",
    ])
    #expect(learner.waitReady(10), "\(learner.stderr)")
    let endpoint = try #require(learner.controlEndpoint)
    let worker = try HerdProcess(["worker", "--learner", endpoint, "--seed", "1"])
    #expect(learner.waitForWorkers(1, 20), "\(learner.stderr)")
    Thread.sleep(forTimeInterval: 3)  // queues fill
    var samples: [Double] = []
    for _ in 0..<8 {
      if let m = residentMiB(learner.process.processIdentifier) { samples.append(m) }
      Thread.sleep(forTimeInterval: 1)
    }
    #expect(samples.count >= 6)
    let growth = (samples.max() ?? 0) - (samples.min() ?? 0)
    print("slow learner RSS samples (MiB): \(samples.map { Int($0) })")
    #expect(growth < 40, "learner RSS over 8 s: \(samples.map { Int($0) }) MiB")
    #expect(learner.wait(60) == 0)
    let summary = try HerdBinary.json(dir + "/summary.json")
    let sampled = summary["env_steps"] as? Int ?? 0
    let trained = summary["trained_steps"] as? Int ?? 0
    print("slow learner: sampled \(sampled), trained \(trained), updates \(summary["updates"] ?? "?")")
    // Backpressure: what was sampled is close to what was trained, not far ahead.
    #expect(sampled > 0 && trained > 0)
    #expect(Double(sampled) < 1.5 * Double(trained) + 200_000, "sampled \(sampled) vs trained \(trained)")
    worker.signal(SIGTERM)
    _ = worker.wait(10)
  }
}
