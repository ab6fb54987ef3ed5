import CZeroMQ
import Foundation
import HerdRL
import Synchronization
import HerdMath

/// ZeroMQ's authentication protocol (ZAP, RFC 27) for CURVE: a REP socket bound to
/// `inproc://zeromq.zap.01` in the learner's context, on its own thread, answering
/// every handshake of the context's CURVE server sockets. It admits a client whose
/// public key is in `authorized` and refuses any other (status 400), counting each
/// refusal and logging each refused key once. Started before the server sockets
/// bind: without a handler libzmq would let every client in.
public final class ZAPAuthenticator: @unchecked Sendable {
  /// Authorised keys by raw bytes -> their name (the .pub file's name).
  let authorized: [[UInt8]: String]
  let log: @Sendable (String) -> Void
  let onRefused: @Sendable () -> Void
  private struct Tally {
    var refusedKeys: Set<String> = []
    var admitted = 0
    var refused = 0
  }
  private let tally = Mutex(Tally())
  private let stop = StopFlag()
  private var thread: JoinableThread?

  /// An authenticator admitting `authorized` (name -> key); `onRefused` runs for each refusal.
  public init(
    authorized: [String: CurveKey], log: @escaping @Sendable (String) -> Void,
    onRefused: @escaping @Sendable () -> Void = {}
  ) {
    var byBytes: [[UInt8]: String] = [:]
    for (name, key) in authorized { byBytes[key.bytes] = name }
    self.authorized = byBytes
    self.log = log
    self.onRefused = onRefused
  }

  /// Binds the ZAP endpoint in `context` and starts answering; returns once bound.
  public func start(_ context: ZMQContext) throws {
    let socket = try ZMQSocket(context, .rep)
    try socket.bind("inproc://zeromq.zap.01")
    thread = JoinableThread(name: "herd-zap") { [self] in
      while !stop.isSet {
        do {
          guard let frames = try socket.receive(timeoutMs: 100) else { continue }
          try socket.send(answer(frames))
        } catch {
          if case ZMQError.closed = error { break }
          log("zap: \(error)")
        }
      }
      socket.close()
    }
  }

  /// Stops answering and waits for the thread.
  public func shutdown() {
    stop.set()
    thread?.join()
  }

  /// Handshakes admitted and refused so far.
  public var counts: (admitted: Int, refused: Int) { tally.withLock { ($0.admitted, $0.refused) } }

  /// The reply to one ZAP request: version, request id, domain, address, identity,
  /// mechanism, credentials... -> version, request id, status code, status text,
  /// user id, metadata.
  func answer(_ f: [[UInt8]]) -> [[UInt8]] {
    let requestID = f.count > 1 ? f[1] : []
    func reply(_ code: String, _ text: String, user: String = "") -> [[UInt8]] {
      [Array("1.0".utf8), requestID, Array(code.utf8), Array(text.utf8), Array(user.utf8), []]
    }
    guard f.count >= 6, String(decoding: f[0], as: UTF8.self) == "1.0" else {
      return reply("400", "malformed ZAP request")
    }
    let address = String(decoding: f[3], as: UTF8.self)
    let mechanism = String(decoding: f[5], as: UTF8.self)
    guard mechanism == "CURVE", f.count >= 7, f[6].count == 32 else {
      refuse(key: "(\(mechanism) without a CURVE key)", address: address)
      return reply("400", "CURVE required")
    }
    if let name = authorized[f[6]] {
      tally.withLock { $0.admitted += 1 }
      return reply("200", "OK", user: name)
    }
    let key = (try? CurveKey(bytes: f[6]).z85) ?? "?"
    refuse(key: key, address: address)
    return reply("400", "unknown key")
  }

  private func refuse(key: String, address: String) {
    let first = tally.withLock { t -> Bool in
      t.refused += 1
      return t.refusedKeys.insert(key).inserted
    }
    onRefused()
    if first {
      log("refused a worker from \(address): public key \(key) is not among the authorized keys; further attempts with it are only counted")
    }
  }
}
