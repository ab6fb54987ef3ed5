import ArgumentParser
import Foundation
import Synchronization
import HerdMath
import HerdNN
import HerdRL
import HerdWire

/// `herd bench wire`: learner intake and weight broadcast.
struct BenchWire: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "wire",
    abstract: "Time learner intake (decode + validate, over PUSH/PULL) and weight broadcast to N subscribers.",
    discussion: """
      Intake: fragment batches of 8 full fragments (T steps) of StatelessCartPole
      with an LSTM(H) state, decoded and validated alone and then pushed over
      loopback TCP by another thread. Broadcast: the LSTM(H) policy's weight blob
      published to N SUB sockets (one thread each) until every one has it; the median
      over rounds of the time from send to the last receipt.

      Example: herd bench wire --subscribers 8
      """
  )

  @Option(parsing: .unconditional, help: "Cell size of the model whose state and weights are sent.")
  var hidden = 256
  @Option(parsing: .unconditional, help: "Fragment length T.")
  var time = 20
  @Option(parsing: .unconditional, help: "Weight subscribers.")
  var subscribers = 8
  @Option(parsing: .unconditional, help: "Seconds per measurement.")
  var seconds = 2.0

  func validate() throws { try requirePositive([("--hidden", hidden), ("--time", time), ("--subscribers", subscribers)]) }

  func run() throws {
    BLAS.setThreadCount(1)
    var config = TrainingConfig.defaults(for: "StatelessCartPole-v1")
    config.lstm_cell_size = hidden
    config.fcnet_hiddens = [256]
    config.max_seq_len = time
    let net = PolicyNetwork(config: config, observationSize: 2, actionCount: 2)
    let spec = WireModelSpec(
      env: config.env, observationSize: 2, actionCount: 2, stateSize: net.stateSize, maxSeqLen: time, parameterCount: net.layout.count)
    var rng = SeededGenerator(seed: 1)
    func r() -> Float { rng.nextUnitFloat() - 0.5 }
    let fragments = (0..<8).map { i in
      Fragment(
        stateIn: (0..<net.stateSize).map { _ in r() }, observations: (0..<((time + 1) * 2)).map { _ in r() },
        actions: (0..<time).map { _ in Int32(rng.next() % 2) }, rewards: (0..<time).map { _ in 1 },
        behaviourLogits: (0..<(time * 2)).map { _ in r() }, prevAction: 0, prevReward: 0, end: .cut, policyVersion: 0,
        workerID: 1, runID: 7, envIndex: i, episodeID: UInt64(i), indexInEpisode: 0)
    }
    let batch = try FragmentCodec.encodeBatch(fragments, episodes: [], envSteps: 8 * time, workerID: 1, runID: 7, spec: spec)
    print("herd bench wire: fragments of T=\(time), state \(net.stateSize) floats; batch of 8 = \(batch.count) bytes; weights \(net.layout.count) floats")

    // Decode + validate alone.
    let perDecode = timePerCall(seconds: seconds) { _ = try? FragmentCodec.decodeBatch(batch, spec: spec) }
    print(String(format: "intake, decode + validate: %.0f fragments/s, %.0f MB/s", 8 / perDecode, Double(batch.count) / perDecode / 1e6))

    // Over loopback TCP: a pusher thread, this thread pulls and decodes.
    let ctx = try ZMQContext()
    let pull = try ZMQSocket(ctx, .pull)
    let endpoint = try pull.bind("tcp://127.0.0.1:*")
    let stop = StopFlag()
    let pusher = JoinableThread(name: "bench-pusher") {
      guard let push = try? ZMQSocket(ctx, .push), (try? push.connect(endpoint)) != nil else { return }
      while !stop.isSet { _ = try? push.send([batch], dontWait: true) }
      push.close()
    }
    var received = 0
    let start = Date()
    while Date().timeIntervalSince(start) < seconds {
      if let frames = try pull.receive(timeoutMs: 100), let d = try? FragmentCodec.decodeBatch(frames[0], spec: spec) { received += d.fragments.count }
    }
    let elapsed = Date().timeIntervalSince(start)
    stop.set()
    pusher.join()
    print(String(format: "intake over loopback PUSH/PULL: %.0f fragments/s, %.0f MB/s", Double(received) / elapsed, Double(received / 8 * batch.count) / elapsed / 1e6))

    // Weight broadcast to N subscribers.
    let pub = try ZMQSocket(ctx, .pub)
    let wEndpoint = try pub.bind("tcp://127.0.0.1:*")
    let weights = (0..<net.layout.count).map { _ in r() }
    let counter = BroadcastCounter()
    var threads: [JoinableThread] = []
    for _ in 0..<subscribers {
      let t = JoinableThread(name: "bench-subscriber") {
        guard let sub = try? ZMQSocket(ctx, .sub) else { return }
        try? sub.subscribe()
        try? sub.connect(wEndpoint)
        while !counter.done {
          if let frames = try? sub.receive(timeoutMs: 50), let (v, _) = try? WeightsCodec.decode(frames[0], spec: spec) { counter.got(v) }
        }
        sub.close()
      }
      threads.append(t)
    }
    // Warm-up: wait until every subscriber receives something.
    var version = 0
    while counter.receivers(of: version) < subscribers {
      version += 1
      try pub.send([try WeightsCodec.encode(version: version, weights: weights)])
      usleep(20_000)
    }
    var times: [Double] = []
    for _ in 0..<30 {
      version += 1
      let t0 = Date()
      try pub.send([try WeightsCodec.encode(version: version, weights: weights)])
      while counter.receivers(of: version) < subscribers && Date().timeIntervalSince(t0) < 2 { usleep(100) }
      times.append(Date().timeIntervalSince(t0))
    }
    counter.finish()
    for t in threads { t.join() }
    print(String(format: "weight broadcast of %.1f MB to %d subscribers: median %.1f ms (encode + send + all received)", Double(weights.count * 4) / 1e6, subscribers, median(times) * 1e3))
  }
}

/// Which versions each subscriber has received.
final class BroadcastCounter: Sendable {
  private let counts = Mutex<[Int: Int]>([:])
  private let finished = StopFlag()
  func got(_ v: Int) { counts.withLock { $0[v, default: 0] += 1 } }
  func receivers(of v: Int) -> Int { counts.withLock { $0[v] ?? 0 } }
  func finish() { finished.set() }
  var done: Bool { finished.isSet }
}
