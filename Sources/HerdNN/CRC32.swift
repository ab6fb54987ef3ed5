/// A reflected 32-bit cyclic redundancy check computed a byte at a time through a
/// 256-entry table: the initial value and final xor are all ones, as zlib's
/// CRC-32 and CRC-32C both define them.
struct ReflectedCRC32: Sendable {
  private let table: [UInt32]

  init(polynomial: UInt32) {
    table = (0..<256).map { i -> UInt32 in
      var c = UInt32(i)
      for _ in 0..<8 { c = (c & 1) != 0 ? polynomial ^ (c >> 1) : c >> 1 }
      return c
    }
  }

  func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
    return c ^ 0xFFFF_FFFF
  }
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as zlib computes it.
public enum CRC32 {
  private static let crc = ReflectedCRC32(polynomial: 0xEDB8_8320)

  /// The checksum of `bytes`.
  public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
    crc.checksum(bytes)
  }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of
/// TFRecord files (TensorBoard's event files) and iSCSI.
public enum CRC32C {
  private static let crc = ReflectedCRC32(polynomial: 0x82F6_3B78)

  /// The checksum of `bytes`.
  public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
    crc.checksum(bytes)
  }

  /// TFRecord's masked form of the checksum of `bytes` (rotated right by 15 bits
  /// plus a constant), so a checksum stored inside checksummed data does not
  /// weaken it.
  public static func masked<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
    let c = checksum(bytes)
    return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
  }
}
