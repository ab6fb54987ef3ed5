#if canImport(Glibc)
  import Glibc
#endif

/// A versioned binary file of named Float32 tensors plus string metadata: Herd's
/// parameter and optimiser-state format.
///
/// Layout (all integers little-endian):
/// ```
/// "HERDARCH"                         magic, 8 bytes
/// u32 version (= 1)
/// u32 metadata count; per item: u16 key length, key, u32 value length, value (UTF-8)
/// u32 tensor count;   per tensor: u16 name length, name (UTF-8), u8 dtype (1 = f32),
///                     u8 rank, rank x u64 dims, count x f32 data
/// u32 CRC-32 of every byte before it
/// ```
/// Written atomically: a temporary file in the same folder, fsync, rename.
public struct TensorArchive: Equatable, Sendable {
  /// One named tensor.
  public struct Entry: Equatable, Sendable {
    /// Unique name (`param/lstm.weight_ih`, `optim/square_avg`...).
    public var name: String
    /// Shape, row-major.
    public var shape: [Int]
    /// Scalars, `shape.reduce(1, *)` of them.
    public var values: [Float]

    /// An entry; the caller keeps shape and count consistent.
    public init(name: String, shape: [Int], values: [Float]) {
      self.name = name
      self.shape = shape
      self.values = values
    }
  }

  /// The format version this code writes and reads.
  public static let version: UInt32 = 1
  static let magic = Array("HERDARCH".utf8)

  /// Free-form string metadata (optimiser kind, step count, config...).
  public var metadata: [String: String]
  /// Tensors in file order.
  public var entries: [Entry]

  /// An archive of `entries` with `metadata`.
  public init(metadata: [String: String] = [:], entries: [Entry] = []) {
    self.metadata = metadata
    self.entries = entries
  }

  /// The entry called `name`, if any.
  public func entry(_ name: String) -> Entry? { entries.first { $0.name == name } }

  // MARK: Encoding

  /// The file's bytes.
  public func encoded() -> [UInt8] {
    var out: [UInt8] = Self.magic
    out.reserveCapacity(64 + entries.reduce(0) { $0 + $1.values.count * 4 + $1.name.utf8.count + 16 })
    append(Self.version, to: &out)
    append(UInt32(metadata.count), to: &out)
    for key in metadata.keys.sorted() {
      let k = Array(key.utf8)
      let v = Array((metadata[key] ?? "").utf8)
      append(UInt16(k.count), to: &out)
      out += k
      append(UInt32(v.count), to: &out)
      out += v
    }
    append(UInt32(entries.count), to: &out)
    for e in entries {
      let n = Array(e.name.utf8)
      append(UInt16(n.count), to: &out)
      out += n
      out.append(1)
      out.append(UInt8(e.shape.count))
      for d in e.shape { append(UInt64(d), to: &out) }
      for v in e.values { append(v.bitPattern, to: &out) }
    }
    append(CRC32.checksum(out), to: &out)
    return out
  }

  private func append<I: FixedWidthInteger>(_ x: I, to out: inout [UInt8]) {
    withUnsafeBytes(of: x.littleEndian) { out += $0 }
  }

  // MARK: Decoding

  /// Decodes and verifies an archive; `source` names it in errors.
  ///
  /// - Throws: ``NNError/badParameterFile(path:reason:)`` for a wrong magic or
  ///   version, a checksum mismatch, truncation, or inconsistent shapes.
  public init(decoding bytes: [UInt8], source: String) throws {
    func fail(_ reason: String) -> NNError { .badParameterFile(path: source, reason: reason) }
    guard bytes.count >= Self.magic.count + 8, Array(bytes.prefix(8)) == Self.magic else {
      throw fail("not a Herd archive (bad magic)")
    }
    let body = bytes.prefix(bytes.count - 4)
    var reader = ByteReader(bytes: bytes, position: 8, end: bytes.count - 4)
    let version: UInt32 = try reader.read(orThrow: fail("truncated header"))
    guard version == Self.version else {
      throw fail("format version \(version), this build reads version \(Self.version)")
    }
    var stored: UInt32 = 0
    for i in 0..<4 { stored |= UInt32(bytes[bytes.count - 4 + i]) << (8 * i) }
    guard CRC32.checksum(body) == stored else { throw fail("checksum mismatch: the file is corrupt or truncated") }
    var metadata: [String: String] = [:]
    let mcount: UInt32 = try reader.read(orThrow: fail("truncated metadata"))
    for _ in 0..<mcount {
      let kl: UInt16 = try reader.read(orThrow: fail("truncated metadata"))
      let key = try reader.string(Int(kl), orThrow: fail("truncated metadata key"))
      let vl: UInt32 = try reader.read(orThrow: fail("truncated metadata"))
      metadata[key] = try reader.string(Int(vl), orThrow: fail("truncated metadata value"))
    }
    var entries: [Entry] = []
    let tcount: UInt32 = try reader.read(orThrow: fail("truncated tensor table"))
    for _ in 0..<tcount {
      let nl: UInt16 = try reader.read(orThrow: fail("truncated tensor name"))
      let name = try reader.string(Int(nl), orThrow: fail("truncated tensor name"))
      let dtype: UInt8 = try reader.read(orThrow: fail("truncated tensor \(name)"))
      guard dtype == 1 else { throw fail("tensor \(name) has dtype \(dtype); only 1 (f32) is known") }
      let rank: UInt8 = try reader.read(orThrow: fail("truncated tensor \(name)"))
      var shape: [Int] = []
      var count = 1
      for _ in 0..<rank {
        let d: UInt64 = try reader.read(orThrow: fail("truncated tensor \(name)"))
        guard d < 1 << 32 else { throw fail("tensor \(name) has dimension \(d)") }
        shape.append(Int(d))
        count *= Int(d)
      }
      guard count * 4 <= reader.remaining else { throw fail("tensor \(name) runs past the end of the file") }
      var values = [Float](repeating: 0, count: count)
      for i in 0..<count {
        let bits: UInt32 = try reader.read(orThrow: fail("truncated tensor \(name)"))
        values[i] = Float(bitPattern: bits)
      }
      entries.append(Entry(name: name, shape: shape, values: values))
    }
    guard reader.remaining == 0 else { throw fail("\(reader.remaining) unexpected bytes after the tensors") }
    self.init(metadata: metadata, entries: entries)
  }

  // MARK: Files

  /// Writes the archive atomically to `path` (temporary file, fsync, rename).
  public func write(to path: String) throws {
    let bytes = encoded()
    let tmp = path + ".tmp.\(getpid())"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw NNError.badParameterFile(path: path, reason: "cannot create \(tmp): \(errnoText())") }
    var written = 0
    let ok = bytes.withUnsafeBytes { raw -> Bool in
      while written < raw.count {
        let n = Glibc.write(fd, raw.baseAddress.unsafelyUnwrapped + written, raw.count - written)
        if n <= 0 { return false }
        written += n
      }
      return fsync(fd) == 0
    }
    let reason = ok ? "" : errnoText()
    close(fd)
    guard ok else {
      unlink(tmp)
      throw NNError.badParameterFile(path: path, reason: "write failed: \(reason)")
    }
    guard rename(tmp, path) == 0 else {
      let r = errnoText()
      unlink(tmp)
      throw NNError.badParameterFile(path: path, reason: "rename failed: \(r)")
    }
  }

  /// Reads and verifies the archive at `path`.
  public static func read(from path: String) throws -> TensorArchive {
    guard let f = fopen(path, "rb") else {
      throw NNError.badParameterFile(path: path, reason: "cannot open: \(errnoText())")
    }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
      let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
      if n == 0 { break }
      bytes += chunk[0..<n]
    }
    return try TensorArchive(decoding: bytes, source: path)
  }
}

private func errnoText() -> String { String(cString: strerror(errno)) }

/// Little-endian reads over a byte array with bounds checks.
struct ByteReader {
  let bytes: [UInt8]
  var position: Int
  let end: Int

  var remaining: Int { end - position }

  mutating func read<I: FixedWidthInteger>(orThrow error: @autoclosure () -> NNError) throws -> I {
    let size = MemoryLayout<I>.size
    guard position + size <= end else { throw error() }
    var x: I = 0
    for i in 0..<size { x |= I(bytes[position + i]) << (8 * i) }
    position += size
    return x
  }

  mutating func string(_ count: Int, orThrow error: @autoclosure () -> NNError) throws -> String {
    guard position + count <= end else { throw error() }
    let s = String(decoding: bytes[position..<(position + count)], as: UTF8.self)
    position += count
    return s
  }
}
