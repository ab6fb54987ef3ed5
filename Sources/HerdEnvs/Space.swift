import Foundation

/// An observation or action space, in Gymnasium's terms.
///
/// Herd feeds its policy one flat vector per step. An observation space flattens,
/// leaves in this order:
/// - `Box`: its elements in C order (row-major), as they are;
/// - `Discrete(n, start)`: one-hot of `x - start` (n entries);
/// - `MultiBinary`: its 0/1 entries in C order;
/// - `MultiDiscrete(nvec)`: one one-hot per component, concatenated;
/// - `Dict`: its entries in the space's key order (Gymnasium sorts the keys);
/// - `Tuple`: its entries in order;
/// - anything else (`Text`, MiniGrid's `MissionSpace`): dropped (``other``).
///
/// The flat vector is uint8 when every kept leaf is a uint8 Box (pixels travel as
/// bytes through the env host) and float32 otherwise.
public indirect enum Space: Sendable, Equatable, Codable, CustomStringConvertible {
  /// A box of numbers of any shape. `low` and `high` hold one bound per element,
  /// or a single bound for every element (`.infinity` when unbounded).
  case box(shape: [Int], dtype: String, low: [Float], high: [Float])
  /// The integers `start..<start + n`.
  case discrete(n: Int, start: Int)
  /// 0/1 entries of a shape.
  case multiBinary(shape: [Int])
  /// A vector of integers, component i in `start[i]..<start[i] + nvec[i]`.
  case multiDiscrete(nvec: [Int], start: [Int])
  /// Named entries, in order.
  case dict([DictEntry])
  /// Entries in order.
  case tuple([Space])
  /// A space Herd does not turn into numbers (its Gymnasium description).
  case other(String)

  /// One entry of a ``dict(_:)`` space.
  public struct DictEntry: Sendable, Equatable, Codable {
    public var key: String
    public var space: Space
    public init(key: String, space: Space) {
      self.key = key
      self.space = space
    }
  }

  /// A flat float32 Box of `low.count` elements.
  public static func box(low: [Float], high: [Float]) -> Space {
    .box(shape: [low.count], dtype: "float32", low: low, high: high)
  }

  /// `Discrete(n)` starting at 0.
  public static func discrete(_ n: Int) -> Space { .discrete(n: n, start: 0) }

  /// Entries of the flat observation vector (what ``Space`` documents).
  public var flatSize: Int {
    switch self {
    case .box(let shape, _, _, _), .multiBinary(let shape): return shape.reduce(1, *)
    case .discrete(let n, _): return n
    case .multiDiscrete(let nvec, _): return nvec.reduce(0, +)
    case .dict(let entries): return entries.reduce(0) { $0 + $1.space.flatSize }
    case .tuple(let spaces): return spaces.reduce(0) { $0 + $1.flatSize }
    case .other: return 0
    }
  }

  /// Whether the flat vector is bytes: every kept leaf is a uint8 Box.
  public var flatIsBytes: Bool {
    let leaves = self.leaves.filter { if case .other = $0 { return false } else { return true } }
    return !leaves.isEmpty
      && leaves.allSatisfy { if case .box(_, "uint8", _, _) = $0 { return true } else { return false } }
  }

  /// The descriptions of the parts that flattening drops (with their paths).
  public var droppedParts: [String] {
    func walk(_ s: Space, _ path: String) -> [String] {
      switch s {
      case .other(let d): return ["\(path.isEmpty ? "observation" : path) (\(d))"]
      case .dict(let entries): return entries.flatMap { walk($0.space, path.isEmpty ? $0.key : "\(path).\($0.key)") }
      case .tuple(let spaces): return spaces.enumerated().flatMap { walk($1, "\(path)[\($0)]") }
      default: return []
      }
    }
    return walk(self, "")
  }

  var leaves: [Space] {
    switch self {
    case .dict(let entries): return entries.flatMap(\.space.leaves)
    case .tuple(let spaces): return spaces.flatMap(\.leaves)
    default: return [self]
    }
  }

  /// The bounds of a Box action space, one pair per flattened element (C order),
  /// nil for any other space. Throws for a Box Herd cannot act in (empty, not
  /// float, a bound not finite or low above high).
  public func continuousAction() throws -> (low: [Float], high: [Float])? {
    guard case .box(let shape, let dtype, let low, let high) = self else { return nil }
    let d = shape.reduce(1, *)
    guard d >= 1, shape.allSatisfy({ $0 >= 1 }) else { throw SpaceError("action space \(self) has no elements") }
    guard dtype.hasPrefix("float") else {
      throw SpaceError("action space \(self): dtype \(dtype) is not supported, Herd acts in float Box spaces")
    }
    func expand(_ b: [Float]) throws -> [Float] {
      if b.count == d { return b }
      if b.count == 1 { return [Float](repeating: b[0], count: d) }
      throw SpaceError("action space \(self) has \(b.count) bounds for \(d) elements")
    }
    let lo = try expand(low)
    let hi = try expand(high)
    for j in 0..<d where !(lo[j] <= hi[j]) {
      throw SpaceError("action space \(self): element \(j) has low \(lo[j]) above high \(hi[j])")
    }
    return (lo, hi)
  }

  /// Whether Herd can act in this space (Discrete, MultiDiscrete or a float Box).
  public func checkAction() throws {
    if try continuousAction() == nil { _ = try actionHeads() }
  }

  /// The categorical heads of an action space: one count per head (Discrete: one
  /// head; MultiDiscrete: one per component). Throws for a space Herd cannot act in.
  public func actionHeads() throws -> [Int] {
    switch self {
    case .discrete(let n, _) where n >= 1: return [n]
    case .multiDiscrete(let nvec, _) where !nvec.isEmpty && nvec.allSatisfy({ $0 >= 1 }):
      // An action travels as one Int32 (the components in mixed radix).
      var product = 1
      for n in nvec {
        let (p, overflow) = product.multipliedReportingOverflow(by: n)
        guard !overflow, p <= Int(Int32.max) else {
          throw SpaceError("action space \(self) has more than 2^31 joint actions: Herd packs an action into an Int32")
        }
        product = p
      }
      return nvec
    case .box(_, let dtype, _, _) where dtype.hasPrefix("float"):
      throw SpaceError(
        "action space \(self) is continuous: it has no categorical heads (Herd acts in it with a Gaussian; "
          + "continuousAction() gives its bounds)")
    default:
      throw SpaceError(
        "action space \(self) is not supported: Herd acts in Discrete, one-dimensional MultiDiscrete and float Box spaces")
    }
  }

  /// Where a top-level ``dict(_:)`` entry named `key` sits in the flat vector (nil
  /// when the space is not a Dict or has no such entry): an action mask's entries.
  /// Throws when the entry is not a Box or MultiBinary of `actions` entries, one
  /// per logit of the action space's heads.
  public func actionMask(key: String, actions: Int) throws -> Range<Int>? {
    guard !key.isEmpty, case .dict(let entries) = self else { return nil }
    var offset = 0
    for e in entries {
      let n = e.space.flatSize
      if e.key == key {
        switch e.space {
        case .box, .multiBinary: break
        default:
          throw SpaceError("the observation's '\(key)' entry is \(e.space): an action mask is a Box or MultiBinary of 0/1")
        }
        guard n == actions else {
          throw SpaceError(
            "the observation's '\(key)' entry \(e.space) has \(n) entries, but the action space has \(actions) actions to mask (one entry per action, MultiDiscrete components one after another)")
        }
        return offset..<(offset + n)
      }
      offset += n
    }
    return nil
  }

  /// Checks an observation space Herd can flatten: at least one number, sizes positive.
  public func checkObservation() throws {
    func check(_ s: Space) throws {
      switch s {
      case .box(let shape, let dtype, _, _):
        guard shape.allSatisfy({ $0 >= 0 }) else { throw SpaceError("observation space \(s) has a negative dimension") }
        guard Self.numericTypes.contains(dtype) else {
          throw SpaceError(
            "observation space \(s): dtype \(dtype) is not a number type Herd reads (\(Self.numericTypes.joined(separator: ", ")))"
          )
        }
      case .discrete(let n, _) where n < 1: throw SpaceError("observation space \(s) is empty")
      case .multiDiscrete(let nvec, _) where nvec.contains(where: { $0 < 1 }):
        throw SpaceError("observation space \(s) has an empty component")
      case .dict(let entries): for e in entries { try check(e.space) }
      case .tuple(let spaces): for x in spaces { try check(x) }
      default: break
      }
    }
    try check(self)
    guard flatSize > 0 else {
      throw SpaceError(
        "observation space \(self) has no numbers Herd can use: it reads Box, Discrete, MultiBinary, MultiDiscrete and Dict/Tuple of these"
      )
    }
  }

  /// Box dtypes Herd reads (converted to float32 unless the whole observation is uint8).
  public static let numericTypes = [
    "float32", "float64", "float16", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "bool",
  ]

  public var description: String {
    switch self {
    case .box(let shape, let dtype, _, _):
      return "Box(\(shape.map(String.init).joined(separator: "x")), \(dtype))"
    case .discrete(let n, let start): return start == 0 ? "Discrete(\(n))" : "Discrete(\(n), start=\(start))"
    case .multiBinary(let shape): return "MultiBinary(\(shape.map(String.init).joined(separator: "x")))"
    case .multiDiscrete(let nvec, _): return "MultiDiscrete(\(nvec))"
    case .dict(let entries): return "Dict(" + entries.map { "\($0.key): \($0.space)" }.joined(separator: ", ") + ")"
    case .tuple(let spaces): return "Tuple(" + spaces.map(\.description).joined(separator: ", ") + ")"
    case .other(let d): return d
    }
  }

  // JSON: {"type": "box", "shape": [4], "dtype": "float32", "low": [...], "high": [...]},
  // {"type": "discrete", "n": 2, "start": 0}, {"type": "multi_binary", "shape": [3]},
  // {"type": "multi_discrete", "nvec": [3, 2], "start": [0, 0]},
  // {"type": "dict", "spaces": [{"key": "a", "space": {...}}]}, {"type": "tuple",
  // "spaces": [...]}, {"type": "other", "name": "Text(...)"}. Non-finite bounds are the
  // strings "inf" and "-inf" (what herd_env writes).
  enum Key: String, CodingKey { case type, shape, dtype, low, high, n, start, nvec, spaces, name }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: Key.self)
    let type = try c.decode(String.self, forKey: .type)
    switch type {
    case "box":
      self = .box(
        shape: try c.decode([Int].self, forKey: .shape), dtype: try c.decode(String.self, forKey: .dtype),
        low: try c.decode([Bound].self, forKey: .low).map(\.value),
        high: try c.decode([Bound].self, forKey: .high).map(\.value))
    case "discrete":
      self = .discrete(n: try c.decode(Int.self, forKey: .n), start: try c.decodeIfPresent(Int.self, forKey: .start) ?? 0)
    case "multi_binary": self = .multiBinary(shape: try c.decode([Int].self, forKey: .shape))
    case "multi_discrete":
      let nvec = try c.decode([Int].self, forKey: .nvec)
      self = .multiDiscrete(nvec: nvec, start: try c.decodeIfPresent([Int].self, forKey: .start) ?? nvec.map { _ in 0 })
    case "dict": self = .dict(try c.decode([DictEntry].self, forKey: .spaces))
    case "tuple": self = .tuple(try c.decode([Space].self, forKey: .spaces))
    case "other": self = .other(try c.decode(String.self, forKey: .name))
    default:
      throw DecodingError.dataCorruptedError(
        forKey: .type, in: c, debugDescription: "unknown space type '\(type)'")
    }
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: Key.self)
    switch self {
    case .box(let shape, let dtype, let low, let high):
      try c.encode("box", forKey: .type)
      try c.encode(shape, forKey: .shape)
      try c.encode(dtype, forKey: .dtype)
      try c.encode(low.map(Bound.init), forKey: .low)
      try c.encode(high.map(Bound.init), forKey: .high)
    case .discrete(let n, let start):
      try c.encode("discrete", forKey: .type)
      try c.encode(n, forKey: .n)
      try c.encode(start, forKey: .start)
    case .multiBinary(let shape):
      try c.encode("multi_binary", forKey: .type)
      try c.encode(shape, forKey: .shape)
    case .multiDiscrete(let nvec, let start):
      try c.encode("multi_discrete", forKey: .type)
      try c.encode(nvec, forKey: .nvec)
      try c.encode(start, forKey: .start)
    case .dict(let entries):
      try c.encode("dict", forKey: .type)
      try c.encode(entries, forKey: .spaces)
    case .tuple(let spaces):
      try c.encode("tuple", forKey: .type)
      try c.encode(spaces, forKey: .spaces)
    case .other(let name):
      try c.encode("other", forKey: .type)
      try c.encode(name, forKey: .name)
    }
  }

  /// A bound in JSON: a number, or "inf" / "-inf" / "nan".
  struct Bound: Codable {
    var value: Float
    init(_ value: Float) { self.value = value }
    init(from decoder: any Decoder) throws {
      let c = try decoder.singleValueContainer()
      if let v = try? c.decode(Double.self) {
        value = Float(v)
        return
      }
      switch try c.decode(String.self) {
      case "inf", "Infinity": value = .infinity
      case "-inf", "-Infinity": value = -.infinity
      default: value = .nan
      }
    }
    func encode(to encoder: any Encoder) throws {
      var c = encoder.singleValueContainer()
      if value.isFinite {
        try c.encode(Double(value))
      } else {
        try c.encode(value.isNaN ? "nan" : value > 0 ? "inf" : "-inf")
      }
    }
  }
}

/// A space Herd cannot use, or a spec that does not parse.
public struct SpaceError: Error, CustomStringConvertible, Equatable {
  public var description: String
  public init(_ description: String) { self.description = description }
}

/// What a worker tells the learner about its environments: the id, the options it
/// made them with, and their observation and action spaces. The learner builds its
/// model from the first one it gets and refuses workers whose spec differs.
public struct EnvSpec: Sendable, Equatable, Codable, CustomStringConvertible {
  public var id: String
  /// The options the environment was made with (canonical JSON object text).
  public var config: String
  public var observation: Space
  public var action: Space

  public init(id: String, config: String, observation: Space, action: Space) {
    self.id = id
    self.config = config
    self.observation = observation
    self.action = action
  }

  /// Floats per flat observation F.
  public var observationSize: Int { observation.flatSize }
  /// Logits per step: the sum of the action heads.
  public func actionCount() throws -> Int { try action.actionHeads().reduce(0, +) }

  public var description: String { "\(id) \(config): observations \(observation), actions \(action)" }

  /// What differs between this spec (the worker's) and the run's, in words; nil when equal.
  public func difference(from run: EnvSpec) -> String? {
    if id != run.id { return "environment \(id) here, \(run.id) in the run" }
    if config != run.config { return "env_config \(config) here, \(run.config) in the run" }
    if observation != run.observation {
      return "observation space \(observation) here, \(run.observation) in the run"
        + (observation.description == run.observation.description ? " (their bounds differ)" : "")
    }
    if action != run.action { return "action space \(action) here, \(run.action) in the run" }
    return nil
  }

  /// The spec as one line of JSON (the hello carries it so).
  public func json() -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    return String(decoding: (try? e.encode(self)) ?? Data(), as: UTF8.self)
  }

  /// Parses ``json()`` (or what herd_env writes).
  public init(json: String) throws {
    do {
      self = try JSONDecoder().decode(EnvSpec.self, from: Data(json.utf8))
    } catch {
      throw SpaceError("the environment spec does not parse (\(error)): \(json.prefix(200))")
    }
  }
}
