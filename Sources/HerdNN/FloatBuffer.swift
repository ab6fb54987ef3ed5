/// A growable, owned Float32 scratch buffer for workspaces.
///
/// Layers keep their forward activations and backward scratch in these so that a
/// training step with the same shapes as the last one allocates nothing. Growing
/// does not preserve contents.
public final class FloatBuffer {
  /// Start of the storage (valid for `capacity` scalars).
  public private(set) var pointer: UnsafeMutablePointer<Float>
  /// Scalars the storage holds.
  public private(set) var capacity: Int

  /// A buffer with room for `capacity` scalars, zero-filled.
  public init(capacity: Int = 0) {
    self.capacity = max(capacity, 1)
    pointer = Self.allocate(self.capacity)
    pointer.initialize(repeating: 0, count: self.capacity)
  }

  deinit { UnsafeMutableRawPointer(pointer).deallocate() }

  /// Storage on a 64-byte boundary: a cache line, and a whole 16-float vector, so
  /// vector loads and stores at multiples of 16 floats never straddle two lines.
  private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
    UnsafeMutableRawPointer.allocate(byteCount: count * MemoryLayout<Float>.stride, alignment: 64)
      .bindMemory(to: Float.self, capacity: count)
  }

  /// Makes room for `count` scalars and returns the start; contents are unspecified
  /// after growth.
  @discardableResult
  public func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
    if count > capacity {
      UnsafeMutableRawPointer(pointer).deallocate()
      capacity = count
      pointer = Self.allocate(count)
      pointer.initialize(repeating: 0, count: count)
    }
    return pointer
  }

  /// Sets the first `count` scalars to zero (growing first if needed).
  @discardableResult
  public func zeroed(_ count: Int) -> UnsafeMutablePointer<Float> {
    let p = reserve(count)
    p.update(repeating: 0, count: count)
    return p
  }

  /// A copy of the first `count` scalars.
  public func array(_ count: Int) -> [Float] {
    Array(UnsafeBufferPointer(start: pointer, count: min(count, capacity)))
  }
}
