import Foundation
import HerdMath

/// Where workers send fragments. The learner reads them from a ``FragmentSource``.
/// The in-process implementation is ``FragmentQueue``; the ZeroMQ one (PUSH/PULL)
/// implements the same protocols.
public protocol FragmentSink: Sendable {
  /// Hands over a fragment, waiting while the queue is full (backpressure).
  /// Returns false when the channel is closed.
  func send(_ fragment: Fragment) -> Bool
}

/// Where the learner takes fragments from.
public protocol FragmentSource: Sendable {
  /// Up to `max` fragments, waiting at most `timeout` seconds for the first.
  func receive(max: Int, timeout: Double) -> [Fragment]
}

/// A bounded, blocking, multi-producer queue of fragments (the in-memory transport).
public final class FragmentQueue: FragmentSink, FragmentSource, @unchecked Sendable {
  private let condition = NSCondition()
  private var items: [Fragment] = []
  private var head = 0
  private var closed = false
  /// The most fragments held before senders wait.
  public let capacity: Int

  /// A queue holding at most `capacity` fragments.
  public init(capacity: Int) { self.capacity = max(1, capacity) }

  /// Fragments waiting.
  public var depth: Int {
    condition.lock()
    defer { condition.unlock() }
    return items.count - head
  }

  /// Whether a send would not wait now.
  public var hasRoom: Bool {
    condition.lock()
    defer { condition.unlock() }
    return items.count - head < capacity
  }

  public func send(_ fragment: Fragment) -> Bool {
    condition.lock()
    defer { condition.unlock() }
    while !closed && items.count - head >= capacity { condition.wait() }
    if closed { return false }
    items.append(fragment)
    condition.broadcast()
    return true
  }

  public func receive(max: Int, timeout: Double) -> [Fragment] {
    condition.lock()
    defer { condition.unlock() }
    let deadline = Date(timeIntervalSinceNow: timeout)
    while items.count - head == 0 && !closed {
      if !condition.wait(until: deadline) { break }
    }
    let n = min(max, items.count - head)
    let out = Array(items[head..<(head + n)])
    head += n
    if head > 1024 && head * 2 > items.count {
      items.removeFirst(head)
      head = 0
    }
    condition.broadcast()
    return out
  }

  /// Appends without waiting, even past capacity (a network thread that must not
  /// block, and reads only while ``hasRoom``, overshoots by at most one message).
  /// Returns false when closed.
  @discardableResult
  public func enqueue(_ fragments: [Fragment]) -> Bool {
    condition.lock()
    defer { condition.unlock() }
    if closed { return false }
    items += fragments
    condition.broadcast()
    return true
  }

  /// Wakes everyone; later sends fail and receives return what is left.
  public func close() {
    condition.lock()
    closed = true
    condition.broadcast()
    condition.unlock()
  }
}

/// The latest weights, for workers to pick up between steps (the in-memory stand-in
/// for the PUB/SUB weights channel).
public final class WeightBoard: @unchecked Sendable {
  private let lock = SpinlessLock()
  private var version = -1
  private var blob: [Float] = []

  /// An empty board.
  public init() {}

  /// Posts policy `version`.
  public func publish(version: Int, weights: [Float]) {
    lock.withLock {
      self.version = version
      self.blob = weights
    }
  }

  /// The weights if newer than `version`.
  public func latest(newerThan version: Int) -> (version: Int, weights: [Float])? {
    lock.withLock { self.version > version ? (self.version, blob) : nil }
  }
}
