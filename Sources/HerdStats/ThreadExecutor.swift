import Foundation
import Synchronization

/// A task executor backed by one dedicated thread. The learner's async parts (the
/// HTTP server, the service group) run on it rather than on Swift's cooperative
/// pool, which has as many threads as cores (2 here): blocking work elsewhere in
/// the process, or in a test runner, then cannot starve the stats endpoint.
public final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
  // Jobs wait in `jobs` under `condition`; the thread runs them in order.
  private let condition = NSCondition()
  private var jobs: [UnownedJob] = []
  private var stopped = false
  private let finished = DispatchSemaphore(value: 0)

  /// Starts the thread, called `name`.
  public init(name: String) {
    let t = Thread { [self] in loop() }
    t.name = name
    t.start()
  }

  public func enqueue(_ job: consuming ExecutorJob) {
    let unowned = UnownedJob(job)
    condition.lock()
    jobs.append(unowned)
    condition.signal()
    condition.unlock()
  }

  /// Runs what is queued, then ends the thread and waits for it.
  public func shutdown() {
    condition.lock()
    if stopped {
      condition.unlock()
      return
    }
    stopped = true
    condition.signal()
    condition.unlock()
    finished.wait()
  }

  private func loop() {
    while true {
      condition.lock()
      while jobs.isEmpty && !stopped { condition.wait() }
      if jobs.isEmpty && stopped {
        condition.unlock()
        finished.signal()
        return
      }
      let batch = jobs
      jobs.removeAll(keepingCapacity: true)
      condition.unlock()
      for job in batch { job.runSynchronously(on: asUnownedTaskExecutor()) }
    }
  }
}
