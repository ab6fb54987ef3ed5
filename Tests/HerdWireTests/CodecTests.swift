import Foundation
import HerdMath
import HerdRL
import HerdTestSupport
import Testing

@testable import HerdWire

let spec = WireModelSpec(
  env: "CartPole-v1", observationSize: 3, actionCount: 2, stateSize: 4, maxSeqLen: 5, parameterCount: 7)

func sampleFragment(_ n: Int = 3, seed: UInt64 = 1) -> Fragment {
  var rng = SeededGenerator(seed: seed)
  return Fragment(
    stateIn: randomArray(4, rng: &rng), observations: randomArray((n + 1) * 3, rng: &rng),
    actions: (0..<n).map { Int32($0 % 2) }, rewards: randomArray(n, rng: &rng),
    behaviourLogits: randomArray(n * 2, rng: &rng),
    prevAction: 1, prevReward: 0.5, end: .truncated, policyVersion: 9, workerID: 3, runID: 77, envIndex: 2,
    episodeID: 11, indexInEpisode: 5)
}

@Suite struct CodecTests {
  @Test func fragmentBatchRoundTripsExactly() throws {
    var fragments = [sampleFragment(3, seed: 1), sampleFragment(5, seed: 2), sampleFragment(1, seed: 3)]
    fragments[1].policyVersion = 12
    let bytes = try FragmentCodec.encodeBatch(
      fragments, episodes: [EpisodeRecord(workerID: 3, envReturn: 12, length: 12)], envSteps: 40, workerID: 3,
      runID: 77, spec: spec)
    let d = try FragmentCodec.decodeBatch(bytes, spec: spec)
    #expect(d.fragments == fragments)
    #expect(d.dropped.isEmpty && d.envSteps == 40 && d.episodes.first?.envReturn == 12)
    // The episodes ended while the worker acted for these fragments: the newest version among them.
    #expect(d.episodes.first?.policyVersion == 12)
    let alone = try FragmentCodec.encodeBatch(
      [], episodes: [EpisodeRecord(workerID: 3, envReturn: 1, length: 2)], envSteps: 0, workerID: 3, runID: 77,
      spec: spec)
    #expect(try FragmentCodec.decodeBatch(alone, spec: spec).episodes.first.map { $0.policyVersion == nil } == true)
    // Episode info values travel in order, NaN (a key the episode lacked) included.
    let info = try FragmentCodec.encodeBatch(
      [], episodes: [EpisodeRecord(workerID: 3, envReturn: 1, length: 2, info: [1, .nan, -2.5])], envSteps: 0,
      workerID: 3, runID: 77, spec: spec)
    let got = try FragmentCodec.decodeBatch(info, spec: spec).episodes.first?.info ?? []
    #expect(got.count == 3 && got[0] == 1 && got[1].isNaN && got[2] == -2.5, "\(got)")
    // Floats travel as raw bytes: about 4 bytes each, not a varint list.
    let floats = fragments.reduce(0) {
      $0 + $1.observations.count + $1.rewards.count + $1.behaviourLogits.count + $1.stateIn.count
    }
    #expect(bytes.count < floats * 4 + 400)
  }

  @Test func weightsRoundTripAndAreValidated() throws {
    let w: [Float] = [1, 2, 3, 4, 5, 6, 7]
    let bytes = try WeightsCodec.encode(version: 12, weights: w)
    let d = try WeightsCodec.decode(bytes, spec: spec)
    #expect(d.version == 12 && d.weights == w)
    #expect(throws: WireError.self) {
      try WeightsCodec.decode(try WeightsCodec.encode(version: 1, weights: [1, 2]), spec: spec)
    }
    #expect(throws: WireError.self) {
      try WeightsCodec.decode(try WeightsCodec.encode(version: 1, weights: [1, 2, 3, 4, 5, 6, .nan]), spec: spec)
    }
  }

  /// Each way a fragment can be wrong is dropped with its own reason, and the good
  /// fragments of the same batch still arrive.
  @Test func badFragmentsAreDroppedByReason() throws {
    func reason(_ mutate: (inout Herd_V1_Fragment) -> Void) throws -> DropReason? {
      var m = FragmentCodec.encode(sampleFragment(), spec: spec)
      mutate(&m)
      var b = Herd_V1_FragmentBatch()
      b.protocolVersion = protocolVersion
      b.workerID = 3
      b.runID = 77
      b.fragments = [m, FragmentCodec.encode(sampleFragment(2), spec: spec)]
      let d = try FragmentCodec.decodeBatch(Array(try b.serializedData()), spec: spec)
      #expect(d.fragments.count + d.dropped.count == 2)
      #expect(d.fragments.contains(sampleFragment(2)), "the good fragment survives")
      return d.dropped.first?.reason
    }
    #expect(try reason { _ in } == nil)
    #expect(
      try reason { $0.observations = TensorCodec.encode([Float](repeating: 0, count: 4 * 4), shape: [4, 4]) }
        == .badShape)
    #expect(try reason { $0.stateIn = TensorCodec.encode([Float](repeating: 0, count: 3), shape: [3]) } == .badShape)
    #expect(try reason { $0.rewards.data.removeLast() } == .badTensor)
    #expect(try reason { $0.rewards.dtype = .int32 } == .badTensor)
    #expect(try reason { $0.rewards = TensorCodec.encode([1, .nan, 2], shape: [3]) } == .nonFinite)
    #expect(
      try reason { $0.behaviourLogits = TensorCodec.encode([1, 2, .infinity, 2, 3, 4], shape: [3, 2]) } == .nonFinite)
    #expect(try reason { $0.actions = TensorCodec.encode([Int32(0), 5, 1], shape: [3]) } == .badAction)
    #expect(try reason { $0.actions = TensorCodec.encode([Int32](repeating: 0, count: 9), shape: [9]) } == .badShape)
    #expect(try reason { $0.workerID = 99 } == .unknownWorker)
  }

  /// Observations that are all whole numbers in 0...255 (pixels, one-hot codes)
  /// travel as uint8, a quarter of the bytes, and come back equal; any other value
  /// keeps the fragment in float32. Observations stored as bytes (image spaces) go
  /// out as they are and come back as bytes. A uint8 tensor is checked like a float one.
  @Test func byteObservationsTravelAsBytes() throws {
    let f3 = WireModelSpec(
      env: "gym:X", observationSize: 300, actionCount: 2, stateSize: 4, maxSeqLen: 5, parameterCount: 7)
    var rng = SeededGenerator(seed: 4)
    var pixels = sampleFragment(5)
    pixels.observations = ObservationData((0..<(6 * 300)).map { _ in Float(rng.next() % 256) })
    pixels.observations[7] = 255
    pixels.observations[8] = -0.0
    var almost = pixels
    almost.observations[9] = 3.5
    var negative = pixels
    negative.observations[9] = -1
    var big = pixels
    big.observations[9] = 256
    var stored = pixels
    stored.observations = ObservationData(bytes: pixels.observations.map { UInt8($0) })
    #expect(!pixels.observations.isBytes && stored.observations.isBytes && stored == pixels)
    for (f, bytes) in [(pixels, true), (almost, false), (negative, false), (big, false), (stored, true)] {
      let m = FragmentCodec.encode(f, spec: f3)
      #expect(m.observations.dtype == (bytes ? .uint8 : .float32))
      #expect(m.observations.data.count == 6 * 300 * (bytes ? 1 : 4))
      let encoded = try FragmentCodec.encodeBatch([f], episodes: [], envSteps: 5, workerID: 3, runID: 77, spec: f3)
      let back = try FragmentCodec.decodeBatch(encoded, spec: f3).fragments
      #expect(back == [f])
      #expect(back.first?.observations.isBytes == bytes, "uint8 on the wire stays bytes in the learner")
      #expect(back.first?.observations.storageBytes == 6 * 300 * (bytes ? 1 : 4))
    }
    var m = FragmentCodec.encode(pixels, spec: f3)
    m.observations.data.removeLast()
    #expect(throws: WireError.self) {
      try FragmentCodec.decode(m, spec: f3)
    }
    m = FragmentCodec.encode(pixels, spec: f3)
    m.observations.shape = [6, 299]
    #expect(throws: WireError.self) { try FragmentCodec.decode(m, spec: f3) }
  }

  /// A MultiDiscrete model: heads travel in the model spec, actions are packed, and
  /// the range check is against the joint actions (3 x 2 = 6), not the logits (5).
  @Test func multiHeadSpecsAndPackedActions() throws {
    let heads = WireModelSpec(
      env: "gym:X", observationSize: 3, actionCount: 5, actionHeads: [3, 2], stateSize: 4, maxSeqLen: 5,
      parameterCount: 7)
    #expect(try ModelSpec(proto: heads.proto) == heads)
    #expect(try ModelSpec(proto: spec.proto).actionHeads == [2], "no heads on the wire: one head")
    var bad = heads.proto
    bad.actionHeads = [3, 3]
    #expect(throws: WireError.self) { try ModelSpec(proto: bad) }
    func decoded(_ actions: [Int32]) throws -> Fragment? {
      var f = sampleFragment()
      f.actions = actions
      f.behaviourLogits = [Float](repeating: 0.1, count: 3 * 5)
      let bytes = try FragmentCodec.encodeBatch([f], episodes: [], envSteps: 3, workerID: 3, runID: 77, spec: heads)
      return try FragmentCodec.decodeBatch(bytes, spec: heads).fragments.first
    }
    #expect(try decoded([0, 5, 4])?.actions == [0, 5, 4])
    #expect(try decoded([0, 6, 4]) == nil, "6 is outside 0..<6")
  }

  /// A Box action space: the spec carries D, actions travel as float32 [n, D]
  /// (samples beyond the bounds included: what the policy drew) and come back
  /// equal; NaN, a wrong shape or int32 actions are refused with their reasons.
  @Test func boxActionsRoundTripAndAreValidated() throws {
    let box = WireModelSpec(
      env: "Pendulum-v1", observationSize: 3, actionCount: 4, actionHeads: [1], stateSize: 4, maxSeqLen: 5,
      parameterCount: 7, actionDims: 2)
    #expect(try ModelSpec(proto: box.proto) == box)
    var bad = box.proto
    bad.actionCount = 3
    #expect(throws: WireError.self) { try ModelSpec(proto: bad) }
    var f = sampleFragment()
    f.actions = [0, 0, 0]
    f.prevAction = 0
    f.actionValues = [0.5, -3.5, 2.25, 0, 1e3, -1e-3]
    f.prevActionValues = [-2.5, 0.75]
    f.behaviourLogits = [Float](repeating: 0.1, count: 3 * 4)
    let bytes = try FragmentCodec.encodeBatch([f], episodes: [], envSteps: 3, workerID: 3, runID: 77, spec: box)
    #expect(try FragmentCodec.decodeBatch(bytes, spec: box).fragments == [f])
    // A fragment without the previous action (an episode start) leaves the field out.
    var start = f
    start.prevActionValues = []
    #expect(!FragmentCodec.encode(start, spec: box).hasPrevActionValues)
    let startBytes = try FragmentCodec.encodeBatch(
      [start], episodes: [], envSteps: 3, workerID: 3, runID: 77, spec: box)
    #expect(try FragmentCodec.decodeBatch(startBytes, spec: box).fragments == [start])
    let wire = FragmentCodec.encode(f, spec: box)
    #expect(wire.actions.dtype == .float32 && wire.actions.shape == [3, 2])
    func reason(_ mutate: (inout Herd_V1_Fragment) -> Void) throws -> DropReason? {
      var m = FragmentCodec.encode(f, spec: box)
      mutate(&m)
      var b = Herd_V1_FragmentBatch()
      b.protocolVersion = protocolVersion
      b.workerID = 3
      b.runID = 77
      b.fragments = [m]
      return try FragmentCodec.decodeBatch(Array(try b.serializedData()), spec: box).dropped.first?.reason
    }
    #expect(try reason { _ in } == nil)
    #expect(try reason { $0.actions = TensorCodec.encode([0.5, .nan, 2, 0, 1, 1], shape: [3, 2]) } == .nonFinite)
    #expect(try reason { $0.actions = TensorCodec.encode([Float](repeating: 0, count: 3), shape: [3]) } == .badShape)
    #expect(
      try reason { $0.actions = TensorCodec.encode([Float](repeating: 0, count: 9), shape: [3, 3]) } == .badShape)
    #expect(try reason { $0.actions = TensorCodec.encode([Int32](repeating: 0, count: 6), shape: [3, 2]) } == .badTensor)
    #expect(try reason { $0.prevAction = 1 } == .badAction)
    #expect(try reason { $0.prevActionValues = TensorCodec.encode([Float(1), .infinity], shape: [2]) } == .nonFinite)
    #expect(
      try reason { $0.prevActionValues = TensorCodec.encode([Float](repeating: 1, count: 3), shape: [3]) } == .badShape)
    // Discrete actions have no float previous action.
    var discrete = FragmentCodec.encode(sampleFragment(), spec: spec)
    discrete.prevActionValues = TensorCodec.encode([Float(0.5)], shape: [1])
    var b = Herd_V1_FragmentBatch()
    b.protocolVersion = protocolVersion
    b.workerID = 3
    b.runID = 77
    b.fragments = [discrete]
    let dropped = try FragmentCodec.decodeBatch(Array(try b.serializedData()), spec: spec).dropped
    #expect(dropped.first?.reason == .badShape && dropped.first?.detail.contains("prev_action_values") == true)
  }

  /// Flow control's message round-trips; a negative count is refused by name.
  @Test func takenRoundTripsAndIsValidated() throws {
    var t = Taken()
    t.workerID = 3
    t.runID = 0xDEAD_BEEF_0000_0001
    t.batches = 41
    #expect(try ControlCodec.decode(try ControlCodec.encode(.taken(t))) == .taken(t))
    t.batches = -1
    do {
      _ = try ControlCodec.decode(try ControlCodec.encode(.taken(t)))
      Issue.record("a negative count was accepted")
    } catch let e as WireError {
      #expect(e.reason == .badShape && e.detail.contains("-1"))
    }
  }

  @Test func wrongProtocolVersionAndGarbageAreBatchErrors() throws {
    var b = Herd_V1_FragmentBatch()
    b.protocolVersion = 7
    do {
      _ = try FragmentCodec.decodeBatch(Array(try b.serializedData()), spec: spec)
      Issue.record("version not checked")
    } catch let e as WireError {
      #expect(e.reason == .protocolVersion && e.detail.contains("7") && e.detail.contains("\(protocolVersion)"))
    }
    #expect(throws: WireError(.undecodable, "")) {
      do { _ = try FragmentCodec.decodeBatch([0xFF, 0xFF, 0xFF, 0x07], spec: spec) } catch let e as WireError {
        throw WireError(e.reason, "")
      }
    }
  }

  /// Random mutations of valid messages (bit flips, truncations, insertions, random
  /// bytes) through every decoder: each either decodes to something that passed
  /// validation or is a WireError; nothing crashes.
  @Test func fuzzedMessagesNeverCrashTheDecoders() throws {
    var rng = SeededGenerator(seed: 2026)
    let batch = try FragmentCodec.encodeBatch(
      [sampleFragment(3), sampleFragment(5, seed: 4)], episodes: [EpisodeRecord(workerID: 3, envReturn: 1, length: 2)],
      envSteps: 8, workerID: 3, runID: 77, spec: spec)
    let weights = try WeightsCodec.encode(version: 3, weights: [1, 2, 3, 4, 5, 6, 7])
    let control = try ControlCodec.encode(.hello(Hello(runID: 5, host: "h", pid: 1, numEnvs: 8)))
    var outcomes: [String: Int] = [:]
    for i in 0..<6000 {
      let base = [batch, weights, control][i % 3]
      var m = base
      switch rng.next() % 5 {
      case 0:
        for _ in 0..<(1 + rng.next() % 4) {
          let k = Int(rng.next() % UInt64(m.count)); m[k] ^= UInt8(1 << (rng.next() % 8))
        }
      case 1: m = Array(m.prefix(Int(rng.next() % UInt64(m.count))))
      case 2: m.insert(UInt8(truncatingIfNeeded: rng.next()), at: Int(rng.next() % UInt64(m.count)))
      case 3: m = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
      default: let k = Int(rng.next() % UInt64(m.count)); m[k] = UInt8(truncatingIfNeeded: rng.next())
      }
      do {
        switch i % 3 {
        case 0:
          let d = try FragmentCodec.decodeBatch(m, spec: spec)
          for f in d.fragments {
            #expect(f.length >= 1 && f.length <= spec.maxSeqLen)
            #expect(f.observations.allSatisfy(\.isFinite) && f.actions.allSatisfy { $0 >= 0 && $0 < 2 })
          }
          outcomes["batch ok", default: 0] += 1
        case 1:
          let w = try WeightsCodec.decode(m, spec: spec)
          #expect(w.weights.count == 7 && w.weights.allSatisfy(\.isFinite))
          outcomes["weights ok", default: 0] += 1
        default:
          _ = try ControlCodec.decode(m)
          outcomes["control ok", default: 0] += 1
        }
      } catch let e as WireError {
        outcomes[e.reason.rawValue, default: 0] += 1
      }
    }
    #expect((outcomes["undecodable"] ?? 0) > 100, "\(outcomes)")
    #expect(outcomes.values.reduce(0, +) == 6000)
  }
}
