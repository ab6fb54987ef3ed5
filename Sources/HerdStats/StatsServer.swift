import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// The stats endpoint's HTTP server: a ``StatsService`` behind Hummingbird (on
/// SwiftNIO), as a `Service` for the learner's service group.
///
/// Connections cost no thread each, so slow or idle clients cannot crowd out
/// `/healthz`; a connection that has not sent a complete request head within
/// ``idleTimeout`` (or sat idle that long between requests) is closed.
public final class StatsServer: Service, Sendable {
  public let service: StatsService
  public let host: String
  /// The port asked for (0: any free port).
  public let requestedPort: Int
  /// Seconds a connection may go without a complete request before it is closed.
  public let idleTimeout: Double
  let logger: Logger
  private let bound = Mutex<BindState>(.waiting)
  private let boundSignal = DispatchSemaphore(value: 0)

  enum BindState {
    case waiting
    case bound(Int)
    case failed(String)
  }

  public init(service: StatsService, host: String, port: Int, idleTimeout: Double = 10, logger: Logger) {
    self.service = service
    self.host = host
    self.requestedPort = port
    self.idleTimeout = idleTimeout
    self.logger = logger
  }

  public func run() async throws {
    let service = self.service
    let responder = CallbackResponder<BasicRequestContext> { request, _ in
      StatsServer.response(service.handle(StatsServer.request(request)), head: request.method == .head)
    }
    var serverLogger = logger
    serverLogger.logLevel = max(logger.logLevel, .warning)  // not a line per connection
    let app = Application(
      responder: responder,
      server: .http1(configuration: .init(idleTimeout: .milliseconds(Int64(idleTimeout * 1000)))),
      configuration: .init(address: .hostname(host, port: requestedPort), serverName: nil),
      onServerRunning: { [self] channel in
        bound.withLock { $0 = .bound(channel.localAddress?.port ?? requestedPort) }
        boundSignal.signal()
      },
      logger: serverLogger)
    do {
      try await app.run()
    } catch {
      let first = bound.withLock { state -> Bool in
        if case .waiting = state {
          state = .failed("cannot serve the stats endpoint on \(host):\(requestedPort): \(error)")
          return true
        }
        return false
      }
      if first { boundSignal.signal() }
      throw error
    }
  }

  /// Waits until the server listens (at most `timeout` seconds) and returns its
  /// port; throws when binding failed.
  public func waitUntilBound(timeout: Double = 10) throws -> Int {
    if boundSignal.wait(timeout: .now() + timeout) == .success { boundSignal.signal() }
    guard let port = try boundPort() else { throw notStarted(within: timeout) }
    return port
  }

  /// Waits until the server listens (at most `timeout` seconds) and returns its
  /// port, suspending instead of blocking; throws when binding failed.
  public func waitUntilBound(timeout: Double = 10) async throws -> Int {
    let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
    while true {
      if let port = try boundPort() { return port }
      guard ContinuousClock.now < deadline else { throw notStarted(within: timeout) }
      try await Task.sleep(for: .milliseconds(2))
    }
  }

  /// The port once bound, nil while starting; throws when binding failed.
  private func boundPort() throws -> Int? {
    switch bound.withLock({ $0 }) {
    case .bound(let p): return p
    case .failed(let why): throw HTTPError(why)
    case .waiting: return nil
    }
  }

  private func notStarted(within timeout: Double) -> HTTPError {
    HTTPError("the stats endpoint on \(host):\(requestedPort) did not start within \(Int(timeout)) s")
  }

  /// The request as ``StatsService`` reads it.
  static func request(_ r: Request) -> HTTPRequest {
    var headers: [String: String] = [:]
    for field in r.headers { headers[field.name.canonicalName] = field.value }
    return HTTPRequest(method: r.method.rawValue, path: r.uri.path, headers: headers)
  }

  /// Hummingbird's response for `r` (no body for HEAD, the length still given).
  static func response(_ r: HTTPResponse, head: Bool) -> Response {
    var fields = HTTPFields()
    fields[.contentType] = r.contentType
    fields[.cacheControl] = "no-store"
    fields[.xContentTypeOptions] = "nosniff"
    for (k, v) in r.headers {
      if let name = HTTPField.Name(k) { fields.append(HTTPField(name: name, value: v)) }
    }
    if head {
      fields[.contentLength] = String(r.body.count)
      return Response(status: .init(code: r.status), headers: fields, body: .init())
    }
    return Response(status: .init(code: r.status), headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: r.body)))
  }
}
