import Foundation
import HerdNN
import Testing

@testable import HerdRL

/// The lower bound on a learner's and a worker's memory that refuses sizes mistyped
/// by a few zeros before anything is allocated.
@Suite struct MemoryFootprintTests {
  func network(_ config: TrainingConfig) throws -> PolicyNetwork {
    try PolicyNetwork(config: config, spec: try EnvironmentFactory.spec(config))
  }

  /// The bound is what its documentation counts, checked by hand on
  /// StatelessCartPole's defaults: F = 2 floats, LSTM(64), 2 actions.
  @Test func theBoundCountsWhatItSays() throws {
    let config = TrainingConfig.defaults(for: "StatelessCartPole-v1")
    let net = try network(config)
    #expect(config.use_lstm && config.rnn_type == .lstm && config.vf_share_layers)
    let (h, t, n, f, a) = (
      Double(config.lstm_cell_size), Double(config.max_seq_len), Double(config.fragmentsPerBatch), 2.0, 2.0
    )
    let p = Double(net.layout.count)
    let learner = MemoryFootprint.learner(config, network: net)
    #expect(learner.modelBytes == 12 * p)
    #expect(learner.dataBytes == n * (t + 1) * (4 * f + 4 * (6 * h + a + 1)))
    let worker = MemoryFootprint.worker(config, network: net, envs: 32)
    #expect(worker.modelBytes == 4 * p)
    #expect(worker.dataBytes == 32 * ((t + 1) * 4 * f + 4 * 2 * h))
    // Defaults fit in a gigabyte with room to spare.
    try learner.check(against: 1_073_741_824, role: "learner")
    try worker.check(against: 1_073_741_824, role: "worker")
    // uint8 observations count one byte each; a GRU 4 H in training, H in a worker.
    #expect(MemoryFootprint.learner(config, network: net, observationBytes: 1).dataBytes < learner.dataBytes)
    var gru = config
    gru.rnn_type = .gru
    let g = try network(gru)
    #expect(MemoryFootprint.learner(gru, network: g).dataBytes == n * (t + 1) * (4 * f + 4 * (4 * h + a + 1)))
    #expect(MemoryFootprint.worker(gru, network: g, envs: 1).dataBytes == (t + 1) * 4 * f + 4 * h)
  }

  /// A cell size with three zeros too many: refused, naming the largest tensor and
  /// the keys that size the model, in units a person reads.
  @Test func aHugeModelIsRefusedNamingItsLargestTensor() throws {
    var config = TrainingConfig.defaults(for: "StatelessCartPole-v1")
    config.lstm_cell_size = 64_000
    let footprint = MemoryFootprint.learner(config, network: try network(config))
    let error = try #require(throws: ConfigError.self) {
      try footprint.check(against: 24 * 1024 * 1024 * 1024, role: "learner")
    }
    let text = "\(error)"
    #expect(text.hasSuffix("; this machine has 24.0 GiB"), "\(text)")
    #expect(text.contains("core.weight_hh [256000, 64000], take ") && text.contains("with their gradient"), "\(text)")
    #expect(text.contains("lstm_cell_size"), "\(text)")
    #expect(text.contains("in the learner"), "\(text)")
  }

  /// A batch or a worker's environments too many: refused, naming the key.
  @Test func aHugeBatchOrEnvironmentCountIsRefusedNamingTheKey() throws {
    var config = TrainingConfig.defaults(for: "StatelessCartPole-v1")
    config.train_batch_size = 2_000_000_000
    let net = try network(config)
    let batch = try #require(throws: ConfigError.self) {
      try MemoryFootprint.learner(config, network: net).check(against: 24 * 1024 * 1024 * 1024, role: "learner")
    }
    #expect("\(batch)".contains("train_batch_size = 2000000000 takes"), "\(batch)")
    let envs = try #require(throws: ConfigError.self) {
      try MemoryFootprint.worker(config, network: net, envs: 100_000_000).check(against: 17_179_869_184, role: "worker")
    }
    #expect("\(envs)".contains("num_envs_per_worker = 100000000 takes"), "\(envs)")
    #expect("\(envs)".contains("of memory in the worker: num_envs_per_worker") && "\(envs)".hasSuffix("this machine has 16.0 GiB"), "\(envs)")
  }

  @Test func bytesAreWrittenInBinaryUnits() {
    #expect(MemoryFootprint.format(512) == "512 B")
    #expect(MemoryFootprint.format(1536) == "1.5 KiB")
    #expect(MemoryFootprint.format(24 * 1024 * 1024 * 1024) == "24.0 GiB")
    #expect(MemoryFootprint.format(16e12) == "14.6 TiB")
  }

  /// This machine's memory reads as something plausible.
  @Test func physicalMemoryIsRead() throws {
    let memory = try #require(MemoryFootprint.physicalMemory)
    #expect(memory > 268_435_456 && memory < 1e15)
  }
}
