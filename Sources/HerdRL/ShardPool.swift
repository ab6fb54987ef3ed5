import Foundation
import HerdMath

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
