import ArgumentParser
import Foundation
import HerdMath
import HerdNN
import HerdRL

/// `herd bench learner`: the full IMPALA learner step against its GEMM floor.
struct BenchLearner: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "learner",
    abstract: "Time the whole learner step (batch, forward, V-trace, loss, backward, clip, optimiser).",
    discussion: """
      Builds N random fragments of T steps (F observation floats, A actions) and
      times Learner.step on them: batch build, packed forward, V-trace, loss,
      backward through heads, core and encoder, gradient clipping and the optimiser.
      Records every cblas_sgemm the step issues and times those alone (the floor), in
      alternating rounds. By default the LSTM sees the F features directly (no
      encoder), the model of `herd bench lstm`.

      Example: herd bench learner --threads 2
      """
  )

  @OptionGroup var shape: BatchShapeOptions
  @Option(parsing: .unconditional, help: "Discrete actions (A).")
  var actions = 6
  @Option(help: "Encoder hidden sizes, comma-separated (empty: none).")
  var fcnet = ""
  @Option(help: "Optimiser.")
  var optimizer = OptimizerKind.rmsprop
  @Option(
    parsing: .unconditional,
    help: "Learner threads: the batch is split into this many shards computed in parallel (learner_threads).")
  var learnerThreads = 1
  @Flag(help: "Time the step alone, without its GEMM floor (for profiling the step: perf sees nothing else).")
  var noFloor = false

  func validate() throws {
    try shape.validate()
    try requirePositive([("--actions", actions), ("--learner-threads", learnerThreads)])
    guard fcnet.isEmpty || fcnet.split(separator: ",").allSatisfy({ Int($0).map { $0 > 0 } ?? false }) else {
      throw ValidationError("--fcnet must be comma-separated positive sizes, e.g. 256,256; got '\(fcnet)'")
    }
  }


  func run() throws {
    BLAS.setThreadCount(shape.threads)
    var config = TrainingConfig()
    config.fcnet_hiddens = fcnet.split(separator: ",").compactMap { Int($0) }
    config.rnn_type = shape.cell
    config.lstm_cell_size = shape.hidden
    config.max_seq_len = shape.steps
    config.train_batch_size = shape.sequences * shape.steps
    config.optimizer = optimizer
    config.learner_threads = learnerThreads
    let network = PolicyNetwork(config: config, observationSize: shape.features, actionCount: actions)
    let learner = Learner(config: config, network: network)
    print(
      "herd bench learner: N=\(shape.sequences) T=\(shape.steps) F=\(shape.features) A=\(actions) fcnet=[\(fcnet)] \(shape.cell.rawValue.uppercased())(\(shape.hidden)) \(optimizer), \(network.layout.count) parameters, \(learnerThreads) learner thread(s)"
    )
    print(openBLASLine())

    var rng = SeededGenerator(seed: 1)
    func r() -> Float { 2 * rng.nextUnitFloat() - 1 }
    let fragments = (0..<shape.sequences).map { i in
      Fragment(
        stateIn: (0..<network.stateSize).map { _ in 0.5 * r() },
        observations: (0..<((shape.steps + 1) * shape.features)).map { _ in r() },
        actions: (0..<shape.steps).map { _ in Int32(rng.next() % UInt64(actions)) }, rewards: (0..<shape.steps).map { _ in r() },
        behaviourLogits: (0..<(shape.steps * actions)).map { _ in 0.1 * r() }, prevAction: 0, prevReward: 0, end: .cut,
        policyVersion: 0, workerID: 0, runID: 0, envIndex: i, episodeID: UInt64(i), indexInEpisode: 0)
    }
    let timesteps = Double(shape.sequences * shape.steps)
    let step = { _ = try? learner.step(fragments) }
    // The floor is measured for the single-threaded step only: the recorder sees
    // the calling thread's products, and sharded steps run them on several threads.
    guard learnerThreads == 1 && !noFloor else {
      var rates: [Double] = []
      step()
      for round in 1...shape.rounds {
        rates.append(timesteps / timePerCall(seconds: shape.seconds, { step() }))
        printError("round \(round)/\(shape.rounds): \(Int(rates[round - 1])) timesteps/s")
      }
      print(
        String(
          format: "learner step: %.0f timesteps/s (median of %d rounds; %@, no GEMM floor measured)",
          median(rates), shape.rounds, learnerThreads == 1 ? "one thread" : "\(learnerThreads) shards in parallel"))
      return
    }
    benchAgainstFloor(
      label: "learner step", timesteps: timesteps, rounds: shape.rounds, seconds: shape.seconds, rng: &rng, step: step)
  }
}
