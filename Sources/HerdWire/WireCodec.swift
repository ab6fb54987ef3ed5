import Foundation
import HerdRL
import SwiftProtobuf

#if _endian(big)
  #error("Herd's wire tensors are little-endian; add byte swapping for this platform")
#endif

/// This build's protocol version (herd.v1.ProtocolVersion.PROTOCOL_VERSION_CURRENT).
public let protocolVersion = UInt32(Herd_V1_ProtocolVersion.current.rawValue)

/// Why an incoming message was dropped: the label of its drop counter.
public enum DropReason: String, CaseIterable, Sendable, Codable {
  /// Not a valid protobuf message of the channel's type.
  case undecodable
  /// A protocol version other than this build's.
  case protocolVersion = "protocol_version"
  /// From a worker the learner has not welcomed (or a stale run id).
  case unknownWorker = "unknown_worker"
  /// A tensor whose dtype, shape or byte count is wrong.
  case badTensor = "bad_tensor"
  /// Shapes that do not fit the model spec (F, A, S, T).
  case badShape = "bad_shape"
  /// NaN or infinity where numbers must be finite.
  case nonFinite = "non_finite"
  /// An action outside 0..<A.
  case badAction = "bad_action"
  /// A message that makes no sense on its channel (e.g. a Welcome sent to the learner).
  case unexpected = "unexpected_message"
  /// Too old: more than max_policy_lag updates behind.
  case stale = "stale_policy"
  /// A CURVE handshake refused: the client's key is not authorised (counted per attempt).
  case unauthorized
}

/// A message that failed validation: the reason (for counting) and a detail (for the
/// log line printed once per reason).
public struct WireError: Error, Equatable, CustomStringConvertible {
  public let reason: DropReason
  public let detail: String
  public init(_ reason: DropReason, _ detail: String) {
    self.reason = reason
    self.detail = detail
  }
  public var description: String { "\(reason.rawValue): \(detail)" }
}

/// The model spec on the wire (``ModelSpec`` from HerdRL, with its protobuf form).
public typealias WireModelSpec = ModelSpec

extension ModelSpec {
  public var proto: Herd_V1_ModelSpec {
    var m = Herd_V1_ModelSpec()
    m.env = env
    m.observationSize = Int32(observationSize)
    m.actionCount = Int32(actionCount)
    m.stateSize = Int32(stateSize)
    m.maxSeqLen = Int32(maxSeqLen)
    m.parameterCount = Int64(parameterCount)
    m.actionHeads = actionHeads.map { Int32($0) }
    m.actionDims = Int32(actionDims)
    return m
  }

  public init(proto m: Herd_V1_ModelSpec) throws {
    guard m.observationSize > 0, m.actionCount > 0, m.stateSize >= 0, m.maxSeqLen > 0, m.parameterCount > 0 else {
      throw WireError(.badShape, "model spec has non-positive sizes: \(m)")
    }
    if m.actionDims != 0 {
      // A Gaussian: 2D inputs, one packed "action" (0) beside the D floats.
      guard m.actionDims > 0, m.actionCount == 2 * m.actionDims, m.actionHeads.isEmpty || m.actionHeads == [1] else {
        throw WireError(
          .badShape, "model spec's Box actions of \(m.actionDims) floats do not make \(m.actionCount) inputs")
      }
      self.init(
        env: m.env, observationSize: Int(m.observationSize), actionCount: Int(m.actionCount), actionHeads: [1],
        stateSize: Int(m.stateSize), maxSeqLen: Int(m.maxSeqLen), parameterCount: Int(m.parameterCount),
        actionDims: Int(m.actionDims))
      return
    }
    let heads = m.actionHeads.isEmpty ? [Int(m.actionCount)] : m.actionHeads.map { Int($0) }
    guard heads.allSatisfy({ $0 >= 1 }), heads.reduce(0, +) == Int(m.actionCount), ActionHeads.fits(heads) else {
      throw WireError(.badShape, "model spec's action heads \(heads) do not make \(m.actionCount) logits")
    }
    self.init(
      env: m.env, observationSize: Int(m.observationSize), actionCount: Int(m.actionCount), actionHeads: heads,
      stateSize: Int(m.stateSize),
      maxSeqLen: Int(m.maxSeqLen), parameterCount: Int(m.parameterCount))
  }
}

// MARK: - Tensors

/// Raw little-endian tensors (`Herd_V1_Tensor`) to and from Swift arrays.
public enum TensorCodec {
  /// A float32 tensor of `shape` holding `values`.
  public static func encode(_ values: [Float], shape: [Int]) -> Herd_V1_Tensor {
    var t = Herd_V1_Tensor()
    t.dtype = .float32
    t.shape = shape.map(Int64.init)
    t.data = values.withUnsafeBytes { Data($0) }
    return t
  }

  /// An int32 tensor of `shape` holding `values`.
  public static func encode(_ values: [Int32], shape: [Int]) -> Herd_V1_Tensor {
    var t = Herd_V1_Tensor()
    t.dtype = .int32
    t.shape = shape.map(Int64.init)
    t.data = values.withUnsafeBytes { Data($0) }
    return t
  }

  /// Observations: uint8 when they are stored as bytes (image spaces, sent as they
  /// are) or every float is a whole number in 0...255 (one-hot codes; lossless and
  /// a quarter of the bytes), float32 otherwise.
  public static func encodeObservations(_ values: ObservationData, shape: [Int]) -> Herd_V1_Tensor {
    let bytes: [UInt8]?
    switch values.storage {
    case .bytes(let b):
      bytes = b
    case .floats(let f):
      bytes = f.withUnsafeBufferPointer { v -> [UInt8]? in
        var out = [UInt8](repeating: 0, count: v.count)
        for i in 0..<v.count {
          let x = v[i]
          // Whole numbers in range only (NaN fails the comparison, -0 is 0).
          guard x >= 0 && x <= 255, let b = UInt8(exactly: x) else { return nil }
          out[i] = b
        }
        return out
      }
    }
    guard let bytes else { return encode(values.floats, shape: shape) }
    var t = Herd_V1_Tensor()
    t.dtype = .uint8
    t.shape = shape.map(Int64.init)
    t.data = Data(bytes)
    return t
  }

  /// Observations from a float32 (checked finite) or uint8 tensor of `shape`; uint8
  /// ones stay bytes.
  public static func observations(_ t: Herd_V1_Tensor, shape: [Int], name: String) throws -> ObservationData {
    guard t.dtype == .uint8 else { return ObservationData(try floats(t, shape: shape, name: name)) }
    try check(t, .uint8, shape: shape, name: name)
    return ObservationData(bytes: [UInt8](t.data))
  }

  /// Checks dtype, shape (exactly `shape`) and byte count, then returns the floats;
  /// with `finite`, any NaN or infinity is an error.
  public static func floats(_ t: Herd_V1_Tensor, shape: [Int], name: String, finite: Bool = true) throws -> [Float] {
    try check(t, .float32, shape: shape, name: name)
    let n = shape.reduce(1, *)
    var out = [Float](repeating: 0, count: n)
    out.withUnsafeMutableBytes { dst in t.data.withUnsafeBytes { src in dst.copyMemory(from: src) } }
    if finite, out.contains(where: { !$0.isFinite }) { throw WireError(.nonFinite, "\(name) holds NaN or infinity") }
    return out
  }

  /// Checks dtype, shape and byte count, then returns the int32 values.
  public static func ints(_ t: Herd_V1_Tensor, shape: [Int], name: String) throws -> [Int32] {
    try check(t, .int32, shape: shape, name: name)
    var out = [Int32](repeating: 0, count: shape.reduce(1, *))
    out.withUnsafeMutableBytes { dst in t.data.withUnsafeBytes { src in dst.copyMemory(from: src) } }
    return out
  }

  static func check(_ t: Herd_V1_Tensor, _ dtype: Herd_V1_Tensor.DType, shape: [Int], name: String) throws {
    guard t.dtype == dtype else { throw WireError(.badTensor, "\(name) has dtype \(t.dtype), expected \(dtype)") }
    guard t.shape == shape.map(Int64.init) else {
      throw WireError(.badShape, "\(name) has shape \(t.shape), expected \(shape)")
    }
    let size = dtype == .uint8 ? 1 : 4
    guard t.data.count == shape.reduce(1, *) * size else {
      throw WireError(
        .badTensor, "\(name) holds \(t.data.count) bytes, shape \(shape) needs \(shape.reduce(1, *) * size)")
    }
  }
}

// MARK: - Fragments

/// Fragment batches on the fragments channel.
public enum FragmentCodec {
  /// The wire form of a fragment.
  public static func encode(_ f: Fragment, spec: WireModelSpec) -> Herd_V1_Fragment {
    var m = Herd_V1_Fragment()
    m.workerID = Int32(f.workerID)
    m.runID = f.runID
    m.envIndex = Int32(f.envIndex)
    m.episodeID = f.episodeID
    m.indexInEpisode = Int64(f.indexInEpisode)
    m.policyVersion = Int64(f.policyVersion)
    m.end = Herd_V1_Fragment.End(rawValue: Int(f.end.rawValue)) ?? .cut
    m.prevAction = f.prevAction
    m.prevReward = f.prevReward
    let n = f.length
    m.stateIn = TensorCodec.encode(f.stateIn, shape: [f.stateIn.count])
    m.observations = TensorCodec.encodeObservations(f.observations, shape: [n + 1, spec.observationSize])
    m.actions =
      spec.actionDims > 0
      ? TensorCodec.encode(f.actionValues, shape: [n, spec.actionDims]) : TensorCodec.encode(f.actions, shape: [n])
    m.rewards = TensorCodec.encode(f.rewards, shape: [n])
    m.behaviourLogits = TensorCodec.encode(f.behaviourLogits, shape: [n, spec.actionCount])
    if spec.actionDims > 0 && !f.prevActionValues.isEmpty {
      m.prevActionValues = TensorCodec.encode(f.prevActionValues, shape: [spec.actionDims])
    }
    return m
  }

  /// A validated fragment: every shape against `spec`, finite numbers, actions in range.
  public static func decode(_ m: Herd_V1_Fragment, spec: WireModelSpec) throws -> Fragment {
    let d = spec.actionDims
    guard m.actions.shape.count == (d > 0 ? 2 : 1) else {
      throw WireError(
        .badShape,
        d > 0
          ? "actions must be [n, \(d)] floats, shape \(m.actions.shape)" : "actions must be a vector, shape \(m.actions.shape)")
    }
    let n64 = m.actions.shape[0]
    guard n64 >= 1 && n64 <= Int64(spec.maxSeqLen) else {
      throw WireError(.badShape, "fragment length \(n64), must be in 1...\(spec.maxSeqLen) (max_seq_len)")
    }
    let n = Int(n64)
    var actionValues: [Float] = []
    var prevActionValues: [Float] = []
    let actions: [Int32]
    if d > 0 {
      guard m.actions.dtype == .float32 else {
        throw WireError(.badTensor, "actions must be float32 for Box actions, got \(m.actions.dtype)")
      }
      // Finite, of any size: the samples before the environment's clipping.
      actionValues = try TensorCodec.floats(m.actions, shape: [n, d], name: "actions")
      actions = [Int32](repeating: 0, count: n)
      if m.hasPrevActionValues {
        prevActionValues = try TensorCodec.floats(m.prevActionValues, shape: [d], name: "prev_action_values")
      }
    } else {
      actions = try TensorCodec.ints(m.actions, shape: [n], name: "actions")
      guard !m.hasPrevActionValues else {
        throw WireError(.badShape, "prev_action_values is for Box actions; this run's actions are discrete")
      }
    }
    let values = spec.actionHeads.reduce(1, *)  // packed actions (checked to fit when the spec was made)
    if let bad = actions.first(where: { $0 < 0 || Int($0) >= values }) {
      throw WireError(.badAction, "action \(bad) outside 0..<\(values)")
    }
    guard (0..<values).contains(Int(m.prevAction)) else {
      throw WireError(.badAction, "prev_action \(m.prevAction) outside 0..<\(values)")
    }
    guard m.prevReward.isFinite else { throw WireError(.nonFinite, "prev_reward is \(m.prevReward)") }
    guard let end = FragmentEnd(rawValue: UInt8(clamping: max(0, m.end.rawValue))), m.end.rawValue <= 2 else {
      throw WireError(.badShape, "unknown fragment end \(m.end.rawValue)")
    }
    return Fragment(
      stateIn: try TensorCodec.floats(m.stateIn, shape: [spec.stateSize], name: "state_in"),
      observations: try TensorCodec.observations(
        m.observations, shape: [n + 1, spec.observationSize], name: "observations"),
      actions: actions,
      rewards: try TensorCodec.floats(m.rewards, shape: [n], name: "rewards"),
      behaviourLogits: try TensorCodec.floats(
        m.behaviourLogits, shape: [n, spec.actionCount], name: "behaviour_logits"),
      prevAction: m.prevAction, prevReward: m.prevReward, end: end, policyVersion: Int(m.policyVersion),
      workerID: Int(m.workerID), runID: m.runID, envIndex: Int(m.envIndex), episodeID: m.episodeID,
      indexInEpisode: Int(m.indexInEpisode), actionValues: actionValues, prevActionValues: prevActionValues)
  }

  /// The bytes of a FragmentBatch message.
  public static func encodeBatch(
    _ fragments: [Fragment], episodes: [EpisodeRecord], envSteps: Int, workerID: Int, runID: UInt64, spec: WireModelSpec
  ) throws -> [UInt8] {
    var b = Herd_V1_FragmentBatch()
    b.protocolVersion = protocolVersion
    b.workerID = Int32(workerID)
    b.runID = runID
    b.fragments = fragments.map { encode($0, spec: spec) }
    b.episodes = episodes.map {
      var e = Herd_V1_Episode()
      e.episodeReturn = $0.envReturn
      e.length = Int32($0.length)
      e.info = $0.info
      return e
    }
    b.envSteps = Int64(envSteps)
    return try Array(b.serializedData())
  }

  /// A decoded batch: the fragments that passed validation, the errors of those that
  /// did not (one per dropped fragment), the episodes and env steps reported.
  public struct DecodedBatch: Sendable {
    public var workerID: Int
    public var runID: UInt64
    public var fragments: [Fragment]
    public var dropped: [WireError]
    public var episodes: [EpisodeRecord]
    public var envSteps: Int
  }

  /// Decodes a FragmentBatch; a batch-level problem (bytes, version, header) throws,
  /// a bad fragment is dropped on its own and reported in `dropped`.
  public static func decodeBatch(_ bytes: [UInt8], spec: WireModelSpec) throws -> DecodedBatch {
    let b: Herd_V1_FragmentBatch
    do {
      b = try Herd_V1_FragmentBatch(serializedBytes: bytes)
    } catch {
      throw WireError(.undecodable, "fragment batch of \(bytes.count) bytes: \(error)")
    }
    guard b.protocolVersion == protocolVersion else {
      throw WireError(
        .protocolVersion,
        "fragment batch has protocol version \(b.protocolVersion), this learner speaks \(protocolVersion)")
    }
    var out = DecodedBatch(
      workerID: Int(b.workerID), runID: b.runID, fragments: [], dropped: [], episodes: [], envSteps: Int(b.envSteps))
    guard b.envSteps >= 0 else { throw WireError(.badShape, "env_steps \(b.envSteps) is negative") }
    for m in b.fragments {
      do {
        let f = try decode(m, spec: spec)
        guard f.workerID == out.workerID && f.runID == out.runID else {
          throw WireError(.unknownWorker, "fragment from worker \(f.workerID) in a batch from worker \(out.workerID)")
        }
        out.fragments.append(f)
      } catch let e as WireError {
        out.dropped.append(e)
      }
    }
    // The episodes ended while the worker acted for these fragments: the newest
    // version among them is the one it acted with last.
    let version = out.fragments.map(\.policyVersion).max()
    for e in b.episodes {
      guard e.episodeReturn.isFinite, e.length >= 0 else {
        out.dropped.append(WireError(.nonFinite, "episode return \(e.episodeReturn), length \(e.length)"))
        continue
      }
      out.episodes.append(
        EpisodeRecord(
          workerID: out.workerID, envReturn: e.episodeReturn, length: Int(e.length), policyVersion: version,
          info: e.info))
    }
    return out
  }
}

// MARK: - Weights

/// Weight broadcasts on the weights channel.
public enum WeightsCodec {
  public static func encode(version: Int, weights: [Float]) throws -> [UInt8] {
    var w = Herd_V1_Weights()
    w.protocolVersion = protocolVersion
    w.policyVersion = Int64(version)
    w.weights = TensorCodec.encode(weights, shape: [weights.count])
    return try Array(w.serializedData())
  }

  /// A validated weight blob of exactly `spec.parameterCount` finite floats.
  public static func decode(_ bytes: [UInt8], spec: WireModelSpec) throws -> (version: Int, weights: [Float]) {
    let w: Herd_V1_Weights
    do {
      w = try Herd_V1_Weights(serializedBytes: bytes)
    } catch {
      throw WireError(.undecodable, "weights message of \(bytes.count) bytes: \(error)")
    }
    guard w.protocolVersion == protocolVersion else {
      throw WireError(
        .protocolVersion, "weights have protocol version \(w.protocolVersion), this worker speaks \(protocolVersion)")
    }
    guard w.policyVersion >= 0 else { throw WireError(.badShape, "policy version \(w.policyVersion)") }
    return (Int(w.policyVersion), try TensorCodec.floats(w.weights, shape: [spec.parameterCount], name: "weights"))
  }
}
