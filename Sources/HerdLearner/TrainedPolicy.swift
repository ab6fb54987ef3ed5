import Foundation
import HerdEnvs
import HerdNN
import HerdRL

/// A trained policy read back from a checkpoint: the config it was trained with,
/// its environment's spec, its network and its weights (the observation filter's
/// statistics included).
public struct TrainedPolicy: Sendable {
  public var config: TrainingConfig
  public var spec: EnvSpec
  public var network: PolicyNetwork
  public var weights: [Float]
  public var policyVersion: Int
  /// The checkpoint file read.
  public var source: String

  /// Reads `path`: a run directory (its `checkpoint.herd`) or a checkpoint file.
  /// The config comes from the checkpoint's metadata; the spec from `env_spec.json`
  /// beside it, else from the environment itself (`host` starts an env host for a
  /// gym:ID environment).
  ///
  /// - Throws: ``RunDirectoryError`` naming what is missing or does not fit.
  public static func load(_ path: String, host: EnvHostSettings = EnvHostSettings()) throws -> TrainedPolicy {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      throw RunDirectoryError("\(path) does not exist: give a run directory or its checkpoint.herd")
    }
    let file = isDirectory.boolValue ? (path as NSString).appendingPathComponent("checkpoint.herd") : path
    guard FileManager.default.fileExists(atPath: file) else {
      throw RunDirectoryError("\(path) has no checkpoint.herd (has the run written its first checkpoint?)")
    }
    let archive = try TensorArchive.read(from: file)
    guard let text = archive.metadata[CheckpointKey.config], !text.isEmpty,
      let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
    else { throw RunDirectoryError("\(file) holds no training config in its metadata: not a Herd checkpoint") }
    let env = object["env"] as? String ?? TrainingConfig().env
    let config = try TrainingConfig.decode(json: Data(text.utf8), over: .defaults(for: env), source: file)
    let specFile = ((file as NSString).deletingLastPathComponent as NSString).appendingPathComponent("env_spec.json")
    let spec: EnvSpec
    if let json = try? String(contentsOfFile: specFile, encoding: .utf8) {
      spec = try EnvSpec(json: json.trimmingCharacters(in: .whitespacesAndNewlines))
    } else {
      spec = try EnvironmentFactory.spec(config, host: host)
    }
    let network = PolicyNetwork(
      config: config, observationSize: spec.observationSize, actionCount: try spec.actionCount(),
      actionHeads: try spec.action.actionHeads())
    let parameters = Parameters(layout: network.layout)
    do {
      try parameters.restore(from: archive, source: file)
    } catch {
      throw RunDirectoryError(
        "\(file) does not fit the model its config and environment spec (\(spec.observation) -> \(spec.action)) describe: \(error)"
      )
    }
    return TrainedPolicy(
      config: config, spec: spec, network: network, weights: parameters.flatValues,
      policyVersion: Int(archive.metadata[CheckpointKey.policyVersion] ?? "") ?? 0, source: file)
  }
}
