import ArgumentParser
import Foundation
import HerdExport
import HerdLearner
import HerdRL

/// `herd export`: a trained policy as safetensors + JSON sidecar + ONNX.
struct ExportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "export",
    abstract: "Write a trained policy for use without Herd: safetensors weights, a JSON sidecar and ONNX.",
    discussion: """
      Reads a run directory (its checkpoint.herd and env_spec.json) or a checkpoint
      file and writes three files into --output:

        policy.safetensors  every parameter under its PyTorch name (encoder.0.weight,
                            core.weight_ih_l0 of nn.LSTM/nn.GRU, pi.*, vf.*, and
                            the observation filter's obs_filter.mean and
                            obs_filter.scale)
        policy.json         the spaces, the encoder/core/heads layout, the filter's
                            mean, std and scale, whether the previous action and
                            reward are inputs, the ONNX signature and Herd's version
        policy.onnx         one step (opset \(PolicyExport.opset)): inputs obs [N, F],
                            prev_action [N] (int64) and prev_reward [N] when
                            the policy uses them, h [N, H] and c [N, H];
                            outputs logits [N, A], value [N], h_out and c_out.
                            The caller carries the state and zeros it (and
                            prev_action, prev_reward) at episode starts.

      In Python (python/herd_policy, installed into the project's venv):
        import herd_policy
        policy = herd_policy.load("runs/demo/export")      # a torch.nn.Module
        state = policy.initial_state(batch=1)
        logits, value, state = policy(obs, state, prev_action, prev_reward)

      Each file is written whole, then renamed into place.

      Examples:
        herd export --checkpoint runs/demo
        herd export --checkpoint runs/demo/checkpoint.herd --output /tmp/policy
      """
  )

  @Option(help: "A run directory (its checkpoint.herd) or a checkpoint file.")
  var checkpoint: String
  @Option(
    help: """
      Folder to write the three files into (created if missing; default: the run directory's export/ for its \
      checkpoint, export-best/ for best.herd, export-best_eval/ for best_eval.herd, export-milestone-N/ for \
      milestones/N.herd).
      """)
  var output: String?
  @OptionGroup var envHost: EnvHostOptions

  func validate() throws { try envHost.validate() }

  /// Where a checkpoint file's export goes by default: `export/` beside the run's
  /// checkpoint.herd, `export-NAME/` beside any other NAME.herd (best.herd), and
  /// `export-milestone-N/` in the run folder for `milestones/N.herd`, so that no
  /// two of a run's policies share a folder.
  static func defaultOutput(_ file: String) -> String {
    let folder = (file as NSString).deletingLastPathComponent
    let stem = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
    if stem == "checkpoint" { return (folder as NSString).appendingPathComponent("export") }
    if (folder as NSString).lastPathComponent == RunDirectory.milestoneFolder {
      return ((folder as NSString).deletingLastPathComponent as NSString).appendingPathComponent("export-milestone-\(stem)")
    }
    return (folder as NSString).appendingPathComponent("export-\(stem)")
  }

  func run() throws {
    let policy = try TrainedPolicy.load(checkpoint, host: envHost.settings)
    let directory =
      output ?? Self.defaultOutput(policy.source)
    let export = PolicyExport(policy)
    let paths = try export.write(to: directory)
    printError(
      "export: \(policy.source) (policy version \(policy.policyVersion), \(policy.config.env), \(export.summary)) -> \(directory)"
    )
    for path in paths {
      let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
      print(String(format: "%@  %@", byteCount(size), path))
    }
  }

  func byteCount(_ n: Int) -> String {
    n >= 1 << 20 ? String(format: "%7.1f MiB", Double(n) / Double(1 << 20))
      : n >= 1 << 10 ? String(format: "%7.1f KiB", Double(n) / 1024) : String(format: "%7d B  ", n)
  }
}
