import HerdMath
import HerdNN

/// Past policies a rollout worker keeps to play the other seats of some of its
/// games: self-play against the past as well as the present (the remedy for a
/// self-play policy that drifts between lines only it plays, or settles into one).
///
/// The worker keeps a snapshot of the weights it acts with every `interval` policy
/// versions (the first weights it gets at or after each multiple), the newest
/// `size` of them. When a game starts, with probability `fraction` one snapshot,
/// drawn uniformly, plays every seat of it but one, picked uniformly; the current
/// policy plays that seat and learns from it alone. Seats a past policy plays send
/// nothing to the learner. Each worker keeps its own pool from the weights it saw;
/// a restarted worker starts an empty one.
public final class OpponentPool {
  public struct Settings: Sendable, Equatable {
    /// Snapshots kept (at least 1).
    public var size: Int
    /// Policy versions between snapshots (at least 1).
    public var interval: Int
    /// The share of games a past policy plays in (0...1).
    public var fraction: Double

    public init(size: Int, interval: Int, fraction: Double) {
      precondition(size >= 1 && interval >= 1 && (0...1).contains(fraction))
      self.size = size
      self.interval = interval
      self.fraction = fraction
    }

    /// The run's pool for games of `agents` rows; nil when it keeps none or a game
    /// has one row (no other seat to play).
    public init?(config: TrainingConfig, agents: Int) {
      guard config.self_play_pool_size > 0, agents > 1 else { return nil }
      self.init(
        size: config.self_play_pool_size, interval: config.self_play_snapshot_interval,
        fraction: config.self_play_past_fraction)
    }
  }

  /// One kept policy.
  public final class Snapshot {
    public let version: Int
    public let parameters: Parameters
    /// Its model when not the worker's own (a fixed opponent trained elsewhere).
    public let network: PolicyNetwork?
    /// Its own workspace: the weights a rollout step packs stay packed between
    /// its steps, whatever the other policies run in between.
    let workspace = PolicyWorkspace()
    init(version: Int, parameters: Parameters, network: PolicyNetwork? = nil) {
      self.version = version
      self.parameters = parameters
      self.network = network
    }
  }

  public let settings: Settings
  let layout: ParameterLayout
  /// Oldest first.
  public private(set) var snapshots: [Snapshot] = []
  /// The first multiple of `interval` not yet kept.
  private var due = 0
  /// One given policy that plays every game, the seat it leaves taking turns
  /// (a head-to-head evaluation): no snapshots are taken.
  public let isFixed: Bool

  public init(settings: Settings, layout: ParameterLayout) {
    self.settings = settings
    self.layout = layout
    isFixed = false
  }

  /// The pool of one `opponent` (a flat parameter blob of `network`, a model of
  /// the same spaces, nil for the worker's own) that plays every seat but one of
  /// every game; the seat it leaves moves on by one each game (``RolloutWorker``).
  public init(opponent: [Float], network: PolicyNetwork?, layout: ParameterLayout) throws {
    settings = Settings(size: 1, interval: 1, fraction: 1)
    self.layout = layout
    isFixed = true
    let p = Parameters(layout: network?.layout ?? layout)
    try p.load(flatValues: opponent)
    snapshots = [Snapshot(version: 0, parameters: p, network: network)]
  }

  /// Keeps `blob` (policy `version`) when a snapshot is due: at the first version
  /// at or after each multiple of the interval. The oldest goes when full.
  public func offer(_ blob: [Float], version: Int) throws {
    guard !isFixed, version >= due else { return }
    let p = Parameters(layout: layout)
    try p.load(flatValues: blob)
    snapshots.append(Snapshot(version: version, parameters: p))
    if snapshots.count > settings.size { snapshots.removeFirst(snapshots.count - settings.size) }
    due = (version / settings.interval + 1) * settings.interval
  }

  /// The policy for the other seats of a game about to start: a snapshot with
  /// probability `fraction` (drawn uniformly), nil for the current policy (and
  /// always before the first snapshot).
  public func draw<G: RandomNumberGenerator>(rng: inout G) -> Snapshot? {
    guard !snapshots.isEmpty, settings.fraction > 0 else { return nil }
    guard settings.fraction >= 1 || Double(rng.nextUnitFloat()) < settings.fraction else { return nil }
    return snapshots[Int(rng.next() % UInt64(snapshots.count))]
  }
}
