import CZeroMQ

#if canImport(Glibc)
  import Glibc
#endif

/// Errors from libzmq calls.
public enum ZMQError: Error, Equatable, CustomStringConvertible {
  /// A libzmq call failed; `call` names it, `errno`/`message` say why.
  case call(String, errno: Int32, message: String)
  /// The socket or context was closed (or the context is terminating).
  case closed

  public var description: String {
    switch self {
    case .call(let call, let e, let message): return "\(call) failed: \(message) (errno \(e))"
    case .closed: return "socket closed"
    }
  }

  static func last(_ call: String) -> ZMQError {
    let e = zmq_errno()
    if e == ETERM { return .closed }
    return .call(call, errno: e, message: String(cString: zmq_strerror(e)))
  }
}

/// libzmq's version, e.g. "4.3.4".
public var zmqVersion: String {
  var major: Int32 = 0
  var minor: Int32 = 0
  var patch: Int32 = 0
  zmq_version(&major, &minor, &patch)
  return "\(major).\(minor).\(patch)"
}

/// A ZeroMQ context (thread-safe; one per process).
public final class ZMQContext: @unchecked Sendable {
  let handle: UnsafeMutableRawPointer

  /// A new context with libzmq's default I/O threads.
  public init() throws {
    guard let h = zmq_ctx_new() else { throw ZMQError.last("zmq_ctx_new") }
    handle = h
  }

  /// Makes blocking calls on every socket of this context return `.closed`.
  public func shutdown() { zmq_ctx_shutdown(handle) }

  deinit { zmq_ctx_term(handle) }
}

/// The socket patterns Herd uses.
public enum SocketType: Sendable {
  case router, dealer, push, pull, pub, sub, rep, pair

  var raw: Int32 {
    switch self {
    case .router: return ZMQ_ROUTER
    case .dealer: return ZMQ_DEALER
    case .push: return ZMQ_PUSH
    case .pull: return ZMQ_PULL
    case .pub: return ZMQ_PUB
    case .sub: return ZMQ_SUB
    case .rep: return ZMQ_REP
    case .pair: return ZMQ_PAIR
    }
  }
}

/// A ZeroMQ socket. Not thread-safe: one thread owns it, sends and receives on it,
/// and closes it (the `@unchecked Sendable` only lets it be handed to that thread).
public final class ZMQSocket: @unchecked Sendable {
  private var handle: UnsafeMutableRawPointer?
  /// The pattern.
  public let type: SocketType
  private let message: UnsafeMutablePointer<zmq_msg_t>
  /// Kept alive while the socket is: `zmq_ctx_term` waits for every open socket,
  /// so a context released before its sockets would hang forever.
  private let context: ZMQContext

  /// A socket of `type` in `context`, with linger 0 (close never blocks on unsent
  /// messages: a learner or worker that stops must not hang).
  public init(_ context: ZMQContext, _ type: SocketType) throws {
    guard let h = zmq_socket(context.handle, type.raw) else { throw ZMQError.last("zmq_socket") }
    handle = h
    self.type = type
    self.context = context
    message = .allocate(capacity: 1)
    try setOption(ZMQ_LINGER, 0)
  }

  deinit {
    close()
    message.deallocate()
  }

  /// Closes the socket (idempotent).
  public func close() {
    if let h = handle { zmq_close(h) }
    handle = nil
  }

  func socket() throws -> UnsafeMutableRawPointer {
    guard let h = handle else { throw ZMQError.closed }
    return h
  }

  // MARK: Options

  /// Sets an integer option (`ZMQ_SNDHWM`, `ZMQ_RCVHWM`, `ZMQ_LINGER`,
  /// `ZMQ_RECONNECT_IVL`, `ZMQ_RECONNECT_IVL_MAX`, ...).
  public func setOption(_ option: Int32, _ value: Int32) throws {
    var v = value
    guard zmq_setsockopt(try socket(), option, &v, MemoryLayout<Int32>.size) == 0 else {
      throw ZMQError.last("zmq_setsockopt(\(option))")
    }
  }

  /// Largest inbound message in bytes (`ZMQ_MAXMSGSIZE`); larger ones drop the peer.
  public func setMaxMessageSize(_ bytes: Int64) throws {
    var v = bytes
    guard zmq_setsockopt(try socket(), ZMQ_MAXMSGSIZE, &v, MemoryLayout<Int64>.size) == 0 else {
      throw ZMQError.last("zmq_setsockopt(ZMQ_MAXMSGSIZE)")
    }
  }

  /// Send and receive high-water marks (messages queued before a send blocks or drops).
  public func setHighWaterMarks(send: Int32, receive: Int32) throws {
    try setOption(ZMQ_SNDHWM, send)
    try setOption(ZMQ_RCVHWM, receive)
  }

  /// How long a blocking send waits for room below the high-water mark before it
  /// gives up (``send(_:dontWait:)`` then returns false); -1: forever.
  public func setSendTimeout(ms: Int32) throws {
    try setOption(ZMQ_SNDTIMEO, ms)
  }

  /// Kernel socket buffer sizes in bytes (ZMQ_SNDBUF / ZMQ_RCVBUF). High-water marks
  /// count messages in ZeroMQ's queues; the kernel's TCP buffers (megabytes by
  /// default) hold more on top, so bounding them is what bounds data in flight.
  public func setKernelBuffers(send: Int32, receive: Int32) throws {
    try setOption(ZMQ_SNDBUF, send)
    try setOption(ZMQ_RCVBUF, receive)
  }

  /// ZMTP heartbeats: a PING every `intervalMs`, and the connection is closed
  /// (a disconnection event) when nothing arrived for `timeoutMs`. libzmq answers
  /// the peer's PINGs itself, however busy the application is.
  public func setHeartbeat(intervalMs: Int32, timeoutMs: Int32) throws {
    try setOption(ZMQ_HEARTBEAT_IVL, intervalMs)
    try setOption(ZMQ_HEARTBEAT_TIMEOUT, timeoutMs)
  }

  /// Reconnect backoff: first retry after `initialMs`, doubling up to `maxMs`.
  public func setReconnect(initialMs: Int32, maxMs: Int32) throws {
    try setOption(ZMQ_RECONNECT_IVL, initialMs)
    try setOption(ZMQ_RECONNECT_IVL_MAX, maxMs)
  }

  /// Subscribes a SUB socket to messages starting with `prefix` (empty: all).
  public func subscribe(_ prefix: [UInt8] = []) throws {
    let rc = prefix.withUnsafeBytes { zmq_setsockopt(try? socket(), ZMQ_SUBSCRIBE, $0.baseAddress, prefix.count) }
    guard rc == 0 else { throw ZMQError.last("zmq_setsockopt(ZMQ_SUBSCRIBE)") }
  }

  // MARK: Endpoints

  /// Binds to `endpoint` and returns the endpoint actually bound (an ephemeral port
  /// for `tcp://127.0.0.1:*`).
  @discardableResult
  public func bind(_ endpoint: String) throws -> String {
    let s = try socket()
    guard zmq_bind(s, endpoint) == 0 else { throw ZMQError.last("zmq_bind(\(endpoint))") }
    var buffer = [CChar](repeating: 0, count: 256)
    var size = buffer.count
    guard zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 else { return endpoint }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  /// Connects to `endpoint` (ZeroMQ reconnects by itself when the peer goes away).
  public func connect(_ endpoint: String) throws {
    guard zmq_connect(try socket(), endpoint) == 0 else { throw ZMQError.last("zmq_connect(\(endpoint))") }
  }

  // MARK: Messages

  /// Sends the frames of one multipart message. With `dontWait`, returns false
  /// instead of blocking when the high-water mark is reached; without, it blocks
  /// until there is room, and returns false when the send timeout
  /// (``setSendTimeout(ms:)``) passes first or a signal interrupts the wait (the
  /// caller decides whether to try again).
  @discardableResult
  public func send(_ frames: [[UInt8]], dontWait: Bool = false) throws -> Bool {
    let s = try socket()
    for (i, frame) in frames.enumerated() {
      var flags: Int32 = i < frames.count - 1 ? ZMQ_SNDMORE : 0
      if dontWait { flags |= ZMQ_DONTWAIT }
      let rc = frame.withUnsafeBytes { zmq_send(s, $0.baseAddress, frame.count, flags) }
      if rc < 0 {
        if (zmq_errno() == EAGAIN || zmq_errno() == EINTR) && i == 0 { return false }
        throw ZMQError.last("zmq_send")
      }
    }
    return true
  }

  /// Waits up to `timeoutMs` (-1: forever) for a message and returns its frames,
  /// or nil on timeout.
  public func receive(timeoutMs: Int32) throws -> [[UInt8]]? {
    let s = try socket()
    var item = zmq_pollitem_t(socket: s, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
    let rc = zmq_poll(&item, 1, Int(timeoutMs))
    if rc < 0 {
      if zmq_errno() == EINTR { return nil }
      throw ZMQError.last("zmq_poll")
    }
    guard rc > 0 else { return nil }
    var frames: [[UInt8]] = []
    repeat {
      zmq_msg_init(message)
      defer { zmq_msg_close(message) }
      guard zmq_msg_recv(message, s, 0) >= 0 else { throw ZMQError.last("zmq_msg_recv") }
      let size = zmq_msg_size(message)
      if size > 0, let data = zmq_msg_data(message) {
        frames.append(Array(UnsafeRawBufferPointer(start: data, count: size)))
      } else {
        frames.append([])
      }
    } while moreFrames(s)
    return frames
  }

  /// Whether the message being received has more frames (ZMQ_RCVMORE; asked after
  /// the frame is closed, where `zmq_msg_more` no longer may be).
  private func moreFrames(_ s: UnsafeMutableRawPointer) -> Bool {
    var more: Int32 = 0
    var size = MemoryLayout<Int32>.size
    return zmq_getsockopt(s, ZMQ_RCVMORE, &more, &size) == 0 && more != 0
  }
}

extension ZMQSocket {
  /// Waits up to `timeoutMs` until any of `sockets` has a message to read, or any
  /// of the file descriptors `fds` is readable; returns which ones are, sockets
  /// first (all false on timeout or an interrupted wait).
  public static func poll(_ sockets: [ZMQSocket], fds: [Int32] = [], timeoutMs: Int32) throws -> [Bool] {
    var items = try sockets.map { zmq_pollitem_t(socket: try $0.socket(), fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
    items += fds.map { zmq_pollitem_t(socket: nil, fd: $0, events: Int16(ZMQ_POLLIN), revents: 0) }
    let rc = zmq_poll(&items, Int32(items.count), Int(timeoutMs))
    if rc < 0 {
      if zmq_errno() == EINTR { return items.map { _ in false } }
      throw ZMQError.last("zmq_poll")
    }
    return items.map { ($0.revents & Int16(ZMQ_POLLIN)) != 0 }
  }
}

extension ZMQSocket {
  /// Connection events of a socket (handshakes, failed or not, and disconnections),
  /// read through `zmq_socket_monitor` (a PAIR socket on an inproc endpoint in the
  /// same context). Used by workers to tell "the learner refused my key" from "no
  /// answer", and to notice a learner that went away.
  public func monitorConnection(_ context: ZMQContext, name: String) throws -> ZMQSocket {
    let endpoint = "inproc://herd-monitor-\(name)"
    let events = ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
      | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED
    guard zmq_socket_monitor(try socket(), endpoint, events) == 0 else { throw ZMQError.last("zmq_socket_monitor") }
    let pair = try ZMQSocket(context, .pair)
    try pair.connect(endpoint)
    return pair
  }
}

/// A monitor event: what happened and its value (an error or ZAP status code).
public struct ZMQMonitorEvent: Sendable, Equatable {
  public var event: Int32
  public var value: UInt32

  /// Parses the first frame of a monitor message (16-bit event, 32-bit value).
  public init?(_ frames: [[UInt8]]) {
    guard let f = frames.first, f.count >= 6 else { return nil }
    event = Int32(UInt16(f[0]) | UInt16(f[1]) << 8)
    value = UInt32(f[2]) | UInt32(f[3]) << 8 | UInt32(f[4]) << 16 | UInt32(f[5]) << 24
  }

  public var isAuthFailure: Bool { event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH }
  /// The peers' security mechanisms differ (CURVE on one side, none on the other).
  public var isMechanismMismatch: Bool {
    event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && value == UInt32(ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
  }
  /// The handshake broke off with no ZeroMQ reason: the peer does not speak ZMTP.
  public var isNotZeroMQ: Bool { event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL }
  /// A connection's handshake completed: it is up (again).
  public var isHandshakeSuccess: Bool { event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED }
  /// A connection closed: the peer went away, or ZMTP heartbeats timed out.
  public var isDisconnected: Bool { event == ZMQ_EVENT_DISCONNECTED }
  public var isHandshakeFailure: Bool {
    event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH || event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
      || event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
  }
}
