import Foundation
import HerdRL
import HerdWire
import HerdTestSupport
import Testing

@Suite(.serialized) struct GarbageTests {
  /// Garbage on the control and fragment sockets of a training learner: no crash,
  /// every kind counted by its reason, and training goes on with a real worker.
  @Test func garbageIsCountedByReasonAndTrainingGoesOn() throws {
    let dir = HerdBinary.tempDir("garbage")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let port = freePortBlock()
    let learner = try HerdProcess([
      "learner", "--env", "MemoryChain-v0", "--port", String(port), "--run-dir", dir, "--stop-seconds", "10",
    ])
    #expect(learner.waitReady(10), "\(learner.stderr)")
    let worker = try HerdProcess(["worker", "--learner", "tcp://127.0.0.1:\(port)", "--seed", "1"])
    #expect(learner.waitForWorkers(1, 20), "\(learner.stderr)")

    let ctx = try ZMQContext()
    let control = try ZMQSocket(ctx, .dealer)
    try control.connect("tcp://127.0.0.1:\(port)")
    let push = try ZMQSocket(ctx, .push)
    try push.connect("tcp://127.0.0.1:\(port + 1)")
    var rng = SystemRandomNumberGenerator()
    // Control channel: random bytes, a truncated hello, a wrong protocol version.
    var oldHello = Hello(runID: 1, host: "intruder", pid: 1, numEnvs: 4)
    oldHello.protocolVersion = 99
    let hello = try ControlCodec.encode(.hello(Hello(runID: 1, host: "intruder", pid: 1, numEnvs: 4)))
    for m in [(0..<64).map { _ in UInt8.random(in: 0...255, using: &rng) }, Array(hello.prefix(hello.count / 2)), try ControlCodec.encode(.hello(oldHello))] {
      try control.send([m])
    }
    let reject = try #require(try control.receive(timeoutMs: 5000), "a wrong protocol version gets a reject")
    guard case .reject(let r) = try ControlCodec.decode(reject[0]) else {
      Issue.record("expected a reject")
      return
    }
    #expect(r.reason.contains("99") && r.reason.contains("\(protocolVersion)"), "names both versions: \(r.reason)")
    // Fragment channel: random bytes, truncated, oversized, wrong shapes, NaN, an unknown worker.
    let spec = WireModelSpec(env: "MemoryChain-v0", observationSize: 3, actionCount: 2, stateSize: 64, maxSeqLen: 20, parameterCount: 1)
    func fragment(obs: Int = 3, reward: Float = 0) -> Fragment {
      Fragment(
        stateIn: [Float](repeating: 0, count: 64), observations: [Float](repeating: 0, count: 3 * obs), actions: [0, 1],
        rewards: [reward, 0], behaviourLogits: [0, 0, 0, 0], prevAction: 0, prevReward: 0, end: .cut, policyVersion: 0,
        workerID: 1, runID: 123, envIndex: 0, episodeID: 0, indexInEpisode: 0)
    }
    let good = try FragmentCodec.encodeBatch([fragment()], episodes: [], envSteps: 2, workerID: 1, runID: 123, spec: spec)
    let messages: [[UInt8]] = [
      (0..<200).map { _ in UInt8.random(in: 0...255, using: &rng) },
      Array(good.prefix(good.count / 2)),
      [UInt8](repeating: 7, count: 70 << 20),
      try FragmentCodec.encodeBatch([fragment(obs: 4)], episodes: [], envSteps: 2, workerID: 1, runID: 123, spec: spec),
      try FragmentCodec.encodeBatch([fragment(reward: .nan)], episodes: [], envSteps: 2, workerID: 1, runID: 123, spec: spec),
      good,  // worker 1 exists, but not with run id 123: unknown
    ]
    for m in messages { try push.send([m]) }
    Thread.sleep(forTimeInterval: 1)
    control.close()
    push.close()
    #expect(learner.wait(60) == 0, "the learner finished normally: \(learner.stderr.suffix(1500))")
    let log = learner.stderr
    for reason in ["undecodable", "protocol_version", "unknown_worker"] {
      #expect(log.contains(reason), "counted as \(reason)")
    }
    #expect(log.contains("dropped messages by reason:"))
    let summary = try HerdBinary.json(dir + "/summary.json")
    #expect((summary["updates"] as? Int ?? 0) > 10, "training went on")
    worker.signal(SIGTERM)
    _ = worker.wait(10)
  }
}
