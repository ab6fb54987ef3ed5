import HerdMath

/// Observation values as a flat `[rows * F]` vector, stored as bytes when the
/// observation space is uint8 images and as floats otherwise.
///
/// Images stay uint8 from the environment to the network's first layer: a fragment
/// and the learner's queue hold a quarter of the bytes floats would, the wire
/// carries them as they are, and the training step widens (and scales) them once,
/// when it packs the batch. Reading an element always gives the exact float.
public struct ObservationData: Sendable, Equatable, RandomAccessCollection, MutableCollection {
  /// Where the values live.
  public enum Storage: Sendable, Equatable {
    case floats([Float])
    case bytes([UInt8])
  }

  /// The values.
  public private(set) var storage: Storage

  /// Equal values, however each side stores them.
  public static func == (a: ObservationData, b: ObservationData) -> Bool {
    switch (a.storage, b.storage) {
    case (.floats(let x), .floats(let y)): return x == y
    case (.bytes(let x), .bytes(let y)): return x == y
    default: return a.count == b.count && a.elementsEqual(b)
    }
  }

  /// Float values.
  public init(_ floats: [Float]) { storage = .floats(floats) }

  /// Byte values (each read as the float of the same whole number).
  public init(bytes: [UInt8]) { storage = .bytes(bytes) }

  /// No values, stored as bytes or as floats.
  public init(empty bytes: Bool) { storage = bytes ? .bytes([]) : .floats([]) }

  /// Whether the values are stored as bytes.
  public var isBytes: Bool { if case .bytes = storage { return true } else { return false } }

  /// Bytes of storage the values take (what a queue of fragments costs).
  public var storageBytes: Int {
    switch storage {
    case .floats(let v): return v.count * MemoryLayout<Float>.stride
    case .bytes(let v): return v.count
    }
  }

  public var startIndex: Int { 0 }
  public var endIndex: Int {
    switch storage {
    case .floats(let v): return v.count
    case .bytes(let v): return v.count
    }
  }

  /// The value at `i`. Setting a value a byte cannot hold (a fraction, a negative,
  /// above 255, NaN) turns byte storage into floats.
  public subscript(i: Int) -> Float {
    get {
      switch storage {
      case .floats(let v): return v[i]
      case .bytes(let v): return Float(v[i])
      }
    }
    set {
      switch storage {
      case .floats(var v):
        storage = .floats([])
        v[i] = newValue
        storage = .floats(v)
      case .bytes(var v):
        if let b = UInt8(exactly: newValue) {
          storage = .bytes([])
          v[i] = b
          storage = .bytes(v)
        } else {
          var f = v.map(Float.init)
          f[i] = newValue
          storage = .floats(f)
        }
      }
    }
  }

  /// The values as floats (a copy when stored as bytes).
  public var floats: [Float] {
    switch storage {
    case .floats(let v): return v
    case .bytes(let v): return v.map(Float.init)
    }
  }

  /// Stores the values as floats from now on.
  public mutating func makeFloats() {
    if case .bytes(let v) = storage { storage = .floats(v.map(Float.init)) }
  }

  public mutating func reserveCapacity(_ n: Int) {
    switch storage {
    case .floats(var v):
      storage = .floats([])
      v.reserveCapacity(n)
      storage = .floats(v)
    case .bytes(var v):
      storage = .bytes([])
      v.reserveCapacity(n)
      storage = .bytes(v)
    }
  }

  /// Appends `count` floats. Byte storage narrows each; a value that is not a whole
  /// number in 0...255 turns the storage into floats (nothing is rounded).
  public mutating func append(_ values: UnsafePointer<Float>, count: Int) {
    switch storage {
    case .floats(var v):
      storage = .floats([])
      v.append(contentsOf: UnsafeBufferPointer(start: values, count: count))
      storage = .floats(v)
    case .bytes(var v):
      storage = .bytes([])
      let start = v.count
      var exact = true
      v.append(contentsOf: repeatElement(0, count: count))
      v.withUnsafeMutableBufferPointer { b in
        // 16 at a time (a frame is thousands of values), then one by one. In the
        // blocks, x + 2^23 holds the integer nearest x in its low mantissa bits
        // (0 <= x <= 255), which is x itself exactly when x is whole; the checks
        // are gathered and looked at once, after the blocks (Swift's SIMD
        // float-to-integer conversion is a generic one per element, slower than
        // this loop's scalar form). NaN fails the comparisons; -0 becomes 0, which
        // reads back equal.
        var j = 0
        var whole = SIMDMask<SIMD16<Int32>>(repeating: true)
        let shift = SIMD16<Float>(repeating: 8_388_608)
        while j &+ 16 <= count {
          let x = UnsafeRawPointer(values + j).loadUnaligned(as: SIMD16<Float>.self)
          let y = x + shift
          whole = whole .& (x .>= 0) .& (x .<= 255) .& ((y - shift) .== x)
          UnsafeMutableRawPointer(b.baseAddress! + (start &+ j)).storeBytes(
            of: SIMD16<UInt8>(truncatingIfNeeded: unsafeBitCast(y, to: SIMD16<UInt32>.self)), as: SIMD16<UInt8>.self)
          j &+= 16
        }
        guard all(whole) else {
          exact = false
          return
        }
        while j < count {
          let x = values[j]
          guard x >= 0 && x <= 255, let byte = UInt8(exactly: x) else {
            exact = false
            return
          }
          b[start &+ j] = byte
          j &+= 1
        }
      }
      if exact {
        storage = .bytes(v)
      } else {
        var f = v[..<start].map(Float.init)
        f.append(contentsOf: UnsafeBufferPointer(start: values, count: count))
        storage = .floats(f)
      }
    }
  }

  /// Writes `count` values from `offset` into `out` as floats, multiplied by `scale`.
  @inlinable
  public func widen(from offset: Int, count: Int, scale: Float = 1, into out: UnsafeMutablePointer<Float>) {
    precondition(offset >= 0 && offset + count <= endIndex, "widen \(offset)..<\(offset + count) of \(endIndex)")
    switch storage {
    case .floats(let v):
      v.withUnsafeBufferPointer { b in
        let src = b.baseAddress.unsafelyUnwrapped + offset
        if scale == 1 {
          out.update(from: src, count: count)
        } else {
          for j in 0..<count { out[j] = src[j] * scale }
        }
      }
    case .bytes(let v):
      v.withUnsafeBufferPointer { b in
        let src = b.baseAddress.unsafelyUnwrapped + offset
        for j in 0..<count { out[j] = Float(src[j]) * scale }
      }
    }
  }

  /// Copies `count` stored bytes from `offset` (byte storage only: the caller
  /// checks ``isBytes``).
  public func copyBytes(from offset: Int, count: Int, into out: UnsafeMutablePointer<UInt8>) {
    precondition(offset >= 0 && offset + count <= endIndex, "copyBytes \(offset)..<\(offset + count) of \(endIndex)")
    guard case .bytes(let v) = storage else { preconditionFailure("copyBytes of float observations") }
    guard count > 0 else { return }
    v.withUnsafeBufferPointer { out.update(from: $0.baseAddress.unsafelyUnwrapped + offset, count: count) }
  }

  /// Calls `body` with the values as contiguous floats (widened into a temporary
  /// buffer when stored as bytes).
  public func withFloats<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
    switch storage {
    case .floats(let v): return try v.withPointer(body)
    case .bytes(let v): return try v.map(Float.init).withPointer(body)
    }
  }

  /// Calls `body` with the values as mutable contiguous floats (byte storage turns
  /// into floats first).
  public mutating func withMutableFloats<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
    makeFloats()
    guard case .floats(var v) = storage else { preconditionFailure("makeFloats left bytes") }
    storage = .floats([])
    defer { storage = .floats(v) }
    return try v.withMutablePointer { try body($0) }
  }
}
