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
      Builds N random fragments of T steps (F observation floats, A actions) and times
      Learner.step on them: batch build, packed forward, V-trace, loss, backward
      through heads, core and encoder, gradient clipping and the optimiser. Records
      every cblas_sgemm the step issues and times those alone (the floor), in
      alternating rounds. By default the LSTM sees the F features directly (no
      encoder), the model of `herd bench lstm`.

      Example: herd bench learner --threads 2
      """
  )

  @Option(name: .customLong("sequences"), help: "Fragments per batch (N).")
  var sequences = 32
  @Option(name: .customLong("time"), help: "Steps per fragment (T, max_seq_len).")
  var steps = 20
  @Option(help: "Observation floats (F).")
  var features = 67
  @Option(help: "Discrete actions (A).")
  var actions = 6
  @Option(help: "Cell size (H).")
  var hidden = 256
  @Option(help: "Encoder hidden sizes, comma-separated (empty: none).")
  var fcnet = ""
  @Option(help: "Recurrent cell: lstm or gru.")
  var cell = "lstm"
  @Option(help: "Optimiser: rmsprop or adam.")
  var optimizer = "rmsprop"
  @Option(help: "OpenBLAS threads for this run.")
  var threads = 1
  @Option(help: "Learner threads: the batch is split into this many shards computed in parallel (learner_threads).")
  var learnerThreads = 1
  @Option(help: "Alternating rounds; medians are reported.")
  var rounds = 7
  @Option(help: "Seconds per round per side.")
  var seconds = 0.5

  func validate() throws {
    try requirePositive([
      ("--sequences", sequences), ("--time", steps), ("--features", features), ("--actions", actions),
      ("--hidden", hidden), ("--threads", threads), ("--learner-threads", learnerThreads), ("--rounds", rounds),
    ])
    guard ["lstm", "gru"].contains(cell) else { throw ValidationError("--cell must be lstm or gru, got '\(cell)'") }
    guard ["rmsprop", "adam"].contains(optimizer) else {
      throw ValidationError("--optimizer must be rmsprop or adam, got '\(optimizer)'")
    }
    guard fcnet.isEmpty || fcnet.split(separator: ",").allSatisfy({ Int($0).map { $0 > 0 } ?? false }) else {
      throw ValidationError("--fcnet must be comma-separated positive sizes, e.g. 256,256; got '\(fcnet)'")
    }
  }

  func run() throws {
    BLAS.setThreadCount(threads)
    var config = TrainingConfig()
    config.fcnet_hiddens = fcnet.split(separator: ",").compactMap { Int($0) }
    config.rnn_type = cell
    config.lstm_cell_size = hidden
    config.max_seq_len = steps
    config.train_batch_size = sequences * steps
    config.optimizer = optimizer
    config.learner_threads = learnerThreads
    let network = PolicyNetwork(config: config, observationSize: features, actionCount: actions)
    let learner = Learner(config: config, network: network)
    print(
      "herd bench learner: N=\(sequences) T=\(steps) F=\(features) A=\(actions) fcnet=[\(fcnet)] \(cell.uppercased())(\(hidden)) \(optimizer), \(network.layout.count) parameters, \(learnerThreads) learner thread(s)"
    )
    print(openBLASLine())

    var rng = SeededGenerator(seed: 1)
    func r() -> Float { 2 * rng.nextUnitFloat() - 1 }
    let fragments = (0..<sequences).map { i in
      Fragment(
        stateIn: (0..<network.stateSize).map { _ in 0.5 * r() },
        observations: (0..<((steps + 1) * features)).map { _ in r() },
        actions: (0..<steps).map { _ in Int32(rng.next() % UInt64(actions)) }, rewards: (0..<steps).map { _ in r() },
        behaviourLogits: (0..<(steps * actions)).map { _ in 0.1 * r() }, prevAction: 0, prevReward: 0, end: .cut,
        policyVersion: 0, workerID: 0, runID: 0, envIndex: i, episodeID: UInt64(i), indexInEpisode: 0)
    }
    let timesteps = Double(sequences * steps)
    let step = { _ = try? learner.step(fragments) }
    // The floor is measured for the single-threaded step only: the recorder sees
    // the calling thread's products, and sharded steps run them on several threads.
    guard learnerThreads == 1 else {
      var rates: [Double] = []
      step()
      for round in 1...rounds {
        rates.append(timesteps / timePerCall(seconds: seconds, { step() }))
        printError("round \(round)/\(rounds): \(Int(rates[round - 1])) timesteps/s")
      }
      print(
        String(
          format: "learner step: %.0f timesteps/s (median of %d rounds; %d shards in parallel, no GEMM floor measured)",
          median(rates), rounds, learnerThreads))
      return
    }
    let recorder = GemmRecorder()
    GemmRecorder.$current.withValue(recorder) { step() }
    let shapes = recorder.shapes
    let flops = shapes.reduce(0) { $0 + $1.flops }
    print(
      "matrix products per step: \(shapes.count) GEMMs, \(String(format: "%.1f", flops / 1e6)) MFLOP for \(Int(timesteps)) timesteps"
    )
    let floor = GemmReplay(shapes: shapes, rng: &rng)
    let (s, f) = alternatingRounds(
      rounds: rounds, seconds: seconds, timesteps: timesteps, subject: { step() }, floor: { floor.run() })
    print(
      String(
        format: "learner step: %.0f timesteps/s, %.1f GFLOP/s in matrix products (median of %d rounds)", s,
        s / timesteps * flops / 1e9, rounds))
    print(String(format: "GEMM floor (the same %d products alone): %.0f timesteps/s", shapes.count, f))
    print(String(format: "ratio: %.2f", s / f))
  }
}
