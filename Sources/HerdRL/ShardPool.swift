import Foundation

/// A fixed set of threads that run shard jobs `0..<count` of one call together
/// (shard 0 on the caller's thread) and return when all are done. Used by the
/// learner to compute parts of a batch in parallel with single-threaded BLAS:
/// OpenBLAS's own threading scales poorly on products of 32 rows.
public final class ShardPool: @unchecked Sendable {
  /// Shards per call.
  public let count: Int
  private let condition = NSCondition()
  private var job: ((Int) -> Void)?
  private var generation = 0
  private var pending = 0
  private var stopping = false
  private var threads: [Thread] = []

  /// A pool running `count` shards per call (`count - 1` helper threads).
  public init(count: Int) {
    self.count = max(1, count)
    for shard in 1..<self.count {
      let t = Thread { self.loop(shard) }
      t.name = "herd-learner-shard-\(shard)"
      threads.append(t)
      t.start()
    }
  }

  /// Stops the helper threads (they hold the pool until then).
  public func shutdown() {
    condition.lock()
    stopping = true
    condition.broadcast()
    condition.unlock()
  }

  /// Runs `body(shard)` for every shard in parallel and waits for all.
  public func run(_ body: @escaping (Int) -> Void) {
    guard count > 1 else {
      body(0)
      return
    }
    condition.lock()
    job = body
    pending = count - 1
    generation += 1
    condition.broadcast()
    condition.unlock()
    body(0)
    condition.lock()
    while pending > 0 { condition.wait() }
    job = nil
    condition.unlock()
  }

  private func loop(_ shard: Int) {
    var seen = 0
    while true {
      condition.lock()
      while generation == seen && !stopping { condition.wait() }
      if stopping {
        condition.unlock()
        return
      }
      seen = generation
      let body = job
      condition.unlock()
      body?(shard)
      condition.lock()
      pending -= 1
      condition.broadcast()
      condition.unlock()
    }
  }
}
