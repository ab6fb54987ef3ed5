import Foundation
import HerdMath

#if canImport(Glibc)
  import Glibc
#endif

/// A parsed HTTP request (GET and HEAD are all the stats endpoint serves).
public struct HTTPRequest: Sendable {
  public var method: String
  /// The path without the query, e.g. `/stats`.
  public var path: String
  public var query: [String: String]
  /// Header names lowercased.
  public var headers: [String: String]

  public init(method: String, path: String, query: [String: String] = [:], headers: [String: String] = [:]) {
    self.method = method
    self.path = path
    self.query = query
    self.headers = headers
  }

  /// Parses a request head (request line and headers, up to the blank line).
  public static func parse(_ head: String) -> HTTPRequest? {
    var lines = head.components(separatedBy: "\r\n")
    guard !lines.isEmpty else { return nil }
    let parts = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: true)
    guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else { return nil }
    let target = String(parts[1])
    guard target.hasPrefix("/") else { return nil }
    var path = target
    var query: [String: String] = [:]
    if let q = target.firstIndex(of: "?") {
      path = String(target[..<q])
      for pair in target[target.index(after: q)...].split(separator: "&") {
        let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        let key = String(kv[0]).removingPercentEncoding ?? String(kv[0])
        let value = kv.count > 1 ? (String(kv[1]).removingPercentEncoding ?? String(kv[1])) : ""
        query[key] = value
      }
    }
    var headers: [String: String] = [:]
    for line in lines where !line.isEmpty {
      guard let colon = line.firstIndex(of: ":") else { return nil }
      headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    return HTTPRequest(method: String(parts[0]), path: path, query: query, headers: headers)
  }
}

/// An HTTP response.
public struct HTTPResponse: Sendable {
  public var status: Int
  public var contentType: String
  public var body: [UInt8]
  public var headers: [(String, String)]

  public init(status: Int, contentType: String, body: [UInt8], headers: [(String, String)] = []) {
    self.status = status
    self.contentType = contentType
    self.body = body
    self.headers = headers
  }

  public init(status: Int, text: String, contentType: String = "text/plain; charset=utf-8") {
    self.init(status: status, contentType: contentType, body: Array(text.utf8))
  }

  /// The bytes on the wire; `head` leaves the body out (a HEAD request).
  func serialized(head: Bool) -> [UInt8] {
    var s = "HTTP/1.1 \(status) \(Self.reason(status))\r\n"
    s += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n"
    s += "Cache-Control: no-store\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n"
    for (k, v) in headers { s += "\(k): \(v)\r\n" }
    s += "\r\n"
    return Array(s.utf8) + (head ? [] : body)
  }

  static func reason(_ status: Int) -> String {
    switch status {
    case 200: "OK"
    case 400: "Bad Request"
    case 401: "Unauthorized"
    case 404: "Not Found"
    case 405: "Method Not Allowed"
    case 413: "Content Too Large"
    case 500: "Internal Server Error"
    case 503: "Service Unavailable"
    default: "Status"
    }
  }
}

/// Errors from the HTTP server and client, naming what failed.
public struct HTTPError: Error, CustomStringConvertible {
  public let description: String
  init(_ d: String) { description = d }
  static func posix(_ what: String) -> HTTPError { HTTPError("\(what): \(String(cString: strerror(errno)))") }
}

/// A small HTTP/1.1 server on a POSIX socket: one accept thread, one short-lived
/// thread per connection (at most `maxConnections` at once; beyond that a 503),
/// `Connection: close` after each response, request heads capped at 16 KiB, and
/// 5-second socket timeouts so a slow client cannot hold a thread. Enough for a
/// stats endpoint read by curl, Prometheus, a browser and `herd stats`.
public final class HTTPServer: @unchecked Sendable {
  public typealias Handler = @Sendable (HTTPRequest) -> HTTPResponse
  let handler: Handler
  let maxConnections: Int
  private let lock = SpinlessLock()
  private var active = 0
  private var fd: Int32 = -1
  private var stopping = false
  private var acceptThread: Thread?
  /// The bound port (the real one when 0 was asked for).
  public private(set) var port = 0

  public init(maxConnections: Int = 16, handler: @escaping Handler) {
    self.handler = handler
    self.maxConnections = maxConnections
  }

  /// Binds `host:port` (IPv4 address or name; port 0 = any free port) and starts serving.
  public func start(host: String, port: Int) throws {
    guard (0...65535).contains(port) else { throw HTTPError("stats port \(port) is not a port (0-65535)") }
    var addr = try Self.resolve(host: host, port: port)
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard s >= 0 else { throw HTTPError.posix("socket") }
    var one: Int32 = 1
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    let bound = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else {
      let e = HTTPError.posix("cannot bind the stats endpoint to \(host):\(port)")
      close(s)
      throw e
    }
    guard listen(s, 64) == 0 else {
      let e = HTTPError.posix("listen on \(host):\(port)")
      close(s)
      throw e
    }
    var got = sockaddr_in()
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &got) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) }
    }
    self.port = Int(UInt16(bigEndian: got.sin_port))
    fd = s
    let t = Thread { [self] in acceptLoop() }
    t.name = "herd-stats-accept"
    acceptThread = t
    t.start()
  }

  /// Stops accepting and closes the listening socket (connections in flight finish).
  public func stop() {
    lock.withLock { stopping = true }
    while let t = acceptThread, !t.isFinished { usleep(2000) }
    if fd >= 0 {
      close(fd)
      fd = -1
    }
  }

  deinit { stop() }

  private func acceptLoop() {
    while !lock.withLock({ stopping }) {
      var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      guard poll(&p, 1, 100) > 0 else { continue }
      let c = accept(fd, nil, nil)
      guard c >= 0 else { continue }
      var tv = timeval(tv_sec: 5, tv_usec: 0)
      setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
      setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
      let admitted = lock.withLock { () -> Bool in
        guard active < maxConnections else { return false }
        active += 1
        return true
      }
      if !admitted {
        Self.write(c, HTTPResponse(status: 503, text: "busy: too many connections\n").serialized(head: false))
        close(c)
        continue
      }
      let t = Thread { [self] in
        serve(c)
        close(c)
        lock.withLock { active -= 1 }
      }
      t.name = "herd-stats-conn"
      t.start()
    }
  }

  private func serve(_ c: Int32) {
    var buffer: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    let limit = 16 << 10
    while true {
      if let end = Self.headEnd(buffer) {
        let head = String(decoding: buffer[..<end], as: UTF8.self)
        guard let request = HTTPRequest.parse(head) else {
          Self.write(c, HTTPResponse(status: 400, text: "bad request\n").serialized(head: false))
          return
        }
        guard request.method == "GET" || request.method == "HEAD" else {
          var r = HTTPResponse(status: 405, text: "only GET and HEAD\n")
          r.headers.append(("Allow", "GET, HEAD"))
          Self.write(c, r.serialized(head: false))
          return
        }
        Self.write(c, handler(request).serialized(head: request.method == "HEAD"))
        return
      }
      if buffer.count > limit {
        Self.write(c, HTTPResponse(status: 413, text: "request head over 16 KiB\n").serialized(head: false))
        return
      }
      let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
      if n <= 0 { return }  // closed, timed out or failed: nothing to answer
      buffer += chunk[0..<n]
    }
  }

  static func headEnd(_ b: [UInt8]) -> Int? {
    guard b.count >= 4 else { return nil }
    for i in 0...(b.count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return i }
    return nil
  }

  @discardableResult
  static func write(_ c: Int32, _ bytes: [UInt8]) -> Bool {
    var sent = 0
    while sent < bytes.count {
      let n = bytes.withUnsafeBytes { send(c, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
      if n <= 0 { return false }
      sent += n
    }
    return true
  }

  /// An IPv4 socket address for `host` ("localhost", a dotted quad, 0.0.0.0 or a name).
  static func resolve(host: String, port: Int) throws -> sockaddr_in {
    var hints = addrinfo()
    hints.ai_family = AF_INET
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var result: UnsafeMutablePointer<addrinfo>?
    let rc = getaddrinfo(host, String(port), &hints, &result)
    guard rc == 0, let info = result, let a = info.pointee.ai_addr else {
      throw HTTPError("cannot resolve host \"\(host)\": \(String(cString: gai_strerror(rc)))")
    }
    defer { freeaddrinfo(result) }
    return a.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
  }
}
