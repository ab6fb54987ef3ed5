extension Array where Element == Float {
  /// Calls `body` with a pointer to the storage (a valid dummy when empty).
  @inlinable
  public func withPointer<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
    try withUnsafeBufferPointer { buffer in
      if let base = buffer.baseAddress { return try body(base) }
      var dummy: Float = 0
      return try Swift.withUnsafePointer(to: &dummy) { try body($0) }
    }
  }

  /// Calls `body` with a mutable pointer to the storage (a valid dummy when empty).
  @inlinable
  public mutating func withMutablePointer<R>(
    _ body: (UnsafeMutablePointer<Float>) throws -> R
  ) rethrows -> R {
    try withUnsafeMutableBufferPointer { buffer in
      if let base = buffer.baseAddress { return try body(base) }
      var dummy: Float = 0
      return try Swift.withUnsafeMutablePointer(to: &dummy) { try body($0) }
    }
  }
}
