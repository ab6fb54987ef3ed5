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

}

/// Errors from the HTTP server and client, naming what failed.
public struct HTTPError: Error, CustomStringConvertible {
  public let description: String
  init(_ d: String) { description = d }
  static func posix(_ what: String) -> HTTPError { HTTPError("\(what): \(String(cString: strerror(errno)))") }
}
