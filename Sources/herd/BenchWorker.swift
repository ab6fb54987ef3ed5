import ArgumentParser
import Foundation
import HerdMath
import HerdNN
import HerdRL
import HerdWire

/// `herd bench worker`: rollout throughput of one worker, everything included.
struct BenchWorker: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "worker",
    abstract: "Time one rollout worker: env steps/s at several K, inference, recording and wire encoding included.",
    discussion: """
      One thread, one OpenBLAS thread: K environments stepped as one batch with the
      policy's batched forward (encoder, LSTM step, heads), sampling, fragment
      recording, and every finished fragment encoded as it would go on the wire.

      Example: herd bench worker --envs 1,8,32,64 --hidden 256
      """
  )

  @Option(help: "Environment.")
  var env = "CartPole-v1"
  @Option(help: "Comma-separated K values.")
  var envs = "1,8,32,64"
  @Option(parsing: .unconditional, help: "Cell size (lstm_cell_size).")
  var hidden = 256
  @Option(help: "Encoder hidden sizes, comma-separated (empty: none).")
  var fcnet = "256"
  @Option(parsing: .unconditional, help: "Seconds per K.")
  var seconds = 2.0

  func validate() throws {
    guard TrainingConfig.environmentNames.contains(env) else { throw ValidationError("--env \(env) is not one of \(TrainingConfig.environmentNames.joined(separator: ", "))") }
    guard !envs.split(separator: ",").isEmpty, envs.split(separator: ",").allSatisfy({ (Int($0) ?? 0) > 0 }) else {
      throw ValidationError("--envs must be comma-separated positive counts, got '\(envs)'")
    }
    try requirePositive([("--hidden", hidden)])
  }

  func run() throws {
    BLAS.setThreadCount(1)
    var base = TrainingConfig.defaults(for: env)
    base.lstm_cell_size = hidden
    base.fcnet_hiddens = fcnet.split(separator: ",").compactMap { Int($0) }
    // The environment's preset decides the core (GRU for MemoryChain, none for Pendulum).
    let core = base.use_lstm ? "\(base.rnn_type.rawValue.uppercased())(\(hidden))" : "no core (the preset's)"
    print("herd bench worker: \(env), encoder [\(fcnet)], \(core), one thread")
    print(openBLASLine())
    for k in envs.split(separator: ",").compactMap({ Int($0) }) {
      var config = base
      config.num_envs_per_worker = k
      let net = try PolicyNetwork(config: config, spec: try EnvironmentFactory.spec(config))
      var rng = SeededGenerator(seed: 1)
      let params = Parameters(layout: net.layout, rng: &rng)
      let worker = try RolloutWorker(config: config, network: net, workerID: 1, seed: 1)
      try worker.setWeights(params.flatValues, version: 0)
      let spec = ModelSpec(config: config, network: net)
      var pending: [Fragment] = []
      var bytes = 0
      let step = {
        _ = try? worker.step(emit: { pending.append($0) }, episode: { _ in })
        if pending.count >= 8 {
          bytes += (try? FragmentCodec.encodeBatch(pending, episodes: [], envSteps: 0, workerID: 1, runID: worker.runID, spec: spec).count) ?? 0
          pending.removeAll(keepingCapacity: true)
        }
      }
      let perCall = timePerCall(seconds: seconds, step)
      print(String(format: "K = %3d: %8.0f env steps/s (%.1f us per batched step), %.1f MB/s encoded", k, Double(k) / perCall, perCall * 1e6, Double(bytes) / 1e6 / (Double(worker.envSteps) / Double(k) * perCall)))
    }
  }
}
