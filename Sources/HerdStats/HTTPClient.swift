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
    var addr = try HTTPServer.resolve(host: host, port: port)
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
    guard HTTPServer.write(s, Array(request.utf8)) else { throw HTTPError.posix("sending to \(host):\(port)") }
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
      let n = chunk.withUnsafeMutableBytes { recv(s, $0.baseAddress, $0.count, 0) }
      if n == 0 { break }
      if n < 0 { throw HTTPError.posix("reading from \(host):\(port)") }
      data += chunk[0..<n]
      if data.count > 64 << 20 { throw HTTPError("\(url): answer over 64 MiB") }
    }
    guard let end = HTTPServer.headEnd(data) else { throw HTTPError("\(url): not an HTTP answer") }
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
}
