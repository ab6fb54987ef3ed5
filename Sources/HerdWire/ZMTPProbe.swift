import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Whether a TCP endpoint is a ZeroMQ peer, told by what it sends first.
///
/// ZMTP 3 has both sides send their greeting as soon as the connection opens; its
/// first ten bytes are the signature `0xFF`, eight padding bytes and `0x7F`. A
/// server of another protocol (HTTP: the learner's stats port) sends nothing until
/// it has a request. libzmq's monitor cannot always tell the two apart: a
/// connection that a ZeroMQ socket of the wrong type (a learner's fragment or
/// weights port) closes during the handshake is sometimes reported as a handshake
/// that failed without detail, as a peer that is not ZeroMQ at all is.
public enum ZMTPProbe {
  /// True when `host:port` (over TCP; an IPv6 address in brackets or not) sends
  /// the ZMTP signature within `timeoutMs`; false when it answers otherwise or not
  /// at all; nil when no connection opens.
  public static func speaksZeroMQ(host: String, port: Int, timeoutMs: Int32 = 500) -> Bool? {
    let host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var list: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else { return nil }
    defer { freeaddrinfo(list) }
    let s = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    guard s >= 0 else { return nil }
    defer { close(s) }
    if connect(s, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0 {
      guard errno == EINPROGRESS, wait(s, for: Int16(POLLOUT), ms: timeoutMs) else { return nil }
      var error: Int32 = 0
      var length = socklen_t(MemoryLayout<Int32>.size)
      guard getsockopt(s, SOL_SOCKET, SO_ERROR, &error, &length) == 0, error == 0 else { return nil }
    }
    var greeting = [UInt8](repeating: 0, count: 10)
    var got = 0
    let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeoutMs) * 1_000_000
    while got < 10 {
      let now = DispatchTime.now().uptimeNanoseconds
      guard now < deadline, wait(s, for: Int16(POLLIN), ms: Int32((deadline - now) / 1_000_000) + 1) else { break }
      let n = greeting.withUnsafeMutableBytes { recv(s, $0.baseAddress! + got, 10 - got, 0) }
      if n <= 0 { break }
      got += n
    }
    return got == 10 && greeting[0] == 0xFF && greeting[9] == 0x7F
  }

  /// Whether `fd` is ready for `events` within `ms`.
  static func wait(_ fd: Int32, for events: Int16, ms: Int32) -> Bool {
    var p = pollfd(fd: fd, events: events, revents: 0)
    return poll(&p, 1, ms) == 1 && p.revents & events != 0
  }
}
