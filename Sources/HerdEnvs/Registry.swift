/// An environment compiled into Herd: its id, its options with their defaults, the
/// training defaults tuned for it, and how to make one.
///
/// Adding a Swift environment is one file (the environment and its
/// `static let registration`) and one line in ``BuiltInEnvironments/all``.
public struct EnvironmentRegistration: Sendable {
  /// The name configs use (`"env": "CartPole-v1"`).
  public let id: String
  /// One line for `--help` and error messages.
  public let summary: String
  /// `env_config` keys (integers) with their defaults.
  public let options: [String: Int]
  /// Config keys tuned for this environment, as a JSON object laid over the
  /// library defaults (`{}` for none).
  public let trainingDefaults: String
  /// One environment from options (every key of ``options`` present).
  public let make: @Sendable ([String: Int]) -> any Environment

  public init(
    id: String, summary: String, options: [String: Int] = [:], trainingDefaults: String = "{}",
    make: @escaping @Sendable ([String: Int]) -> any Environment
  ) {
    self.id = id
    self.summary = summary
    self.options = options
    self.trainingDefaults = trainingDefaults
    self.make = make
  }
}

/// The environments compiled into Herd.
public enum BuiltInEnvironments {
  /// Every built-in environment, in the order help lists them.
  public static let all: [EnvironmentRegistration] = [
    CartPole.registration,
    StatelessCartPole.registration,
    MemoryChain.registration,
  ]

  /// The registration for `id`, if Herd has one.
  public static func named(_ id: String) -> EnvironmentRegistration? { all.first { $0.id == id } }

  /// The built-in ids.
  public static var ids: [String] { all.map(\.id) }
}
