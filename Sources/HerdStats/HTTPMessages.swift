import Foundation

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
