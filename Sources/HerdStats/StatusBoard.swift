import Foundation
import HerdMath
import HerdRL
import Synchronization

/// What the trainer reports about itself, once a second: a value, so readers
/// (the stats endpoint, progress lines) never touch the trainer's state.
public struct TrainerStatus: Sendable {
  /// Seconds since the run started.
  public var wallSeconds: Double
  public var stats: RunStats.Snapshot
  /// Updates applied (= policy version).
  public var updates: Int
  public var trainedSteps: Int
  /// Env steps sampled per second over the last few seconds.
  public var sampledPerSecond: Double
  /// Env steps trained per second over the last few seconds.
  public var trainedPerSecond: Double
  /// The latest update's loss terms and optimiser figures (nil before the first).
  public var lastUpdate: UpdateFigures?
  public var queueDepth: Int
  public var queueCapacity: Int
  /// Why the run stopped (nil while it runs).
  public var stoppedBecause: String?
  /// The last failed write to the run directory (disk full...), nil once writes succeed again.
  public var diskError: String? = nil
  /// Timesteps trained again (`num_epochs` passes after the first, the idle learner's reuse).
  public var reusedSteps = 0
  /// Bytes the fragments in the learner's queue hold.
  public var queueBytes = 0
  /// Fragments in the replay buffer (`replay_buffer_num_slots`), and the bytes they hold.
  public var replayFragments = 0
  public var replayBytes = 0
  /// The latest evaluation of the learner's weights (`evaluation_interval_env_steps`),
  /// the best so far by mean return, and how many have finished (nil, nil, 0 before the first).
  public var evaluation: EvaluationFigures? = nil
  public var bestEvaluation: EvaluationFigures? = nil
  public var evaluations = 0
  /// (trained + reused) / trained: how often each trained sample was used (1: once).
  public var sampleReuse: Double { trainedSteps > 0 ? Double(trainedSteps + reusedSteps) / Double(trainedSteps) : 1 }

  /// One update's figures, as reported.
  public struct UpdateFigures: Sendable {
    public var policyLoss: Float
    public var baselineLoss: Float
    /// The entropy term as it enters the loss: -entropy_coeff * entropy.
    public var entropyLoss: Float
    public var entropy: Float
    public var gradNorm: Float
    public var learningRate: Float
    /// The entropy bonus weight of the update (`entropy_coeff` as decayed).
    public var entropyCoeff: Float = 0
    public var meanRho: Float
    /// The fraction of steps whose policy gradient the surrogate's clip zeroed.
    public var clippedFraction: Float = 0

    public init(
      policyLoss: Float, baselineLoss: Float, entropyLoss: Float, entropy: Float, gradNorm: Float, learningRate: Float,
      meanRho: Float
    ) {
      self.policyLoss = policyLoss
      self.baselineLoss = baselineLoss
      self.entropyLoss = entropyLoss
      self.entropy = entropy
      self.gradNorm = gradNorm
      self.learningRate = learningRate
      self.meanRho = meanRho
    }
  }

  public init(
    wallSeconds: Double, stats: RunStats.Snapshot, updates: Int, trainedSteps: Int, sampledPerSecond: Double,
    trainedPerSecond: Double, lastUpdate: UpdateFigures?, queueDepth: Int, queueCapacity: Int,
    stoppedBecause: String?, diskError: String? = nil
  ) {
    self.wallSeconds = wallSeconds
    self.stats = stats
    self.updates = updates
    self.trainedSteps = trainedSteps
    self.sampledPerSecond = sampledPerSecond
    self.trainedPerSecond = trainedPerSecond
    self.lastUpdate = lastUpdate
    self.queueDepth = queueDepth
    self.queueCapacity = queueCapacity
    self.stoppedBecause = stoppedBecause
    self.diskError = diskError
  }
}

/// One evaluation of the learner's weights during training, away from training's
/// episodes (`evaluation_interval_env_steps`): what `/stats`, `summary.json` and
/// `evaluations.jsonl` report of it.
public struct EvaluationFigures: Codable, Sendable, Equatable {
  /// The policy version evaluated, and the env steps sampled when its weights were taken.
  public var policyVersion: Int
  public var envSteps: Int
  /// The run's seconds when the evaluation finished, and the seconds it took.
  public var wallSeconds: Double
  public var seconds: Double
  public var episodes: Int
  /// Each head's most likely action (true) or actions sampled from the policy.
  public var greedy: Bool
  @ExplicitNull public var returnMean: Double?
  @ExplicitNull public var returnStd: Double?
  @ExplicitNull public var returnMin: Double?
  @ExplicitNull public var returnMax: Double?
  @ExplicitNull public var lengthMean: Double?
  /// Each `episode_info_keys` entry's mean over the evaluation's episodes that had
  /// it (null when none had it; empty without the keys).
  public var info: [String: Double?] = [:]

  public init(
    policyVersion: Int, envSteps: Int, wallSeconds: Double, seconds: Double, episodes: Int, greedy: Bool,
    returnMean: Double?, returnStd: Double?, returnMin: Double?, returnMax: Double?, lengthMean: Double?
  ) {
    (self.policyVersion, self.envSteps, self.wallSeconds, self.seconds) = (policyVersion, envSteps, wallSeconds, seconds)
    (self.episodes, self.greedy) = (episodes, greedy)
    (self.returnMean, self.returnStd, self.returnMin, self.returnMax) = (returnMean, returnStd, returnMin, returnMax)
    self.lengthMean = lengthMean
  }

  enum CodingKeys: String, CodingKey {
    case policyVersion = "policy_version"
    case envSteps = "env_steps"
    case wallSeconds = "wall_seconds"
    case seconds
    case episodes
    case greedy
    case returnMean = "return_mean"
    case returnStd = "return_std"
    case returnMin = "return_min"
    case returnMax = "return_max"
    case lengthMean = "length_mean"
    case info
  }
}

/// One point of the learning curves the dashboard draws.
public struct HistoryPoint: Sendable, Equatable {
  public var wallSeconds: Double
  public var envSteps: Int
  public var meanReturn: Float?
  public var sampledPerSecond: Double
  public var trainedPerSecond: Double
  public var policyLoss: Float?
  public var baselineLoss: Float?
  public var entropyLoss: Float?
  public var lagP50: Int
  public var lagP95: Int
  /// Each `episode_info_keys` entry's mean, for the keys an episode had by then.
  public var episodeInfo: [String: Float] = [:]
  /// The mean return of the latest evaluation by then (nil before the first).
  public var evaluationReturn: Float? = nil

  public init(
    wallSeconds: Double, envSteps: Int, meanReturn: Float?, sampledPerSecond: Double, trainedPerSecond: Double,
    policyLoss: Float?, baselineLoss: Float?, entropyLoss: Float?, lagP50: Int, lagP95: Int
  ) {
    (self.wallSeconds, self.envSteps, self.meanReturn) = (wallSeconds, envSteps, meanReturn)
    (self.sampledPerSecond, self.trainedPerSecond) = (sampledPerSecond, trainedPerSecond)
    (self.policyLoss, self.baselineLoss, self.entropyLoss) = (policyLoss, baselineLoss, entropyLoss)
    (self.lagP50, self.lagP95) = (lagP50, lagP95)
  }
}

/// The trainer's published status and curves, read by the stats endpoint and the
/// progress display. The trainer writes (a copy under a short lock); readers copy.
/// The history keeps at most `capacity` points over the whole run: when full, every
/// second point goes and new points are kept half as often.
public final class StatusBoard: Sendable {
  private struct State {
    var latest: TrainerStatus?
    var points: [HistoryPoint] = []
    var stride = 1
    var offered = 0
    var lastBeat = ContinuousClock.now
    var publishedAt = ContinuousClock.now

    /// Keeps every `stride`-th point offered; when full, drops every second one and
    /// keeps points half as often from then on.
    mutating func offer(_ point: HistoryPoint, capacity: Int) {
      if offered % stride == 0 {
        points.append(point)
        if points.count >= capacity {
          points = points.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
          stride *= 2
        }
      }
      offered += 1
    }
  }
  private let state = Mutex(State())
  /// Most history points kept.
  public let capacity: Int
  /// When the board (the run) started.
  public let started = Date()

  public init(capacity: Int = 1024) { self.capacity = max(4, capacity) }

  /// Starts the history with `points` (a resumed run's curves so far, oldest
  /// first), thinned to fit as publishing would have: the dashboard's curves go on
  /// across a resume instead of starting again.
  public func seed(_ points: [HistoryPoint]) {
    let capacity = self.capacity
    state.withLock { s in
      for point in points { s.offer(point, capacity: capacity) }
    }
  }

  /// Publishes a status and offers its point to the history.
  public func publish(_ status: TrainerStatus) {
    var point = HistoryPoint(
      wallSeconds: status.wallSeconds, envSteps: status.stats.envSteps, meanReturn: status.stats.meanReturn,
      sampledPerSecond: status.sampledPerSecond, trainedPerSecond: status.trainedPerSecond,
      policyLoss: status.lastUpdate?.policyLoss, baselineLoss: status.lastUpdate?.baselineLoss,
      entropyLoss: status.lastUpdate?.entropyLoss, lagP50: status.stats.lagP50, lagP95: status.stats.lagP95)
    for i in status.stats.episodeInfo { if let m = i.mean, m.isFinite { point.episodeInfo[i.key] = m } }
    point.evaluationReturn = status.evaluation?.returnMean.map(Float.init)
    let capacity = self.capacity
    state.withLock { s in
      s.latest = status
      s.lastBeat = .now
      s.publishedAt = s.lastBeat
      s.offer(point, capacity: capacity)
    }
  }

  /// Marks the trainer's loop as alive (called every iteration; cheap).
  public func beat() { state.withLock { $0.lastBeat = .now } }

  /// The latest status (nil before the trainer's first).
  public var status: TrainerStatus? { state.withLock { $0.latest } }
  /// The curves so far, oldest first.
  public var history: [HistoryPoint] { state.withLock { $0.points } }
  /// Seconds since the latest status was published.
  public var secondsSincePublish: Double { state.withLock { $0.publishedAt }.duration(to: .now).seconds }
  /// Seconds since the trainer's loop last went round.
  public var secondsSinceBeat: Double { state.withLock { $0.lastBeat }.duration(to: .now).seconds }
}

/// Sampled and trained rates over a sliding window of a few seconds.
public struct RateWindow {
  private var samples: [(t: Double, sampled: Int, trained: Int)] = []
  let seconds: Double

  public init(seconds: Double) { self.seconds = seconds }

  /// Adds a sample and returns the rates since the oldest one still in the window.
  public mutating func add(t: Double, sampled: Int, trained: Int) -> (sampled: Double, trained: Double) {
    samples.append((t, sampled, trained))
    while samples.count > 2, t - samples[1].t >= seconds { samples.removeFirst() }
    guard let first = samples.first, t - first.t > 1e-6 else { return (0, 0) }
    return (Double(sampled - first.sampled) / (t - first.t), Double(trained - first.trained) / (t - first.t))
  }
}
