import Foundation
import HerdEnvs

/// A Gymnasium wrapper the env host puts around each `gym:ID` environment
/// (`env_wrappers`): the class's import path and its keyword arguments.
///
/// In a config it is `"module:Class"` (or `"module.Class"`, RL Zoo's form), or,
/// with keyword arguments, `{"module:Class": {"name": value}}`.
public struct EnvWrapper: Codable, Sendable, Equatable, CustomStringConvertible {
  /// `module:Class` or `module.Class`; the part after the colon may be dotted.
  public var path: String
  /// Passed to the class as keyword arguments after the environment.
  public var kwargs: [String: JSONValue]

  public init(_ path: String, kwargs: [String: JSONValue] = [:]) {
    self.path = path
    self.kwargs = kwargs
  }

  static let form = #"each entry is "module:Class" or {"module:Class": {keyword arguments}}"#

  public init(from decoder: any Decoder) throws {
    let c = try decoder.singleValueContainer()
    if let path = try? c.decode(String.self) {
      self.init(path)
      return
    }
    guard let object = try? c.decode([String: [String: JSONValue]].self), object.count == 1, let (path, kwargs) = object.first
    else {
      throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: Self.form))
    }
    self.init(path, kwargs: kwargs)
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.singleValueContainer()
    if kwargs.isEmpty { try c.encode(path) } else { try c.encode([path: kwargs]) }
  }

  /// As written in a config: `"m:C"` or `{"m:C": {...}}`, compact with sorted keys.
  public var description: String {
    kwargs.isEmpty ? "\"\(path)\"" : "{\"\(path)\": \(JSONValue.object(kwargs))}"
  }

  /// Why `path` cannot name a class, or nil: a module path and an attribute, split
  /// by a colon or by the last dot, each a dotted Python name.
  var pathProblem: String? {
    let name = #"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"#
    let module: Substring
    let attribute: Substring
    if let colon = path.firstIndex(of: ":") {
      module = path[..<colon]
      attribute = path[path.index(after: colon)...]
    } else if let dot = path.lastIndex(of: ".") {
      module = path[..<dot]
      attribute = path[path.index(after: dot)...]
    } else {
      return "names no module: write module:Class, e.g. minigrid.wrappers:ImgObsWrapper"
    }
    guard (try? Regex(name).wholeMatch(in: module)) != nil, (try? Regex(name).wholeMatch(in: attribute)) != nil else {
      return "is not module:Class with Python names, e.g. minigrid.wrappers:ImgObsWrapper"
    }
    return nil
  }

  /// The class's name, the path's last part: `ImgObsWrapper`.
  public var name: String { String(path.split(whereSeparator: { $0 == ":" || $0 == "." }).last ?? Substring(path)) }

  /// The list as a config writes it, compact with sorted keys: what the env host
  /// reads (`--wrappers`).
  static func json(_ wrappers: [EnvWrapper]) -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: (try? e.encode(wrappers)) ?? Data("[]".utf8), as: UTF8.self)
  }
}

extension TrainingConfig {
  /// `" wrapped in A, B"` (innermost first) for a log line, or "" without wrappers.
  public var wrappedText: String {
    env_wrappers.isEmpty ? "" : " wrapped in " + env_wrappers.map(\.name).joined(separator: ", ")
  }
}
