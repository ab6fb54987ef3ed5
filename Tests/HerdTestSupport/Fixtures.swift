import Foundation
import HerdMath

/// Reference values written by Tests/Fixtures/make_reference.py (PyTorch).
public struct Fixture {
  /// The decoded JSON object.
  public let object: [String: Any]

  /// Loads `Tests/Fixtures/reference/<name>.json` from the source tree.
  public init(_ name: String, filePath: String = #filePath) throws {
    var url = URL(fileURLWithPath: filePath)
    while url.lastPathComponent != "Tests" && url.path != "/" { url.deleteLastPathComponent() }
    let file = url.appendingPathComponent("Fixtures/reference/\(name).json")
    let data = try Data(contentsOf: file)
    guard let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
      throw FixtureError.malformed(name)
    }
    object = obj
  }

  /// The tensor stored under `key`.
  public func tensor(_ key: String) throws -> Tensor {
    guard let t = object[key] as? [String: Any] else { throw FixtureError.missing(key) }
    return try Self.decodeTensor(t, key)
  }

  /// The list of tensors stored under `key`.
  public func tensors(_ key: String) throws -> [Tensor] {
    guard let list = object[key] as? [[String: Any]] else { throw FixtureError.missing(key) }
    return try list.map { try Self.decodeTensor($0, key) }
  }

  /// A number stored under `key` (or under `hyper.key`).
  public func number(_ key: String) throws -> Double {
    if let n = object[key] as? Double { return n }
    if let h = object["hyper"] as? [String: Any], let n = h[key] as? Double { return n }
    throw FixtureError.missing(key)
  }

  /// An integer array stored under `key`.
  public func ints(_ key: String) throws -> [Int] {
    guard let a = object[key] as? [Int] else { throw FixtureError.missing(key) }
    return a
  }

  /// A tensor from a decoded `{"shape": ..., "data": ...}` object (`key` names it in errors).
  public static func tensor(from object: Any, _ key: String) throws -> Tensor {
    guard let t = object as? [String: Any] else { throw FixtureError.missing(key) }
    return try decodeTensor(t, key)
  }

  static func decodeTensor(_ t: [String: Any], _ key: String) throws -> Tensor {
    guard let shape = t["shape"] as? [Int], let data = t["data"] as? [Double] else {
      throw FixtureError.missing(key)
    }
    return try Tensor(shape: shape, scalars: data.map(Float.init))
  }
}

/// Problems reading a fixture.
public enum FixtureError: Error {
  /// The file is not a JSON object.
  case malformed(String)
  /// A key is absent or of the wrong type.
  case missing(String)
}

/// `Tests/Fixtures` in the source tree (found from the calling file's path).
public func fixturesDirectory(filePath: String = #filePath) -> String {
  var url = URL(fileURLWithPath: filePath)
  while url.lastPathComponent != "Tests" && url.path != "/" { url.deleteLastPathComponent() }
  return url.appendingPathComponent("Fixtures").path
}
