import HerdEnvs
import HerdMath
import HerdNN
@testable import HerdRL
import HerdTestSupport
import Testing

/// Observations stored as bytes for uint8 image spaces: the storage itself, and
/// the path from a worker's fragments through the batch to a training step.
@Suite struct ObservationDataTests {
  @Test func bytesReadAsFloatsAndFallBackWhenAValueIsNotAByte() {
    var d = ObservationData(empty: true)
    let row: [Float] = [0, 255, 7, -0.0]
    row.withPointer { d.append($0, count: 4) }
    #expect(d.isBytes && d.count == 4 && d.storageBytes == 4)
    #expect(Array(d) == [0, 255, 7, 0])
    // A value a byte cannot hold turns the whole vector into floats, unrounded.
    for bad: Float in [0.5, -1, 256, .nan] {
      var e = d
      [1, bad].withPointer { e.append($0, count: 2) }
      #expect(!e.isBytes && e.count == 6 && e.storageBytes == 24, "\(bad)")
      #expect(Array(e[0..<5]) == [0, 255, 7, 0, 1] && (e[5] == bad || (bad.isNaN && e[5].isNaN)), "\(bad)")
      var s = d
      s[2] = bad
      #expect(!s.isBytes && Array(s[0..<2]) == [0, 255], "\(bad)")
    }
    var s = d
    s[2] = 9
    #expect(s.isBytes && s[2] == 9)
    // Equality is of values, whichever the storage.
    #expect(d == ObservationData([0, 255, 7, 0]) && d != ObservationData([0, 255, 7, 1]))
    #expect(d != ObservationData([0, 255, 7]))
    // Widening with a scale, from an offset.
    var out = [Float](repeating: -1, count: 3)
    out.withMutablePointer { d.widen(from: 1, count: 2, scale: 1 / 255, into: $0) }
    #expect(out == [1, 7 * (1 / Float(255)), -1])
    ObservationData([2, 4, 6]).withFloats { #expect($0[1] == 4) }
    var m = d
    m.withMutableFloats { $0[0] = 0.25 }
    #expect(!m.isBytes && Array(m) == [0.25, 255, 7, 0])
  }

  /// Rows of frame size go 16 values at a time: every byte value, -0, and a bad
  /// value anywhere (in a block of 16 or in the tail, huge or not a number) falls
  /// back to floats with every value as given.
  @Test func longRowsKeepBytesOrFallBackWhereverTheBadValueIs() {
    let row = (0..<300).map { Float($0 % 256) }
    var d = ObservationData(empty: true)
    row.withPointer { d.append($0, count: 300) }
    (row.map { $0 == 7 ? -0.0 : $0 } + [1]).withPointer { d.append($0, count: 37) }
    #expect(d.isBytes && d.count == 337 && Array(d) == row + Array(row[0..<37].map { $0 == 7 ? 0 : $0 }))
    for bad: Float in [0.5, -1, 256, 255.5, 1e10, -1e10, .infinity, .nan] {
      for at in [0, 15, 16, 31, 35] {
        var values = Array(row[0..<37])
        values[at] = bad
        var e = ObservationData(empty: true)
        row.withPointer { e.append($0, count: 300) }
        values.withPointer { e.append($0, count: 37) }
        #expect(!e.isBytes && e.count == 337, "\(bad) at \(at)")
        let back = Array(e[300..<337])
        #expect(zip(back, values).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) } && Array(e[0..<300]) == row, "\(bad) at \(at)")
      }
    }
  }

  /// A PixelMemory worker's fragments hold bytes; so does their batch, at a quarter
  /// of the floats' size; and a learner trained on them takes exactly the steps it
  /// takes on the same fragments as floats, with and without an observation filter.
  @Test(arguments: [ObservationFilterKind.NoFilter, .MeanStdFilter])
  func bytesTrainExactlyAsFloats(filter: ObservationFilterKind) throws {
    var config = ConvPolicyTests.pixelConfig(core: "lstm")
    config.observation_filter = filter
    config.learner_threads = 1
    let net = try ConvPolicyTests.network(config)
    let worker = try RolloutWorker(config: config, network: net, workerID: 0, seed: 5)
    try worker.setWeights(Learner(config: config, network: net).parameters.flatValues, version: 0)
    var fragments: [Fragment] = []
    for _ in 0..<24 { try worker.step(emit: { fragments.append($0) }, episode: { _ in }) }
    #expect(fragments.count >= 8 && fragments.allSatisfy { $0.observations.isBytes })
    let floats = fragments.map { f in
      var g = f
      g.observations = ObservationData(f.observations.floats)
      return g
    }
    #expect(!floats[0].observations.isBytes && floats == fragments)

    let batch = try Batch(
      fragments: fragments, maxLength: config.max_seq_len, observationSize: net.observationSize,
      actionCount: net.actionCount, stateSize: net.stateSize)
    let floatBatch = try Batch(
      fragments: floats, maxLength: config.max_seq_len, observationSize: net.observationSize,
      actionCount: net.actionCount, stateSize: net.stateSize)
    #expect(batch.obs.isBytes && !floatBatch.obs.isBytes && batch.obs == floatBatch.obs)
    #expect(batch.obs.storageBytes * 4 == floatBatch.obs.storageBytes)
    #expect(batch.obs.storageBytes == fragments.count * (config.max_seq_len + 1) * net.observationSize)
    // A mixed batch is floats.
    #expect(try !Batch(
      fragments: [fragments[0], floats[1]], maxLength: config.max_seq_len, observationSize: net.observationSize,
      actionCount: net.actionCount, stateSize: net.stateSize
    ).obs.isBytes)

    let a = Learner(config: config, network: net)
    let b = Learner(config: config, network: net)
    #expect(a.parameters.flatValues == b.parameters.flatValues)
    for chunk in stride(from: 0, to: 8, by: 4) {
      let sa = try a.step(Array(fragments[chunk..<(chunk + 4)]))
      let sb = try b.step(Array(floats[chunk..<(chunk + 4)]))
      #expect(sa.gradNorm == sb.gradNorm && sa.gradNorm > 0, "\(filter)")
    }
    #expect(a.parameters.flatValues == b.parameters.flatValues, "\(filter): bytes and floats trained alike")
    #expect(a.parameters.flatValues != Learner(config: config, network: net).parameters.flatValues)
  }

  /// The learner's queue counts the bytes its fragments hold: a full queue of 256
  /// Atari fragments (20 steps of 84x84 frames, LSTM(256) state, 6 actions) holds
  /// 37 MiB as bytes and four times the frames as floats.
  @Test func theQueueCountsTheBytesItHolds() throws {
    let (t, f, a, s) = (20, 84 * 84, 6, 512)
    func fragment(bytes: Bool) -> Fragment {
      let frames = (0..<((t + 1) * f)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
      return Fragment(
        stateIn: [Float](repeating: 0, count: s),
        observations: bytes ? ObservationData(bytes: frames) : ObservationData(frames.map(Float.init)),
        actions: [Int32](repeating: 1, count: t), rewards: [Float](repeating: 0, count: t),
        behaviourLogits: [Float](repeating: 0, count: t * a), prevAction: 0, prevReward: 0, end: .cut,
        policyVersion: 0, workerID: 1, runID: 1, envIndex: 0, episodeID: 0, indexInEpisode: 0)
    }
    let other = 4 * (s + t + t + t * a)
    #expect(fragment(bytes: true).storageBytes == (t + 1) * f + other)
    #expect(fragment(bytes: false).storageBytes == 4 * (t + 1) * f + other)
    for bytes in [true, false] {
      let queue = FragmentQueue(capacity: 256)
      let one = fragment(bytes: bytes)
      for _ in 0..<255 { #expect(queue.send(one)) }
      queue.enqueue([one])
      #expect(queue.depth == 256 && queue.bytes == 256 * one.storageBytes)
      let mib = Double(queue.bytes) / 1_048_576
      #expect(bytes ? (mib > 36 && mib < 38) : (mib > 144 && mib < 147), "\(mib) MiB")
      let got = queue.receive(max: 100, timeout: 0)
      #expect(got.count == 100 && queue.bytes == 156 * one.storageBytes)
      _ = queue.receive(max: 1000, timeout: 0)
      #expect(queue.depth == 0 && queue.bytes == 0)
    }
  }
}
