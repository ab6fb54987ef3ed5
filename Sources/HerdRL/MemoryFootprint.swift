import Foundation
import HerdNN

/// A lower bound on the memory a learner or a worker needs for a config: enough
/// to refuse, with the key to blame, a size mistyped by a few zeros
/// (`lstm_cell_size=1000000` would allocate 16 TB and crash in the allocator),
/// never to refuse a config that fits. Only what must exist is counted:
///
/// - learner: the parameters three times (weights, gradient, one optimiser
///   moment) and, per step of a batch (`seq_len + 1` steps per fragment), its
///   observation, the core's state and gates (LSTM 6 H, GRU 4 H) and the heads;
/// - worker: the parameters once and, per environment, a fragment's `T + 1`
///   observations and the core's state.
public struct MemoryFootprint: Sendable, Equatable {
  /// Bytes of the parameters and their training copies.
  public var modelBytes: Double
  /// Bytes of a batch's (learner) or the fragments' (worker) steps.
  public var dataBytes: Double
  public var parameters: Int
  /// The largest parameter tensor: its name and shape.
  public var largest: (name: String, shape: [Int])?
  /// What drives `dataBytes`, in config keys.
  public var dataKeys: String

  public var bytes: Double { modelBytes + dataBytes }

  public static func == (a: Self, b: Self) -> Bool {
    a.modelBytes == b.modelBytes && a.dataBytes == b.dataBytes && a.parameters == b.parameters
      && a.largest?.name == b.largest?.name && a.largest?.shape == b.largest?.shape
  }

  /// Floats per step of the core (state and gates) for the learner, and of its
  /// state for a worker.
  static func coreFloats(_ config: TrainingConfig, training: Bool) -> Double {
    guard config.use_lstm else { return 0 }
    let h = Double(config.lstm_cell_size)
    let towers: Double = config.vf_share_layers ? 1 : 2
    switch config.rnn_type {
    case .gru: return towers * (training ? 4 : 1) * h
    case .lstm: return towers * (training ? 6 : 2) * h
    }
  }

  static func largest(_ network: PolicyNetwork) -> (name: String, shape: [Int])? {
    network.layout.entries.max { $0.slot.count < $1.slot.count }.map { ($0.name, $0.slot.shape) }
  }

  /// The learner's lower bound for `config` with `network`.
  public static func learner(_ config: TrainingConfig, network: PolicyNetwork, observationBytes: Int = 4)
    -> MemoryFootprint
  {
    let p = Double(network.layout.count)
    let steps = Double(config.fragmentsPerBatch) * Double(config.max_seq_len + 1)
    let perStep =
      Double(network.observationSize * observationBytes)
      + 4 * (coreFloats(config, training: true) + Double(network.actionCount + 1))
    return MemoryFootprint(
      modelBytes: 3 * 4 * p, dataBytes: steps * perStep, parameters: network.layout.count,
      largest: largest(network), dataKeys: "train_batch_size = \(config.train_batch_size)")
  }

  /// A worker's lower bound for `config` with `network`, stepping `envs` environments.
  public static func worker(_ config: TrainingConfig, network: PolicyNetwork, envs: Int, observationBytes: Int = 4)
    -> MemoryFootprint
  {
    let p = Double(network.layout.count)
    let perEnv =
      Double(config.max_seq_len + 1) * Double(network.observationSize * observationBytes)
      + 4 * coreFloats(config, training: false)
    // Each past policy a worker keeps: its values, unused gradients and packed weights.
    let snapshots = Double(config.reportsPastReturn ? config.self_play_pool_size : 0)
    return MemoryFootprint(
      modelBytes: 4 * p * (1 + 3 * snapshots), dataBytes: Double(envs) * perEnv, parameters: network.layout.count,
      largest: largest(network), dataKeys: "num_envs_per_worker = \(envs)")
  }

  /// For a built-in environment (its spaces are known without making its copies):
  /// throws when the learner, or one worker, of `config` cannot fit in this
  /// machine's memory. A Gymnasium environment is checked once a worker has made it.
  public static func checkBuiltIn(_ config: TrainingConfig, learner: Bool = true, worker: Bool = true) throws {
    guard config.gymID == nil else { return }
    let spec = try EnvironmentFactory.spec(config)
    let network = try PolicyNetwork(config: config, spec: spec)
    let bytes = spec.observation.flatIsBytes ? 1 : 4
    if learner {
      try Self.learner(config, network: network, observationBytes: bytes).check(against: physicalMemory, role: "learner")
    }
    if worker {
      try Self.worker(config, network: network, envs: config.num_envs_per_worker, observationBytes: bytes)
        .check(against: physicalMemory, role: "worker")
    }
  }

  /// This machine's memory in bytes (nil when it cannot be read).
  public static var physicalMemory: Double? {
    let pages = sysconf(Int32(_SC_PHYS_PAGES))
    let size = sysconf(Int32(_SC_PAGESIZE))
    guard pages > 0, size > 0 else { return nil }
    return Double(pages) * Double(size)
  }

  /// Throws a ``ConfigError`` when this footprint exceeds `memory` bytes, naming
  /// what is large: the model (its largest tensor) or the data (its key).
  public func check(against memory: Double?, role: String) throws {
    guard let memory, bytes > memory else { return }
    let cause: String
    if modelBytes >= dataBytes {
      let tensor = largest.map { ", the largest \($0.name) \($0.shape)," } ?? ""
      let copies = role == "learner" ? " with their gradient and optimiser state" : ""
      cause =
        "the model's \(parameters) parameters\(tensor) take \(Self.format(modelBytes))\(copies) (lstm_cell_size, fcnet_hiddens, post_fcnet_hiddens and the conv_ keys set its size)"
    } else {
      cause = "\(dataKeys) takes \(Self.format(dataBytes)) of observations and recurrent state at the least"
    }
    // The machine's memory last: the rest reads the same on every machine.
    throw ConfigError(
      "this config needs at least \(Self.format(bytes)) of memory in the \(role): \(cause); this machine has \(Self.format(memory))"
    )
  }

  /// Bytes in binary units: "23.5 GiB", "14.6 TiB".
  public static func format(_ bytes: Double) -> String {
    var v = bytes
    for unit in ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] {
      if v < 1024 || unit == "PiB" { return unit == "B" ? "\(Int(v)) B" : String(format: "%.1f", v) + " " + unit }
      v /= 1024
    }
    return "\(bytes) B"
  }
}
