import Foundation
import HerdEnvs
import HerdLearner
import HerdNN
import HerdRL
import HerdTestSupport
import Testing

@testable import HerdExport

/// The three fixture policies (Tests/Fixtures/make_export_fixtures.py): an LSTM with
/// the previous action, a GRU over a Dict observation with two action heads and both
/// previous action and reward, a feed-forward ReLU policy without filter, and
/// impala_deep's convolutions (conv, max-pool, residual blocks) over PixelMemory's
/// uint8 frames with a GRU, and two Gaussian policies: an LSTM with the learned
/// log std vector (StatelessPendulum) and a feed-forward one whose log std comes
/// from the state (Pendulum); the value's own encoder and core; post layers between
/// an LSTM and both heads, and a GRU whose value tower has its own post layers; a
/// Gaussian LSTM with the previous action (floats, clipped to the bounds) as an input;
/// an LSTM over TicTacToe whose logits its observation's action mask masks.
let variants = [
  "lstm", "gru", "ff", "conv", "gaussian", "gaussian_state_std", "own_value", "post", "post_own_value",
  "gaussian_prev_action", "masked",
]

func fixture(_ variant: String) -> String { fixturesDirectory() + "/export/" + variant }

/// Input sequences and per-step outputs as the fixtures store them.
struct Sequence {
  var obs: [[[Float]]]
  var prevAction: [[Int32]]
  /// Box actions: the previous actions per step `[rows * D]` (empty for discrete ones).
  var prevActionValues: [[Float]]
  var prevReward: [[Float]]
  var reset: [[Int]]

  init(json path: String) throws {
    let o = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    obs = try #require(o["obs"] as? [[[Double]]]).map { $0.map { $0.map(Float.init) } }
    if let values = o["prev_action"] as? [[[Double]]] {
      prevActionValues = values.map { $0.flatMap { $0.map(Float.init) } }
      prevAction = values.map { [Int32](repeating: 0, count: $0.count) }
    } else {
      prevAction = try #require(o["prev_action"] as? [[Int]]).map { $0.map(Int32.init) }
      prevActionValues = []
    }
    prevReward = try #require(o["prev_reward"] as? [[Double]]).map { $0.map(Float.init) }
    reset = try #require(o["reset"] as? [[Int]])
  }
}

/// Per-step outputs: name -> [T][rows * width] flattened per step.
typealias Outputs = [String: [[Float]]]

func readOutputs(_ path: String) throws -> Outputs {
  let o = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
  var out: Outputs = [:]
  for key in ["logits", "value", "h", "c"] {
    if let v = o[key] as? [[[Double]]] { out[key] = v.map { $0.flatMap { $0.map(Float.init) } } }
    if let v = o[key] as? [[Double]] { out[key] = v.map { $0.map(Float.init) } }
  }
  return out
}

/// Herd's own steps over `seq` (``Policy``, which runs the workers' step), the state
/// zeroed at every reset.
func herdSteps(_ trained: TrainedPolicy, _ seq: Sequence) throws -> Outputs {
  let policy = try Policy(trained)
  var state = policy.initialState(rows: seq.obs[0].count)
  var out: Outputs = ["logits": [], "value": []]
  for t in 0..<seq.obs.count {
    for r in 0..<state.rows where seq.reset[t][r] == 1 { state.reset(row: r) }
    let step = policy.step(
      observations: seq.obs[t].flatMap { $0 }, state: &state, prevActions: seq.prevAction[t],
      prevActionValues: seq.prevActionValues.isEmpty ? [] : seq.prevActionValues[t], prevRewards: seq.prevReward[t])
    out["logits"]!.append(step.logits)
    out["value"]!.append(step.values)
    if trained.network.core != nil { out["h", default: []].append(state.h) }
    if trained.network.core is LSTM { out["c", default: []].append(state.c) }
  }
  return out
}

/// The largest |a - b| / max(1, |b|) over every output, and the key and step where it is.
func worstDifference(_ a: Outputs, _ b: Outputs) -> (Float, String) {
  var worst: Float = 0
  var at = "nothing compared"
  for (key, steps) in b {
    guard let mine = a[key], mine.count == steps.count else { return (.infinity, "\(key) missing or of another length") }
    for (t, (x, y)) in zip(mine, steps).enumerated() {
      guard x.count == y.count else { return (.infinity, "\(key) step \(t) has \(x.count) values, not \(y.count)") }
      for (u, v) in zip(x, y) {
        let d = abs(u - v) / max(1, abs(v))
        if !(d <= worst) {
          worst = d
          at = "\(key) step \(t)"
        }
      }
    }
  }
  return (worst, at)
}

@Suite struct ExportTests {
  @Test(arguments: variants)
  func theExportOfAFixtureCheckpointIsTheOnePyTorchRead(variant: String) throws {
    let policy = try TrainedPolicy.load(fixture(variant))
    let bytes = PolicyExport(policy).safetensors()
    let committed = try [UInt8](Data(contentsOf: URL(fileURLWithPath: fixture(variant) + "/policy.safetensors")))
    let same = bytes == committed  // (not inside #expect: it would print every byte)
    #expect(same, "a fresh export (\(bytes.count) bytes) differs from the one torch.json was computed from (\(committed.count))")
    // PyTorch's names and shapes.
    let (tensors, metadata) = try Safetensors.decode(bytes, source: variant)
    #expect(metadata == ["format": "pt"])
    let shapes = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0.shape) })
    let net = policy.network
    #expect(
      shapes["encoder.0.weight"]
        == [net.encoder.layers[0].outFeatures, net.convolution?.output.count ?? net.observationSize])
    if let conv = net.convolution, case .conv(let first) = conv.layers[0] {
      // PyTorch's [out, in, kH, kW]; Herd holds [out, kH, kW, in].
      #expect(shapes["conv.0.weight"] == [first.output.channels, first.input.channels, 3, 3])
      #expect(shapes["conv.3.conv1.weight"] != nil, "a residual block's names")
      let herd = PolicyExport(policy).values(first.weight)
      let torch = try #require(tensors.first { $0.name == "conv.0.weight" }).values
      let c = first.input.channels
      // out 1, in 0, ky 2, kx 1
      #expect(torch[((1 * c + 0) * 3 + 2) * 3 + 1] == herd[((1 * 3 + 2) * 3 + 1) * c + 0])
    }
    #expect(shapes["pi.weight"] == [net.headOutputs, net.headInputSize] && shapes["vf.bias"] == [1])
    for (i, layer) in net.post.layers.enumerated() {
      #expect(shapes["post.\(i).weight"] == [layer.outFeatures, layer.inFeatures], "post.\(i)")
    }
    #expect((shapes["pi.log_std"] != nil) == (net.logStd != nil))
    if let core = net.core {
      let gates = core.stateCount == 2 ? 4 : 3
      #expect(shapes["core.weight_ih_l0"] == [gates * core.hiddenSize, net.coreInputSize])
      #expect(shapes["core.weight_hh_l0"] == [gates * core.hiddenSize, core.hiddenSize])
      #expect(shapes["core.bias_hh_l0"] == [gates * core.hiddenSize])
    }
    #expect((shapes["obs_filter.mean"] != nil) == (net.filterMean != nil))
    #expect(tensors.count == net.layout.entries.count)
  }

  @Test(arguments: variants)
  func herdStepsGivePyTorchsNumbers(variant: String) throws {
    let policy = try TrainedPolicy.load(fixture(variant))
    let seq = try Sequence(json: fixture(variant) + "/inputs.json")
    #expect(seq.reset.dropFirst().contains { $0.contains(1) }, "the inputs cross an episode boundary after the start")
    let torch = try readOutputs(fixture(variant) + "/torch.json")
    let herd = try herdSteps(policy, seq)
    #expect(Set(torch.keys) == Set(herd.keys))
    let (worst, at) = worstDifference(herd, torch)
    #expect(worst <= 1e-5, "Herd and PyTorch differ by \(worst) (relative above 1) at \(at)")
  }

  @Test(arguments: variants)
  func onnxRuntimeGivesHerdsNumbers(variant: String) throws {
    guard let python = envHostPython,
      (try? run(python, ["-c", "import onnxruntime, herd_policy"]).status) == 0
    else {
      if requireTools { Issue.record("onnxruntime and herd_policy are needed: make venv installs them") }
      return
    }
    let policy = try TrainedPolicy.load(fixture(variant))
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("herd-onnx-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try PolicyExport(policy).write(to: dir)
    let r = try run(
      python,
      [
        "-m", "herd_policy.check", "--export", dir, "--inputs", fixture(variant) + "/inputs.json", "--backend", "onnx",
        "--output", dir + "/onnx.json",
      ])
    #expect(r.status == 0, "\(r.stderr)")
    let onnx = try readOutputs(dir + "/onnx.json")
    let herd = try herdSteps(policy, try Sequence(json: fixture(variant) + "/inputs.json"))
    #expect(Set(onnx.keys) == Set(herd.keys))
    let (worst, at) = worstDifference(onnx, herd)
    #expect(worst <= 1e-5, "onnxruntime and Herd differ by \(worst) at \(at)")
  }

  @Test func theSidecarDescribesTheModel() throws {
    let policy = try TrainedPolicy.load(fixture("gru"))
    let meta = try PolicyExport(policy).sidecar()
    #expect(meta["format"] as? String == "herd-policy" && meta["herd_version"] as? String == HerdVersion.string)
    #expect(meta["prev_action"] as? Bool == true && meta["prev_reward"] as? Bool == true)
    let action = try #require(meta["action"] as? [String: Any])
    #expect(action["heads"] as? [Int] == [3, 2] && action["strides"] as? [Int] == [1, 3])
    let core = try #require(meta["core"] as? [String: Any])
    #expect(core["type"] as? String == "gru" && core["hidden_size"] as? Int == 12 && core["state"] as? [String] == ["h"])
    let filter = try #require(meta["obs_filter"] as? [String: Any])
    let scale = try #require(filter["scale"] as? [Double])
    let std = try #require(filter["std"] as? [Double])
    #expect(scale.count == policy.network.observationSize)
    // scale = 1 / (std + 1e-8)
    for (s, d) in zip(scale, std) { #expect(abs(s * (d + 1e-8) - 1) < 1e-5) }
    // The run's wrappers, as the config writes them, so a user can make the
    // environment the policy was trained on.
    #expect((meta["source"] as? [String: Any])?["env_wrappers"] as? [Any] != nil)
    var wrapped = policy
    wrapped.config.env_wrappers = [EnvWrapper("a.b:C"), EnvWrapper("d:E", kwargs: ["n": .number(3)])]
    let source = try #require(try PolicyExport(wrapped).sidecar()["source"] as? [String: Any])
    let wrappers = try #require(source["env_wrappers"] as? [Any])
    #expect(wrappers.first as? String == "a.b:C" && (wrappers.last as? [String: [String: Int]]) == ["d:E": ["n": 3]], "\(wrappers)")
    let onnx = try #require(meta["onnx"] as? [String: Any])
    #expect(onnx["inputs"] as? [String] == ["obs", "prev_action", "prev_reward", "h"])
    #expect(onnx["outputs"] as? [String] == ["logits", "value", "h_out"])
    let ffPolicy = try TrainedPolicy.load(fixture("ff"))
    let ff = try PolicyExport(ffPolicy).sidecar()
    #expect(ff["obs_filter"] is NSNull && (ff["core"] as? [String: Any])?["type"] as? String == "none")
    // The one-line summary names the value's own tower when there is one.
    #expect(!PolicyExport(policy).summary.contains("value's own"))
    let own = PolicyExport(try TrainedPolicy.load(fixture("own_value"))).summary
    #expect(own.contains("the value's own encoder and lstm(8)"), "\(own)")
    // Post layers: in the summary, and in the sidecar with the heads reading them.
    let post = PolicyExport(try TrainedPolicy.load(fixture("post")))
    #expect(post.summary.contains("lstm(8), post 12-6 relu, 2 logits"), "\(post.summary)")
    let postMeta = try post.sidecar()
    let layers = try #require((postMeta["post"] as? [String: Any])?["layers"] as? [[String: Any]])
    #expect(layers.map { $0["name"] as? String } == ["post.0", "post.1"])
    #expect(((postMeta["heads"] as? [String: Any])?["pi"] as? [String: Any])?["in_features"] as? Int == 6)
    let plain = try #require((try PolicyExport(policy).sidecar()["post"] as? [String: Any])?["layers"] as? [[String: Any]])
    #expect(plain.isEmpty)
  }

  /// A Box action space without bounds exports: JSON has no infinity, so the
  /// sidecar writes each unbounded side as "inf" or "-inf" (as env_spec.json does).
  @Test func anUnboundedBoxActionSpaceExports() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("herd-unbounded-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try FileManager.default.copyItem(atPath: fixture("gaussian") + "/checkpoint.herd", toPath: dir + "/checkpoint.herd")
    let spec = try String(contentsOfFile: fixture("gaussian") + "/env_spec.json", encoding: .utf8)
    let unbounded = spec.replacingOccurrences(of: #""high":[2],"low":[-2]"#, with: #""high":["inf"],"low":["-inf"]"#)
    #expect(unbounded != spec)
    try unbounded.write(toFile: dir + "/env_spec.json", atomically: true, encoding: .utf8)
    let policy = try TrainedPolicy.load(dir)
    #expect(policy.network.actionHigh == [.infinity] && policy.network.actionLow == [-.infinity])
    try PolicyExport(policy).write(to: dir + "/export")
    let meta = try #require(
      try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/export/policy.json")))
        as? [String: Any])
    let action = try #require(meta["action"] as? [String: Any])
    #expect(action["low"] as? [String] == ["-inf"] && action["high"] as? [String] == ["inf"], "\(action)")
  }

  @Test func greedyActionsPackEveryHeadsMostLikelyComponent() throws {
    let policy = try Policy(TrainedPolicy.load(fixture("gru")))  // heads [3, 2], strides [1, 3]
    let logits: [Float] = [0.1, 0.9, 0.2, 1.0, -1, /* row 2 */ 0, 0, 5, -1, 2]
    #expect(policy.greedy(logits) == [1, 5])
  }

  @Test func safetensorsRoundTripsAndRefusesDamage() throws {
    let tensors = [
      Safetensors.Tensor(name: "a.weight", shape: [2, 3], values: [1, -2, 3.5, .pi, 0, -0]),
      Safetensors.Tensor(name: "b", shape: [1], values: [42]),
    ]
    let bytes = Safetensors.encode(tensors, metadata: ["format": "pt"])
    let headerLength = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    #expect(headerLength % 8 == 0, "the data starts 8-byte aligned")
    let (back, meta) = try Safetensors.decode(bytes, source: "t")
    #expect(back == tensors && meta == ["format": "pt"])
    #expect(throws: ExportError.self) { try Safetensors.decode(Array(bytes.prefix(5)), source: "t") }
    #expect(throws: ExportError.self) { try Safetensors.decode(Array(bytes.dropLast(4)), source: "t") }
    var bad = bytes
    bad[0] = 0xFF
    do {
      _ = try Safetensors.decode(bad, source: "short.safetensors")
      Issue.record("a header length past the end was accepted")
    } catch {
      #expect("\(error)".contains("short.safetensors") && "\(error)".contains("runs past the end"))
    }
  }

  @Test func badCheckpointsAreClearErrors() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("herd-export-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    func failure(_ path: String) -> String {
      do {
        _ = try TrainedPolicy.load(path)
        return "loaded"
      } catch { return "\(error)" }
    }
    // A run that has not checkpointed yet.
    try "{}".write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
    #expect(failure(dir) == "\(dir) has no checkpoint.herd (has the run written its first checkpoint?)")
    // ... but has its best policy: the message names that file.
    try FileManager.default.copyItem(atPath: fixture("lstm") + "/checkpoint.herd", toPath: dir + "/best.herd")
    #expect(failure(dir).hasSuffix("; its best policy so far is there: give \(dir)/best.herd"), "\(failure(dir))")
    try FileManager.default.removeItem(atPath: dir + "/best.herd")
    // A corrupt checkpoint.
    var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: fixture("lstm") + "/checkpoint.herd")))
    bytes[bytes.count / 2] ^= 0x5A
    try Data(bytes).write(to: URL(fileURLWithPath: dir + "/checkpoint.herd"))
    #expect(failure(dir).contains("checksum"), "\(failure(dir))")
    // A checkpoint of another model shape: the LSTM's weights beside CartPole's spec (4 observations, not 2).
    try FileManager.default.removeItem(atPath: dir + "/checkpoint.herd")
    try FileManager.default.copyItem(atPath: fixture("lstm") + "/checkpoint.herd", toPath: dir + "/checkpoint.herd")
    try FileManager.default.copyItem(atPath: fixture("ff") + "/env_spec.json", toPath: dir + "/env_spec.json")
    let shape = failure(dir)
    #expect(shape.contains("does not fit") && shape.contains("obs_filter.mean") && shape.contains("[2]") && shape.contains("[4]"), "\(shape)")
  }
}

/// Runs `executable args` to completion.
func run(_ executable: String, _ args: [String]) throws -> (status: Int32, stderr: String) {
  let p = Process()
  p.executableURL = URL(fileURLWithPath: executable)
  p.arguments = args
  var env = ProcessInfo.processInfo.environment
  env["PYTHONPATH"] = fixturesDirectory().replacingOccurrences(of: "/Tests/Fixtures", with: "/python")
  p.environment = env
  let err = Pipe()
  p.standardError = err
  p.standardOutput = FileHandle.nullDevice
  try p.run()
  let data = err.fileHandleForReading.readDataToEndOfFile()
  p.waitUntilExit()
  return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}
