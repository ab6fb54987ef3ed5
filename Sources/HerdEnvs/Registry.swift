import Synchronization

/// An environment compiled into Herd: its id, its options with their defaults, the
/// training defaults tuned for it, and how to make one.
///
/// Adding a Swift environment to Herd is one file (the environment and its
/// `static let registration`) and one line in ``BuiltInEnvironments/all``; a program
/// using Herd as a library passes its own to ``Environments/register(_:)``.
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
    Pendulum.registration,
    StatelessPendulum.registration,
    PixelMemory.registration,
  ]

  /// The registration for `id`, if Herd has one.
  public static func named(_ id: String) -> EnvironmentRegistration? { all.first { $0.id == id } }

  /// The built-in ids.
  public static var ids: [String] { all.map(\.id) }
}

/// Every environment Herd can make by name: the built-in ones and those a program
/// registered (Herd used as a library). Configs, `--env` and the workers of this
/// process look names up here.
public enum Environments {
  private static let registered = Mutex<[EnvironmentRegistration]>([])

  /// Makes `registration` available under its id to this process (its in-process
  /// workers). Registering an id again replaces the earlier registration.
  ///
  /// - Throws: ``SpaceError`` when the id is a built-in's or looks like `gym:ID`.
  public static func register(_ registration: EnvironmentRegistration) throws {
    guard BuiltInEnvironments.named(registration.id) == nil else {
      throw SpaceError("\(registration.id) is a built-in environment; register yours under another id")
    }
    guard !registration.id.hasPrefix("gym:"), !registration.id.isEmpty else {
      throw SpaceError("\"\(registration.id)\" cannot name a Swift environment (gym:ID names Gymnasium ones)")
    }
    registered.withLock { list in
      list.removeAll { $0.id == registration.id }
      list.append(registration)
    }
  }

  /// The built-in environments, then the registered ones.
  public static var all: [EnvironmentRegistration] { BuiltInEnvironments.all + registered.withLock { $0 } }

  /// The registration for `id`, built-in or registered.
  public static func named(_ id: String) -> EnvironmentRegistration? { all.first { $0.id == id } }

  /// Every id.
  public static var ids: [String] { all.map(\.id) }
}
