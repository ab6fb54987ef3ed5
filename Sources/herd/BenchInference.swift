import ArgumentParser
import Foundation
import HerdMath
import HerdNN
import HerdRL

/// `herd bench inference`: the policy's rollout step alone, no environment.
struct BenchInference: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "inference",
    abstract: "Time the rollout step alone: encoder, recurrent step, heads and sampling for K rows.",
    discussion: """
      One thread. What a worker's policy does per batch of K environments, without
      the environments, recording or the wire: the observation filter, the encoder,
      one LSTM/GRU step on K rows, both heads and one categorical sample per row.
      The model is `herd bench worker`'s (CartPole's 4 observations and 2 actions by
      default). benchmarks/vs_torch.py runs it beside PyTorch's same step.

      Example: herd bench inference --envs 32,64
      """
  )

  @Option(help: "Comma-separated K values (rows per step).")
  var envs = "32,64"
  @Option(parsing: .unconditional, help: "Observation features (F).")
  var features = 4
  @Option(parsing: .unconditional, help: "Discrete actions (A).")
  var actions = 2
  @Option(parsing: .unconditional, help: "Cell size (lstm_cell_size).")
  var hidden = 256
  @Option(help: "Recurrent cell.")
  var cell = RNNType.lstm
  @Option(help: "Encoder hidden sizes, comma-separated (empty: none).")
  var fcnet = "256"
  @Option(parsing: .unconditional, help: "Rounds per K; the median is reported.")
  var rounds = 5
  @Option(parsing: .unconditional, help: "Seconds per round.")
  var seconds = 0.5

  func validate() throws {
    guard !envs.split(separator: ",").isEmpty, envs.split(separator: ",").allSatisfy({ (Int($0) ?? 0) > 0 }) else {
      throw ValidationError("--envs must be comma-separated positive counts, got '\(envs)'")
    }
    try requirePositive([("--features", features), ("--actions", actions), ("--hidden", hidden), ("--rounds", rounds)])
    guard seconds > 0 else { throw ValidationError("--seconds must be positive, got \(seconds)") }
    guard fcnet.isEmpty || fcnet.split(separator: ",").allSatisfy({ Int($0).map { $0 > 0 } ?? false }) else {
      throw ValidationError("--fcnet must be comma-separated positive sizes, e.g. 256,256; got '\(fcnet)'")
    }
  }

  func run() throws {
    BLAS.setThreadCount(1)
    var config = TrainingConfig()
    config.fcnet_hiddens = fcnet.split(separator: ",").compactMap { Int($0) }
    config.rnn_type = cell
    config.lstm_cell_size = hidden
    let net = PolicyNetwork(config: config, observationSize: features, actionCount: actions)
    print(
      "herd bench inference: F=\(features) encoder [\(fcnet)] \(cell.rawValue.uppercased())(\(hidden)) A=\(actions), one thread, kernels \(KernelISA.preferred)"
    )
    print(openBLASLine())
    var rng = SeededGenerator(seed: 1)
    let params = Parameters(layout: net.layout, rng: &rng)
    for k in envs.split(separator: ",").compactMap({ Int($0) }) {
      let obs = (0..<(k * features)).map { _ in 2 * rng.nextUnitFloat() - 1 }
      let prevActions = [Int32](repeating: 0, count: k)
      let prevRewards = [Float](repeating: 0, count: k)
      var h = [Float](repeating: 0, count: k * hidden)
      var c = [Float](repeating: 0, count: k * hidden)
      var sampled = [Int32](repeating: 0, count: k)
      let ws = PolicyWorkspace()
      var sampler = SeededGenerator(seed: 2)
      func step() {
        obs.withPointer { o in
          prevActions.withUnsafeBufferPointer { pa in
            prevRewards.withPointer { pr in
              h.withMutablePointer { ph in
                c.withMutablePointer { pc in
                  net.step(
                    params, obs: o, prevActions: pa.baseAddress.unsafelyUnwrapped, prevRewards: pr, rows: k, h: ph,
                    c: pc, ws: ws)
                }
              }
            }
          }
        }
        let logits = ws.logits.pointer
        for i in 0..<k { sampled[i] = Int32(sampleCategorical(logits + i * actions, count: actions, rng: &sampler)) }
      }
      step()
      var rates: [Double] = []
      for _ in 0..<rounds { rates.append(Double(k) / timePerCall(seconds: seconds, step)) }
      print(String(format: "K=%d: %.0f steps/s (median of %d rounds)", k, median(rates), rounds))
    }
  }
}
