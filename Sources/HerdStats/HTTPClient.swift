import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A minimal HTTP/1.1 GET client for `herd stats` and the tests: plain http://,
/// one request per connection, the body read to the end (the stats server closes
/// after each response). FoundationNetworking's URLSession would pull in libcurl.
public enum HTTPClient {
  /// An HTTP answer.
  public struct Reply: Sendable {
    public var status: Int
    /// Header names lowercased.
    public var headers: [String: String]
    public var body: [UInt8]
    public var text: String { String(decoding: body, as: UTF8.self) }
  }

  /// Splits `http://HOST:PORT/PATH` (port defaults to 80, path to `/`).
  public static func parse(url: String) throws -> (host: String, port: Int, path: String) {
    guard url.hasPrefix("http://") else {
      throw HTTPError("\(url) is not an http:// URL (e.g. http://127.0.0.1:5558)")
    }
    let rest = url.dropFirst("http://".count)
    let slash = rest.firstIndex(of: "/") ?? rest.endIndex
    let authority = rest[..<slash]
    let path = slash == rest.endIndex ? "/" : String(rest[slash...])
    var host = String(authority)
    var port = 80
    if let colon = authority.lastIndex(of: ":") {
      host = String(authority[..<colon])
      guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else {
        throw HTTPError("\(url): the port is not a number in 1-65535")
      }
      port = p
    }
    guard !host.isEmpty else { throw HTTPError("\(url) names no host") }
    return (host, port, path)
  }

  /// GETs `url`, sending `Authorization: Bearer TOKEN` when a token is given.
  public static func get(_ url: String, token: String? = nil, timeout: Double = 5) throws -> Reply {
    let (host, port, path) = try parse(url: url)
    var addr = try resolve(host: host, port: port)
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard s >= 0 else { throw HTTPError.posix("socket") }
    defer { close(s) }
    var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let rc = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else { throw HTTPError.posix("cannot connect to \(host):\(port)") }
    var request = "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUser-Agent: herd\r\nConnection: close\r\n"
    if let token { request += "Authorization: Bearer \(token)\r\n" }
    request += "\r\n"
    guard write(s, Array(request.utf8)) else { throw HTTPError.posix("sending to \(host):\(port)") }
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
      let n = chunk.withUnsafeMutableBytes { recv(s, $0.baseAddress, $0.count, 0) }
      if n == 0 { break }
      if n < 0 { throw HTTPError.posix("reading from \(host):\(port)") }
      data += chunk[0..<n]
      if data.count > 64 << 20 { throw HTTPError("\(url): answer over 64 MiB") }
    }
    guard let end = headEnd(data) else { throw HTTPError("\(url): not an HTTP answer") }
    var lines = String(decoding: data[..<end], as: UTF8.self).components(separatedBy: "\r\n")
    let statusLine = lines.removeFirst().split(separator: " ")
    guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/"), let status = Int(statusLine[1]) else {
      throw HTTPError("\(url): not an HTTP status line")
    }
    var headers: [String: String] = [:]
    for line in lines {
      guard let colon = line.firstIndex(of: ":") else { continue }
      headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    var body = Array(data[(end + 4)...])
    if let n = headers["content-length"].flatMap(Int.init), n < body.count { body = Array(body[..<n]) }
    return Reply(status: status, headers: headers, body: body)
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
