import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import Synchronization

/// Runs services in a `ServiceGroup` on a dedicated thread (a ``ThreadExecutor``)
/// from synchronous code: the learner daemon's group, or a stats server alone.
public final class ServiceRunner: Sendable {
  private let group: ServiceGroup
  private let executor: ThreadExecutor
  private let outcome = Mutex<Result<Void, any Error>?>(nil)
  private let done = DispatchSemaphore(value: 0)

  /// Starts `services` (shut down in reverse order). With `signals`, those signals
  /// shut the group down gracefully.
  public init(
    services: [ServiceGroupConfiguration.ServiceConfiguration], signals: [UnixSignal] = [], logger: Logger,
    name: String
  ) {
    var config = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: signals, logger: logger)
    config.maximumGracefulShutdownDuration = Duration.seconds(60)
    let group = ServiceGroup(configuration: config)
    self.group = group
    let executor = ThreadExecutor(name: name)
    self.executor = executor
    Task(executorPreference: executor) { [self] in
      let r: Result<Void, any Error>
      do {
        try await group.run()
        r = .success(())
      } catch {
        r = .failure(error)
      }
      outcome.withLock { $0 = r }
      done.signal()
    }
  }

  /// Asks every service to stop, last first, and waits for the group to end.
  public func shutdown() {
    let group = self.group
    Task(executorPreference: executor) { await group.triggerGracefulShutdown() }
    _ = try? wait()
  }

  /// Waits for the group to end; rethrows the first service error.
  public func wait() throws {
    done.wait()
    done.signal()
    let r = outcome.withLock { $0 }
    executor.shutdown()
    if case .failure(let e)? = r { throw e }
  }
}

/// A stats endpoint on its own: a ``StatsServer`` run by a ``ServiceRunner``
/// (tests, and tools that serve a status board without a learner daemon).
public final class StatsEndpoint: Sendable {
  public let service: StatsService
  let runner: ServiceRunner
  /// `http://HOST:PORT` as bound (the real port when 0 was asked for).
  public let url: String

  /// Starts serving `service` on `host:port`; throws when it cannot bind.
  public init(
    service: StatsService, host: String, port: Int, idleTimeout: Double = 10, logger: Logger = Logger(label: "herd.stats")
  ) throws {
    self.service = service
    let server = StatsServer(service: service, host: host, port: port, idleTimeout: idleTimeout, logger: logger)
    runner = ServiceRunner(services: [.init(service: server)], logger: logger, name: "herd-stats")
    do {
      url = "http://\(host):\(try server.waitUntilBound())"
    } catch {
      runner.shutdown()
      throw error
    }
  }

  /// Stops serving and waits until the server has closed.
  public func stop() { runner.shutdown() }

  /// A random learner session id (hex).
  public static func newSessionID() -> String {
    String(UInt64.random(in: 1...UInt64.max), radix: 16)
  }
}
