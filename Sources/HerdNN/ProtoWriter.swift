/// Protocol buffer wire format, written by hand for the few messages Herd writes
/// without a schema compiler (ONNX models, TensorBoard events): varints (type 0),
/// 64-bit (type 1), 32-bit (type 5) and length-delimited fields (type 2).
public struct ProtoWriter {
  public var bytes: [UInt8] = []

  public init() {}

  public mutating func varint(_ v: UInt64) {
    var x = v
    while x >= 0x80 {
      bytes.append(UInt8(x & 0x7F) | 0x80)
      x >>= 7
    }
    bytes.append(UInt8(x))
  }

  public mutating func key(_ field: Int, _ wireType: UInt64) { varint(UInt64(field) << 3 | wireType) }

  /// An int64/int32/enum field (negative values take ten bytes, as protobuf says).
  public mutating func int(_ field: Int, _ v: Int64) {
    key(field, 0)
    varint(UInt64(bitPattern: v))
  }

  public mutating func double(_ field: Int, _ v: Double) {
    key(field, 1)
    withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 }
  }

  public mutating func float(_ field: Int, _ v: Float) {
    key(field, 5)
    withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 }
  }

  public mutating func bytes(_ field: Int, _ b: [UInt8]) {
    key(field, 2)
    varint(UInt64(b.count))
    bytes += b
  }

  public mutating func string(_ field: Int, _ s: String) { bytes(field, Array(s.utf8)) }

  public mutating func message(_ field: Int, _ build: (inout ProtoWriter) -> Void) {
    var inner = ProtoWriter()
    build(&inner)
    bytes(field, inner.bytes)
  }
}
