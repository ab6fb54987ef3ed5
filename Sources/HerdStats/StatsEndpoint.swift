import Foundation
import HerdLearner
import HerdRL

/// The stats endpoint as the learner runs it: a ``StatsService`` behind an
/// ``HTTPServer`` on the learner's host.
public final class StatsEndpoint: Sendable {
  public let service: StatsService
  let server: HTTPServer
  /// `http://HOST:PORT` as bound (the real port when 0 was asked for).
  public let url: String

  /// Starts serving `service` on `host:port`.
  public init(service: StatsService, host: String, port: Int) throws {
    self.service = service
    let server = HTTPServer { request in service.handle(request) }
    try server.start(host: host, port: port)
    self.server = server
    url = "http://\(host):\(server.port)"
  }

  /// Stops accepting connections.
  public func stop() { server.stop() }

  /// A random learner session id (hex).
  public static func newSessionID() -> String {
    String(UInt64.random(in: 1...UInt64.max), radix: 16)
  }
}
