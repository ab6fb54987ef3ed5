import Foundation

/// The safetensors file format (Hugging Face), float32 tensors only:
/// ```
/// u64 little-endian N | N bytes of JSON header | tensor data
/// header: {"__metadata__": {str: str}, "NAME": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...}
/// ```
/// Offsets count from the first data byte; tensors are stored in the given order,
/// back to back, little-endian. The header is padded with spaces to a multiple of 8
/// bytes so the data is aligned. PyTorch reads it with `safetensors.torch.load_file`,
/// NumPy with `safetensors.numpy.load_file` or the loader Herd ships
/// (`herd_policy.read_safetensors`).
public enum Safetensors {
  /// One named tensor.
  public struct Tensor: Equatable, Sendable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]
    public init(name: String, shape: [Int], values: [Float]) {
      precondition(shape.reduce(1, *) == values.count, "tensor \(name): shape \(shape) holds \(values.count) values")
      self.name = name
      self.shape = shape
      self.values = values
    }
  }

  /// The file's bytes for `tensors` (in this order) and `metadata`.
  public static func encode(_ tensors: [Tensor], metadata: [String: String] = [:]) -> [UInt8] {
    // The header is written by hand so its key order is the tensors' order (readers
    // do not care, people reading the header do).
    var header = "{"
    if !metadata.isEmpty {
      header += "\"__metadata__\":{"
      header += metadata.keys.sorted().map { "\(quote($0)):\(quote(metadata[$0]!))" }.joined(separator: ",")
      header += "},"
    }
    var offset = 0
    var fields: [String] = []
    for t in tensors {
      let end = offset + 4 * t.values.count
      fields.append(
        "\(quote(t.name)):{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(end)]}"
      )
      offset = end
    }
    header += fields.joined(separator: ",") + "}"
    var headerBytes = Array(header.utf8)
    while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
    var out: [UInt8] = []
    out.reserveCapacity(8 + headerBytes.count + offset)
    withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out += $0 }
    out += headerBytes
    for t in tensors {
      for v in t.values { withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 } }
    }
    return out
  }

  /// Decodes a file written by ``encode(_:metadata:)`` or any safetensors writer
  /// (F32 tensors only), tensors in data order; `source` names it in errors.
  public static func decode(_ bytes: [UInt8], source: String) throws -> (tensors: [Tensor], metadata: [String: String]) {
    func fail(_ why: String) -> ExportError { ExportError("\(source) is not a readable safetensors file: \(why)") }
    guard bytes.count >= 8 else { throw fail("\(bytes.count) bytes, shorter than the header length") }
    var n: UInt64 = 0
    for i in 0..<8 { n |= UInt64(bytes[i]) << (8 * UInt64(i)) }
    guard n <= UInt64(bytes.count - 8) else { throw fail("header length \(n) runs past the end (\(bytes.count) bytes)") }
    let headerEnd = 8 + Int(n)
    guard let object = try? JSONSerialization.jsonObject(with: Data(bytes[8..<headerEnd])) as? [String: Any] else {
      throw fail("the header is not a JSON object")
    }
    let data = bytes.count - headerEnd
    var metadata: [String: String] = [:]
    var tensors: [(begin: Int, tensor: Tensor)] = []
    for (name, value) in object {
      if name == "__metadata__" {
        metadata = value as? [String: String] ?? [:]
        continue
      }
      guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
        let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2
      else { throw fail("tensor \(name) lacks dtype, shape or data_offsets") }
      guard dtype == "F32" else { throw fail("tensor \(name) is \(dtype); only F32 is read") }
      let count = shape.reduce(1, *)
      guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[1] == offsets[0] + 4 * count, offsets[1] <= data
      else { throw fail("tensor \(name) of shape \(shape) has data_offsets \(offsets) (data is \(data) bytes)") }
      var values = [Float](repeating: 0, count: count)
      for i in 0..<count {
        let b = headerEnd + offsets[0] + 4 * i
        var bits: UInt32 = 0
        for k in 0..<4 { bits |= UInt32(bytes[b + k]) << (8 * UInt32(k)) }
        values[i] = Float(bitPattern: bits)
      }
      tensors.append((offsets[0], Tensor(name: name, shape: shape, values: values)))
    }
    return (tensors.sorted { $0.begin < $1.begin }.map(\.tensor), metadata)
  }

  /// A JSON string literal.
  static func quote(_ s: String) -> String {
    let data = (try? JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])) ?? Data("[\"\"]".utf8)
    return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
  }
}

/// An export that cannot be written, or a file that cannot be read, with the reason.
public struct ExportError: Error, CustomStringConvertible, Equatable {
  public var description: String
  public init(_ description: String) { self.description = description }
}
