import Foundation
import Synchronization

/// A flag threads check to stop (set by signals, stop criteria or errors), and can
/// sleep on: ``wait(seconds:)`` returns as soon as it is set.
///
/// Not for C signal handlers (it takes a lock): signals reach it through a
/// dispatch signal source or the service group.
public final class StopFlag: Sendable {
  private let flag = Atomic<Bool>(false)
  private let condition = ConditionBox()

  public init() {}

  /// Sets the flag and wakes every waiter.
  public func set() {
    flag.store(true, ordering: .releasing)
    condition.broadcast()
  }

  public var isSet: Bool { flag.load(ordering: .acquiring) }

  /// Sleeps up to `seconds`, or until the flag is set; returns whether it is set.
  @discardableResult
  public func wait(seconds: Double) -> Bool {
    if isSet { return true }
    condition.wait(until: Date(timeIntervalSinceNow: seconds)) { self.isSet }
    return isSet
  }
}

/// An NSCondition for a ``StopFlag`` (its state is the flag, which is atomic).
final class ConditionBox: @unchecked Sendable {
  private let condition = NSCondition()

  func broadcast() {
    condition.lock()
    condition.broadcast()
    condition.unlock()
  }

  func wait(until deadline: Date, done: () -> Bool) {
    condition.lock()
    defer { condition.unlock() }
    while !done() {
      if !condition.wait(until: deadline) { return }
    }
  }
}

/// A thread that can be joined: ``join()`` waits for its body to return (no
/// polling).
public final class JoinableThread: Sendable {
  private let finished = DispatchSemaphore(value: 0)

  /// Starts `body` on a new thread called `name` with an 8 MiB stack.
  public init(name: String, _ body: @escaping @Sendable () -> Void) {
    let t = Thread { [self] in
      body()
      finished.signal()
    }
    t.name = name
    t.stackSize = 8 << 20
    t.start()
  }

  /// Waits for the body to return.
  public func join() {
    finished.wait()
    finished.signal()  // later joins return at once
  }
}

/// The first error any of several threads hit.
public final class FailureBox: Sendable {
  private let text = Mutex<String?>(nil)
  public init() {}
  /// Records `s` unless an earlier failure is recorded.
  public func set(_ s: String) { text.withLock { if $0 == nil { $0 = s } } }
  public var message: String? { text.withLock { $0 } }
}
