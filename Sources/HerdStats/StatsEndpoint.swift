import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import Synchronization

/// Runs services in a `ServiceGroup` on a dedicated thread (a ``ThreadExecutor``)
/// from synchronous code: the learner daemon's group, or a stats server alone.
///
/// Stopping needs one thread of Swift's cooperative pool (as many threads as cores):
/// Hummingbird and ServiceLifecycle start their shutdown in unstructured tasks,
/// which run there and not on the runner's thread. The blocking ``shutdown()`` and
/// ``wait()`` are for threads of your own; from async code use their `async`
/// forms, which wait without holding a pool thread. (Blocking calls on every pool
/// thread at once, e.g. two parallel tests on two cores, would wait forever.)
public final class ServiceRunner: Sendable {
  private let group: ServiceGroup
  private let executor: ThreadExecutor
  private struct State {
    var outcome: Result<Void, any Error>?
    var waiters: [CheckedContinuation<Void, Never>] = []
  }
  private let state = Mutex(State())
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
      let waiters = state.withLock { s in
        s.outcome = r
        defer { s.waiters = [] }
        return s.waiters
      }
      done.signal()
      for w in waiters { w.resume() }
    }
  }

  /// Asks every service to stop, last first, and waits for the group to end,
  /// blocking this thread (not one of the cooperative pool's: see above).
  public func shutdown() {
    triggerShutdown()
    _ = try? wait()
  }

  /// Asks every service to stop, last first, and waits for the group to end
  /// without blocking a thread.
  public func shutdown() async {
    triggerShutdown()
    _ = try? await wait()
  }

  private func triggerShutdown() {
    let group = self.group
    Task(executorPreference: executor) { await group.triggerGracefulShutdown() }
  }

  /// Waits for the group to end, blocking this thread; rethrows the first
  /// service error.
  public func wait() throws {
    done.wait()
    done.signal()
    try finish()
  }

  /// Waits for the group to end without blocking a thread; rethrows the first
  /// service error.
  public func wait() async throws {
    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
      let ended = state.withLock { s in
        if s.outcome == nil { s.waiters.append(c) }
        return s.outcome != nil
      }
      if ended { c.resume() }
    }
    try finish()
  }

  private func finish() throws {
    let r = state.withLock { $0.outcome }
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

  /// Stops serving and waits until the server has closed, blocking this thread
  /// (from async code use `await stop()`: see ``ServiceRunner``).
  public func stop() { runner.shutdown() }

  /// Stops serving and waits until the server has closed, without blocking a thread.
  public func stop() async { await runner.shutdown() }

  /// A random learner session id (hex).
  public static func newSessionID() -> String {
    String(UInt64.random(in: 1...UInt64.max), radix: 16)
  }
}
