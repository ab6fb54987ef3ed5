import Foundation

/// A JSON value: what `env_config` holds for an environment Herd has never seen
/// (its options are passed to `gymnasium.make` as keyword arguments).
public enum JSONValue: Sendable, Equatable, Codable, CustomStringConvertible {
  case null
  case bool(Bool)
  case number(Double)
  case string(String)
  case array([JSONValue])
  case object([String: JSONValue])

  public init(from decoder: any Decoder) throws {
    let c = try decoder.singleValueContainer()
    if c.decodeNil() {
      self = .null
    } else if let b = try? c.decode(Bool.self) {
      self = .bool(b)
    } else if let d = try? c.decode(Double.self) {
      self = .number(d)
    } else if let s = try? c.decode(String.self) {
      self = .string(s)
    } else if let a = try? c.decode([JSONValue].self) {
      self = .array(a)
    } else {
      self = .object(try c.decode([String: JSONValue].self))
    }
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.singleValueContainer()
    switch self {
    case .null: try c.encodeNil()
    case .bool(let b): try c.encode(b)
    case .number(let d):
      if d == d.rounded(), abs(d) < 1e15 { try c.encode(Int64(d)) } else { try c.encode(d) }
    case .string(let s): try c.encode(s)
    case .array(let a): try c.encode(a)
    case .object(let o): try c.encode(o)
    }
  }

  /// A value `JSONSerialization` read (config files are read that way): written
  /// back out and decoded, so booleans stay booleans.
  public init(jsonObject value: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: [value], options: [.fragmentsAllowed])
    guard case .array(let a) = try JSONDecoder().decode(JSONValue.self, from: data), let v = a.first else {
      throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "not a JSON value"))
    }
    self = v
  }

  /// The value as an integer, when it is one.
  public var intValue: Int? {
    if case .number(let d) = self, d == d.rounded(), abs(d) < 1e15 { return Int(d) }
    return nil
  }

  /// Compact JSON with sorted keys.
  public var description: String {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: (try? e.encode(self)) ?? Data("null".utf8), as: UTF8.self)
  }
}
