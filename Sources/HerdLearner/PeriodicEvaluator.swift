import Foundation
import HerdEnvs
import HerdRL
import Synchronization

/// Evaluates the learner's weights during training (`evaluation_interval_env_steps`)
/// on a thread and environments of its own, so training goes on meanwhile.
///
/// The trainer offers weights when an interval has passed; an evaluator still busy
/// with the previous ones turns them down (the trainer offers again at its next
/// iteration, so a slow evaluation delays the next one rather than queueing them).
/// Each evaluation runs the weights as `herd eval --seed 1000000 --episodes E
/// --envs K` does, on the same K environments reset with the same seeds, so every
/// evaluation meets the same episode starts and `herd eval` of the weights gives
/// the same episodes. The seed is far from the workers' (1, 2, ... plus the run's
/// seed, whose environments are seeded a thousand times that), so an evaluation
/// does not replay the episodes a worker trained on first, and it is the same for
/// every run: runs of different seeds are evaluated on the same episode starts. Finished evaluations wait for the trainer, which
/// reports them and writes the run folder (it owns every write there).
final class PeriodicEvaluator: Sendable {
  /// Weights to evaluate: their version, and the run's env steps and seconds when taken.
  struct Request: Sendable {
    var version: Int
    var weights: [Float]
    var envSteps: Int
    var runSeconds: Double
  }

  /// A finished evaluation (or why evaluations cannot run: then no more follow).
  struct Outcome: Sendable {
    var request: Request
    var result: Evaluation?
    var seconds: Double
    var failure: String?
  }

  /// The seed of `herd eval` whose episode starts every evaluation meets (its
  /// environments are seeded `seed * 1000 + i`).
  static let seed: UInt64 = 1_000_000

  let config: TrainingConfig
  let model: RunModel
  let envHost: EnvHostSettings
  private struct State {
    var request: Request?
    var busy = false
    var finished: [Outcome] = []
  }
  private let state = Mutex(State())
  /// Wakes the thread when weights are offered (it also looks every 0.1 s, for a stop).
  private let offered = OfferSignal()

  init(config: TrainingConfig, model: RunModel, envHost: EnvHostSettings) {
    self.config = config
    self.model = model
    self.envHost = envHost
  }

  /// Environments per evaluation.
  var envCount: Int { min(config.evaluation_episodes, config.num_envs_per_worker) }

  /// The config the evaluations' environments are made from: the run's, with
  /// `evaluation_env_config`'s keys in its `env_config`.
  var environmentConfig: TrainingConfig {
    var c = config
    for (key, value) in config.evaluation_env_config.values { c.env_config[key] = value }
    return c
  }

  /// Hands over weights to evaluate; false while an evaluation is running or waiting.
  func offer(_ request: Request) -> Bool {
    let taken = state.withLock { s in
      guard !s.busy && s.request == nil else { return false }
      s.request = request
      return true
    }
    if taken { offered.signal() }
    return taken
  }

  /// True when no evaluation is running or waiting to start (one that finished
  /// since may still wait in ``takeFinished()``).
  var idle: Bool { state.withLock { !$0.busy && $0.request == nil } }

  /// The evaluations finished since the last call, oldest first.
  func takeFinished() -> [Outcome] {
    state.withLock { s in
      defer { s.finished.removeAll() }
      return s.finished
    }
  }

  /// Evaluates what is offered until `stop` is set (an evaluation then running is
  /// abandoned), or until evaluations cannot run (reported as an outcome).
  /// `log` hears what the environments say as they start.
  func run(stop: StopFlag, log: @escaping (String) -> Void) {
    var envs: (any VectorEnv)?
    var network: PolicyNetwork?
    defer { envs?.close() }
    let clock = ContinuousClock()
    while !stop.isSet {
      let request: Request? = state.withLock { s in
        defer { s.request = nil }
        if s.request != nil { s.busy = true }
        return s.request
      }
      guard let request else {
        offered.wait(seconds: 0.1)
        continue
      }
      let start = clock.now
      func seconds() -> Double {
        let d = clock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
      }
      do {
        if envs == nil {
          guard let adopted = model.current else { throw EvaluatorFailure("the run has no model yet") }
          let made: any VectorEnv
          let own = environmentConfig
          do {
            made = try EnvironmentFactory.make(own, count: envCount, seed: Self.seed &* 1000, host: envHost, log: log)
          } catch {
            throw EvaluatorFailure("cannot make \(envCount) \(config.env) environments in the learner's process: \(error)")
          }
          // With evaluation_env_config the environments differ on purpose; their
          // spaces must still be the run's.
          var spec = made.spec
          if !config.evaluation_env_config.values.isEmpty { spec.config = adopted.env.config }
          if let difference = spec.difference(from: adopted.env) {
            made.close()
            throw EvaluatorFailure(
              "the learner's own \(config.env) environments differ from the ones the run was built from: \(difference)")
          }
          envs = made
          network = try PolicyNetwork(config: config, spec: adopted.env)
        }
        guard let envs, let network else { break }
        let result = try Evaluation.run(
          config: config, network: network, weights: request.weights, envs: envs, episodes: config.evaluation_episodes,
          greedy: config.evaluation_greedy, seed: Self.seed, stop: stop)
        guard result.complete else { break }  // stopped
        finish(Outcome(request: request, result: result, seconds: seconds(), failure: nil))
      } catch {
        if stop.isSet { break }
        finish(Outcome(request: request, result: nil, seconds: seconds(), failure: "\(error)"))
        return
      }
    }
  }

  private func finish(_ outcome: Outcome) {
    state.withLock { s in
      s.finished.append(outcome)
      s.busy = false
    }
  }
}

/// A signal one thread waits on (with a timeout) and another gives; one given
/// while nobody waits is kept for the next wait.
final class OfferSignal: @unchecked Sendable {
  // Every access holds the condition's lock.
  private let condition = NSCondition()
  private var pending = false

  func signal() {
    condition.lock()
    pending = true
    condition.signal()
    condition.unlock()
  }

  func wait(seconds: Double) {
    condition.lock()
    defer { condition.unlock() }
    let deadline = Date(timeIntervalSinceNow: seconds)
    while !pending && condition.wait(until: deadline) {}
    pending = false
  }
}

/// Why evaluations cannot run.
struct EvaluatorFailure: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}
