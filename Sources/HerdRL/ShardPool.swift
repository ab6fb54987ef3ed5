import Foundation
import Synchronization
import HerdMath

/// A fixed set of threads that run shard jobs `0..<count` of one call together
/// (shard 0 on the caller's thread) and return when all are done. Used by the
/// learner to compute parts of a batch in parallel with single-threaded BLAS:
/// OpenBLAS's own threading scales poorly on products of 32 rows.
///
/// Waking a thread asleep on a condition took 47-121 us here (a 2-core VM, where
/// the idle core's vCPU halts), about 1% of a learner step per call, and a step
/// makes three calls back to back (the shards, the gradient sum, the update). So a
/// helper that finishes a job first watches for the next one for up to
/// ``spinSeconds`` before it sleeps on the condition, and the caller watches for the
/// helpers to finish for up to ten times that: calls that follow each other within
/// that time never sleep (an empty call: 47 us before, 1-2 us after; one after an
/// idle 2 ms: 112-145 us either way).
public final class ShardPool: @unchecked Sendable {
  /// Shards per call.
  public let count: Int
  /// How long a thread watches for its next event before it sleeps.
  public let spinSeconds: Double
  private let condition = NSCondition()
  private var job: ((Int) -> Void)?
  private var generation = 0
  private var stopping = false
  private var threads: [Thread] = []
  /// `generation` and `stopping`, readable without the lock while spinning.
  private let published = Atomic<Int>(0)
  private let stopped = Atomic<Bool>(false)
  /// Helpers still running the current job.
  private let pending = Atomic<Int>(0)

  /// A pool running `count` shards per call (`count - 1` helper threads) that spin
  /// up to `spinSeconds` (default 200 us) for the next event before sleeping.
  public init(count: Int, spinSeconds: Double = 200e-6) {
    self.count = max(1, count)
    self.spinSeconds = max(0, spinSeconds)
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
    stopped.store(true, ordering: .releasing)
    condition.broadcast()
    condition.unlock()
  }

  /// `parts` contiguous slices of `0..<count` cut at multiples of `alignment`, as
  /// even as that allows (empty ones at the end when there are fewer multiples than
  /// parts): for shards that each work on their own part of one vector.
  public static func slices(count: Int, parts: Int, alignment: Int) -> [Range<Int>] {
    precondition(count >= 0 && parts >= 1 && alignment >= 1, "ShardPool.slices(\(count), \(parts), \(alignment))")
    let units = (count + alignment - 1) / alignment
    let cuts = (0...parts).map { min(count, ($0 * units / parts) * alignment) }
    return (0..<parts).map { cuts[$0]..<cuts[$0 + 1] }
  }

  /// `total = parts[0] + parts[1] + ...` over `count` floats, added in that order,
  /// each shard over its own slice (``slices(count:parts:alignment:)``); then
  /// `after(slice)` on the same thread. `total` may be `parts[0]` (its sum in place).
  public func sum(
    _ parts: [UnsafePointer<Float>], into total: UnsafeMutablePointer<Float>, count: Int,
    alignment: Int = Kernels.normBlock, after: ((Range<Int>) -> Void)? = nil
  ) {
    precondition(!parts.isEmpty, "ShardPool.sum of no parts")
    let slices = Self.slices(count: count, parts: self.count, alignment: alignment)
    run { s in
      let r = slices[s]
      guard !r.isEmpty else { return }
      if parts[0] != UnsafePointer(total) { (total + r.lowerBound).update(from: parts[0] + r.lowerBound, count: r.count) }
      for part in parts.dropFirst() { BLAS.axpy(1, part + r.lowerBound, total + r.lowerBound, count: r.count) }
      after?(r)
    }
  }

  /// Runs `body(shard)` for every shard in parallel and waits for all.
  public func run(_ body: @escaping (Int) -> Void) {
    guard count > 1 else {
      body(0)
      return
    }
    condition.lock()
    job = body
    pending.store(count - 1, ordering: .relaxed)
    generation += 1
    published.store(generation, ordering: .releasing)
    condition.broadcast()
    condition.unlock()
    body(0)
    // The helpers are running (or about to): watch for them longer than an idle
    // helper watches for work, since a woken helper may itself take ~100 us to start.
    spin(seconds: 10 * spinSeconds) { self.pending.load(ordering: .acquiring) == 0 }
    condition.lock()
    while pending.load(ordering: .acquiring) > 0 { condition.wait() }
    job = nil
    condition.unlock()
  }

  /// Returns when `done()` holds or `seconds` (default ``spinSeconds``) have passed.
  private func spin(seconds: Double? = nil, until done: () -> Bool) {
    let spinSeconds = seconds ?? self.spinSeconds
    guard spinSeconds > 0, !done() else { return }
    let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(spinSeconds * 1e9)
    var polls = 0
    while !done() {
      polls &+= 1
      if polls & 63 == 0 && DispatchTime.now().uptimeNanoseconds >= deadline { return }
    }
  }

  private func loop(_ shard: Int) {
    var seen = 0
    while true {
      spin { self.published.load(ordering: .acquiring) != seen || self.stopped.load(ordering: .acquiring) }
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
      if pending.wrappingSubtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
        // The caller may be asleep on the condition; it checks `pending` under the lock.
        condition.lock()
        condition.broadcast()
        condition.unlock()
      }
    }
  }
}
