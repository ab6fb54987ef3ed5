import Foundation
import HerdRL
import SwiftProtobuf

/// Swift names for the control channel's messages (the generated types).
public typealias Hello = Herd_V1_Hello
public typealias Welcome = Herd_V1_Welcome
public typealias Reject = Herd_V1_Reject
public typealias Heartbeat = Herd_V1_Heartbeat
public typealias Goodbye = Herd_V1_Goodbye
public typealias Taken = Herd_V1_Taken

extension Herd_V1_Hello {
  /// A hello from this build.
  public init(runID: UInt64, host: String, pid: Int, numEnvs: Int, build: String = "herd") {
    self.init()
    protocolVersion = HerdWire.protocolVersion
    self.runID = runID
    self.host = host
    self.pid = Int32(truncatingIfNeeded: pid)
    self.numEnvs = Int32(truncatingIfNeeded: numEnvs)
    self.build = build
  }
}

/// One message on the control channel.
public enum ControlMessage: Equatable, Sendable {
  case hello(Hello)
  case welcome(Welcome)
  case reject(Reject)
  case heartbeat(Heartbeat)
  case goodbye(Goodbye)
  /// Learner -> worker: flow control (`max_requests_in_flight_per_worker`).
  case taken(Taken)
}

/// The control channel's codec: ControlMessage <-> bytes, with validation of what
/// a receiver can check without session state (sizes, finite numbers, a kind set).
/// The protocol version of a Hello is checked by the learner, which answers a
/// mismatch with a Reject naming both versions.
public enum ControlCodec {
  public static func encode(_ message: ControlMessage) throws -> [UInt8] {
    var m = Herd_V1_ControlMessage()
    switch message {
    case .hello(let x): m.hello = x
    case .welcome(let x): m.welcome = x
    case .reject(let x): m.reject = x
    case .heartbeat(let x): m.heartbeat = x
    case .goodbye(let x): m.goodbye = x
    case .taken(let x): m.taken = x
    }
    return try Array(m.serializedData())
  }

  public static func decode(_ bytes: [UInt8]) throws -> ControlMessage {
    let m: Herd_V1_ControlMessage
    do {
      m = try Herd_V1_ControlMessage(serializedBytes: bytes)
    } catch {
      throw WireError(.undecodable, "control message of \(bytes.count) bytes: \(error)")
    }
    switch m.kind {
    case .hello(let h):
      guard h.numEnvs >= 0, h.numEnvs <= 65_536, h.host.utf8.count <= 256 else {
        throw WireError(.badShape, "hello with num_envs \(h.numEnvs), host of \(h.host.utf8.count) bytes")
      }
      return .hello(h)
    case .welcome(let w): return .welcome(w)
    case .reject(let r): return .reject(r)
    case .heartbeat(let b):
      guard b.envSteps >= 0, b.episodes >= 0, b.stepsPerSecond.isFinite, b.stepsPerSecond >= 0 else {
        throw WireError(
          .nonFinite, "heartbeat with env_steps \(b.envSteps), episodes \(b.episodes), steps/s \(b.stepsPerSecond)")
      }
      return .heartbeat(b)
    case .goodbye(let g): return .goodbye(g)
    case .taken(let t):
      guard t.batches >= 0 else { throw WireError(.badShape, "taken with \(t.batches) batches") }
      return .taken(t)
    case nil: throw WireError(.undecodable, "control message with no kind set")
    }
  }
}

extension Refusal {
  /// The reject that carries this refusal (its code decides; the reason is for people).
  public var reject: Reject {
    var r = Reject()
    r.protocolVersion = HerdWire.protocolVersion
    r.reason = description
    switch self {
    case .protocolVersion: r.code = .protocolVersion
    case .unknownSession: r.code = .unknownSession
    // A worker's own conclusion, never a learner's word; were it sent, it would mean
    // the same to the worker: say hello again.
    case .learnerGone: r.code = .unknownSession
    case .refused: r.code = .refused
    }
    return r
  }

  /// The refusal a reject carries, decided by its code.
  public init(_ r: Reject) {
    switch r.code {
    case .unknownSession: self = .unknownSession
    case .protocolVersion: self = .protocolVersion(worker: HerdWire.protocolVersion, learner: r.protocolVersion)
    case .refused, .unspecified, .UNRECOGNIZED: self = .refused(r.reason)
    }
  }
}
