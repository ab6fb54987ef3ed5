#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A small mutex over `pthread_mutex_t` with stable heap storage.
///
/// Used where a value must be shared across threads outside Swift concurrency
/// (recorders, counters read by a stats thread).
public struct SpinlessLock: @unchecked Sendable {
  private final class Box {
    let mutex: UnsafeMutablePointer<pthread_mutex_t>
    init() {
      mutex = .allocate(capacity: 1)
      pthread_mutex_init(mutex, nil)
    }
    deinit {
      pthread_mutex_destroy(mutex)
      mutex.deallocate()
    }
  }
  private let box = Box()

  /// A new, unlocked mutex.
  public init() {}

  /// Runs `body` with the mutex held.
  public func withLock<R>(_ body: () throws -> R) rethrows -> R {
    pthread_mutex_lock(box.mutex)
    defer { pthread_mutex_unlock(box.mutex) }
    return try body()
  }
}
