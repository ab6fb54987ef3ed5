import HerdMath
import HerdNN
@testable import HerdRL
import HerdTestSupport
import Testing

@Suite struct ObservationFilterTests {
  /// Mean and sample standard deviation by the two-pass formula, in doubles.
  func reference(_ rows: [[Float]]) -> (mean: [Double], std: [Double]) {
    let n = Double(rows.count)
    let f = rows[0].count
    let mean = (0..<f).map { k in rows.reduce(0.0) { $0 + Double($1[k]) } / n }
    let std = (0..<f).map { k in
      (rows.reduce(0.0) { $0 + (Double($1[k]) - mean[k]) * (Double($1[k]) - mean[k]) } / (n - 1)).squareRoot()
    }
    return (mean, std)
  }

  /// Welford's running statistics, fed in uneven chunks, give the two-pass mean
  /// and sample std; the filter's parameters are the identity until two
  /// observations have been seen.
  @Test func statisticsMatchTheTwoPassReference() throws {
    var rng = SeededGenerator(seed: 5)
    let f = 4
    // Features on very different scales (and one constant).
    let rows: [[Float]] = (0..<257).map { _ in
      [100 + 3 * rng.nextUnitFloat(), 0.05 * (rng.nextUnitFloat() - 0.5), 7, Float(Int(rng.next() % 256))]
    }
    var stats = ObservationStatistics(features: f)
    var mean = [Float](repeating: 9, count: f)
    var scale = mean
    stats.write(mean: &mean, scale: &scale)
    #expect(mean == [0, 0, 0, 0] && scale == [1, 1, 1, 1])
    var start = 0
    for chunk in [1, 2, 30, 100, 124] {
      let flat = rows[start..<(start + chunk)].flatMap { $0 }
      flat.withPointer { stats.update($0, rows: chunk) }
      start += chunk
    }
    #expect(start == rows.count && stats.count == Double(rows.count))
    stats.write(mean: &mean, scale: &scale)
    let ref = reference(rows)
    for k in 0..<f {
      #expect(abs(Double(mean[k]) - ref.mean[k]) <= 1e-6 * max(1, abs(ref.mean[k])), "mean \(k)")
      let expected = Float(1 / (ref.std[k] + 1e-8))
      #expect(abs(scale[k] - expected) <= 1e-4 * expected, "scale \(k): \(scale[k]) vs \(expected)")
    }
    // The filter itself: centred, scaled and clipped to +-10.
    var out = [Float](repeating: 0, count: f)
    let x: [Float] = [ref.mean[0] + ref.std[0], 1e3, 7, ref.mean[3]].map { Float($0) }
    x.withPointer { px in ObservationFilter.apply(px, mean: mean, scale: scale, rows: 1, features: f, into: &out) }
    #expect(abs(out[0] - 1) < 1e-4 && out[1] == 10 && out[2] == 0 && abs(out[3]) < 1e-4, "\(out)")
  }

  /// The statistics survive a checkpoint's JSON exactly; a mismatch in features is refused.
  @Test func statisticsRoundTripThroughJSON() throws {
    var stats = ObservationStatistics(features: 3)
    let xs: [Float] = [0.1, 2, -3, 0.7, 1e-3, 5e4, 0.3, 0.2, 0.1]
    xs.withPointer { stats.update($0, rows: 3) }
    let back = try ObservationStatistics(json: try stats.json(), features: 3)
    #expect(back == stats)
    #expect(throws: NNError.self) { try ObservationStatistics(json: try stats.json(), features: 4) }
  }

  /// The learner adds the raw observations each fragment acted on (not the
  /// bootstrap ones) to its statistics, writes them into the filter's parameters,
  /// and the optimiser leaves them alone (they get no gradient).
  @Test func theLearnerKeepsTheFilterFromTheBatchesItTrainsOn() throws {
    var config = TrainingConfig.defaults(for: "StatelessCartPole-v1")
    #expect(config.observation_filter == .MeanStdFilter)
    config.num_envs_per_worker = 4
    config.max_seq_len = 10
    config.lstm_cell_size = 16
    let spaces = try EnvironmentFactory.spaces(config)
    let net = PolicyNetwork(config: config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
    #expect(net.trainableCount == net.layout.count - 2 * spaces.observationSize)
    let learner = Learner(config: config, network: net)
    let worker = try RolloutWorker(config: config, network: net, workerID: 0, seed: 1)
    try worker.setWeights(learner.parameters.flatValues, version: 0)
    var seen: [[Float]] = []
    for round in 0..<3 {
      var fragments: [Fragment] = []
      for _ in 0..<25 { try worker.step(emit: { fragments.append($0) }, episode: { _ in }) }
      for fr in fragments {
        for t in 0..<fr.length { seen.append(Array(fr.observations[(t * 2)..<(t * 2 + 2)])) }
      }
      let before = learner.parameters.flatValues
      let stats = try learner.step(fragments)
      #expect(!stats.skipped, "round \(round)")
      #expect(learner.observationStatistics?.count == Double(seen.count))
      let ref = reference(seen)
      let mean = learner.parameters.value(try #require(net.filterMean))
      let scale = learner.parameters.value(try #require(net.filterScale))
      for k in 0..<2 {
        #expect(abs(Double(mean[k]) - ref.mean[k]) <= 1e-6, "round \(round) mean \(k)")
        #expect(abs(Double(scale[k]) * (ref.std[k] + 1e-8) - 1) <= 1e-4, "round \(round) scale \(k)")
      }
      // The trained parameters moved; the filter's moved only with the statistics.
      let after = learner.parameters.flatValues
      #expect(after[4...] != before[4...])
      try worker.setWeights(after, version: learner.version)
    }
  }

  /// The learner filters each fragment with the filter its policy version was
  /// published with (what its worker acted with), not with the newest statistics;
  /// a version it no longer knows gets the current filter.
  @Test func eachFragmentIsFilteredWithItsWorkersFilter() throws {
    var config = TrainingConfig.defaults(for: "StatelessCartPole-v1")
    config.num_envs_per_worker = 4
    config.max_seq_len = 10
    config.lstm_cell_size = 8
    config.max_policy_lag = 3
    let net = PolicyNetwork(config: config, observationSize: 2, actionCount: 2)
    let learner = Learner(config: config, network: net)
    let worker = try RolloutWorker(config: config, network: net, workerID: 0, seed: 2)
    var filters: [[Float]] = []  // the filter of each version, from the published weights
    var fragments: [Fragment] = []
    func filterOf(_ weights: [Float]) -> [Float] { Array(weights[0..<4]) }  // mean [2] then scale [2]
    for _ in 0..<6 {
      let weights = learner.parameters.flatValues
      filters.append(filterOf(weights))
      try worker.setWeights(weights, version: learner.version)
      fragments = []
      for _ in 0..<12 { try worker.step(emit: { fragments.append($0) }, episode: { _ in }) }
      _ = try learner.step(fragments)
    }
    #expect(filters[0] == [0, 0, 1, 1], "version 0 is the identity")
    #expect(Set(filters.map { $0 }).count == 6, "each version has its own filter")
    // Fragments stamped with versions 0 (forgotten: lag limit 3), 4 and 5, and an unknown one.
    let probe = Array(fragments.prefix(4))
    var stamped = probe
    for (i, v) in [0, 4, 5, 99].enumerated() { stamped[i].policyVersion = v }
    var batch = try Batch(
      fragments: stamped, maxLength: 10, observationSize: 2, actionCount: 2, stateSize: net.stateSize)
    let raw = batch.obs
    learner.filterObservations(&batch, fragments: stamped)
    #expect(batch.observationsFiltered)
    let current = filterOf(learner.parameters.flatValues)
    for (i, filter) in [current, filters[4], filters[5], current].enumerated() {
      let n = (stamped[i].length + 1) * 2
      var expected = [Float](repeating: 0, count: n)
      let offset = i * 11 * 2
      Array(raw[offset..<(offset + n)]).withPointer { x in
        filter.withPointer { m in ObservationFilter.apply(x, mean: m, scale: m + 2, rows: n / 2, features: 2, into: &expected) }
      }
      #expect(Array(batch.obs[offset..<(offset + n)]) == expected, "fragment \(i)")
    }
  }
}
