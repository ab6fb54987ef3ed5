import Foundation
import HerdEnvs
@testable import HerdRL
import Testing

/// What `body` throws, as text ("no error" when it throws nothing).
private func message(_ body: () throws -> Void) -> String {
  do {
    try body()
    return "no error"
  } catch {
    return "\(error)"
  }
}

@Suite struct TrainingConfigTests {
  @Test func aProgramRegistersItsOwnEnvironment() throws {
    try Environments.register(
      EnvironmentRegistration(
        id: "TestMemoryChain-v9", summary: "a registered copy", options: ["length": 4],
        trainingDefaults: #"{"lr": 0.0042}"#
      ) { MemoryChain(length: $0["length"]!) })
    let config = TrainingConfig.defaults(for: "TestMemoryChain-v9")
    #expect(config.lr == 0.0042 && config.env_config["length"] == .number(4))
    try config.validate()
    #expect(TrainingConfig.environmentNames.contains("TestMemoryChain-v9"))
    let spec = try EnvironmentFactory.spec(config)
    #expect(spec.action == .discrete(2))
    #expect(throws: SpaceError.self) {
      try Environments.register(EnvironmentRegistration(id: "CartPole-v1", summary: "") { _ in CartPole() })
    }
    #expect(throws: SpaceError.self) {
      try Environments.register(EnvironmentRegistration(id: "gym:Mine-v0", summary: "") { _ in CartPole() })
    }
  }

  @Test func everyEnvironmentsDefaultsValidate() throws {
    for env in TrainingConfig.environmentNames { try TrainingConfig.defaults(for: env).validate() }
  }

  /// Batch sizes round down to whole fragments, and the log says so; no preset
  /// or shipped config rounds.
  @Test func aBatchOfPartFragmentsIsSaidToRoundDown() throws {
    for env in TrainingConfig.environmentNames {
      #expect(TrainingConfig.defaults(for: env).roundingNotice == nil, "\(env)")
    }
    let configs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../configs")
    for name in try FileManager.default.contentsOfDirectory(atPath: configs.path) where name.hasSuffix(".json") {
      let c = try TrainingConfig.load(path: configs.appendingPathComponent(name).path, env: nil)
      #expect(c.roundingNotice == nil, "configs/\(name)")
    }
    var c = TrainingConfig()
    c.train_batch_size = 33
    #expect(
      c.roundingNotice
        == "train_batch_size = 33 is not a multiple of max_seq_len = 20: a batch is 1 fragment of up to 20 steps (20 timesteps)")
    c.train_batch_size = 640
    c.minibatch_size = 90
    #expect(
      c.roundingNotice
        == "minibatch_size = 90 is not a multiple of max_seq_len = 20: a minibatch is 4 fragments (80 timesteps)")
  }

  @Test func overridesReachTopLevelAndEnvConfigKeys() throws {
    let c = try TrainingConfig.defaults(for: "MemoryChain-v0").applying(overrides: [
      "use_lstm=false", "env_config.length=30", "lstm_cell_size=128", "fcnet_hiddens=[32, 16]", "optimizer=rmsprop", "lr=0.002",
    ])
    #expect(!c.use_lstm && c.env_config.length == 30 && c.lstm_cell_size == 128 && c.fcnet_hiddens == [32, 16])
    #expect(c.optimizer == .rmsprop && c.lr == 0.002)
  }

  @Test func unknownKeysAndBadValuesAreNamed() throws {
    let base = TrainingConfig()
    #expect(message { _ = try base.applying(overrides: ["lstm_size=3"]) }.contains("unknown key 'lstm_size'"))
    #expect(message { _ = try base.applying(overrides: ["env_config.len=3"]) }.contains("env_config.len"))
    #expect(message { _ = try base.applying(overrides: ["lstm_cell_size=big"]) }.contains("lstm_cell_size"))
    #expect(message { _ = try base.applying(overrides: ["novalue"]) }.contains("KEY=VALUE"))
    for (set, key) in [
      ("max_seq_len=0", "max_seq_len"), ("lstm_cell_size=-4", "lstm_cell_size"), ("env=Pong", "env"),
      ("gamma=1.5", "gamma"), ("optimizer=sgd", "optimizer"), ("fcnet_hiddens=[0]", "fcnet_hiddens"),
      ("post_fcnet_hiddens=[64, -1]", "post_fcnet_hiddens"), ("post_fcnet_activation=gelu", "post_fcnet_activation"), ("weight_init=xavier", "weight_init"),
      ("train_batch_size=5", "train_batch_size"), ("observation_filter=Max", "observation_filter"),
      ("log_std_init=2.5", "log_std_init"), ("log_std_init=-21", "log_std_init"),
    ] {
      let m = message { try base.applying(overrides: [set]).validate() }
      #expect(m.contains(key), "\(set): \(m)")
    }
  }

  /// `episode_info_keys` is a list of distinct, non-empty strings, for gym:ID
  /// environments only (built-in ones have no info dict).
  @Test func episodeInfoKeysAreCheckedAndNamed() throws {
    let gym = TrainingConfig.defaults(for: "gym:CartPole-v1")
    let ok = try gym.applying(overrides: [#"episode_info_keys=["is_success", "score"]"#])
    try ok.validate()
    #expect(ok.episode_info_keys == ["is_success", "score"])
    for (config, set, expected) in [
      (TrainingConfig(), #"episode_info_keys=["x"]"#,
       #"episode_info_keys = ["x"] is invalid: is for gym:ID environments (keys of their step's info dict); built-in environments have no info"#),
      (gym, #"episode_info_keys=["a", "a"]"#, #"episode_info_keys = ["a", "a"] is invalid: each key at most once"#),
      (gym, #"episode_info_keys=[""]"#, #"episode_info_keys = [""] is invalid: a key must not be empty"#),
      (gym, "episode_info_keys=[" + (0...16).map { "\"k\($0)\"" }.joined(separator: ",") + "]", "at most 16 keys"),
      (gym, "episode_info_keys=is_success", #"'episode_info_keys' must be a list of strings, e.g. ["is_success"]"#),
      (gym, "episode_info_keys=[1]", "'episode_info_keys[0]' must be a string"),
    ] {
      let m = message { try config.applying(overrides: [set]).validate() }
      #expect(m.contains(expected), "\(set): \(m)")
    }
  }

  /// The pool of past opponents: PettingZoo runs only; its return is one more info
  /// key after the environment's; bad sizes, intervals and shares are named.
  @Test func selfPlayPoolKeysAreCheckedAndNamed() throws {
    let pz = TrainingConfig.defaults(for: "pz:classic/connect_four-v3")
    #expect(!pz.reportsPastReturn && pz.reportedInfoKeys.isEmpty)
    let ok = try pz.applying(overrides: ["self_play_pool_size=8", #"episode_info_keys=["win"]"#])
    try ok.validate()
    #expect(ok.reportsPastReturn && ok.reportedInfoKeys == ["win", "return_vs_past"])
    for (config, set, expected) in [
      (TrainingConfig(), "self_play_pool_size=4", "self_play_pool_size = 4 is invalid: is for games of several agents (pz:ID environments)"),
      (pz, "self_play_pool_size=-1", "self_play_pool_size = -1 is invalid: must be 0 (always against itself) or positive"),
      (pz, "self_play_snapshot_interval=0", "self_play_snapshot_interval = 0 is invalid: must be at least 1"),
      (pz, "self_play_past_fraction=1.5", "self_play_past_fraction = 1.5 is invalid: must be in [0, 1]"),
      (ok, #"episode_info_keys=["return_vs_past"]"#, "return_vs_past is Herd's own with self_play_pool_size"),
    ] {
      let m = message { try config.applying(overrides: [set]).validate() }
      #expect(m.contains(expected), "\(set): \(m)")
    }
  }

  /// `env_wrappers` entries: a path, or a path with keyword arguments; printed as
  /// written and read back the same; for gym:ID environments only; a path that
  /// cannot name a class, or an entry of another shape, is named.
  @Test func envWrappersAreReadCheckedAndNamed() throws {
    let gym = TrainingConfig.defaults(for: "gym:MiniGrid-MemoryS7-v0")
    let ok = try gym.applying(overrides: [
      #"env_wrappers=["minigrid.wrappers:OneHotPartialObsWrapper", {"minigrid.wrappers.ViewSizeWrapper": {"agent_view_size": 5}}]"#
    ])
    try ok.validate()
    #expect(
      ok.env_wrappers == [
        EnvWrapper("minigrid.wrappers:OneHotPartialObsWrapper"),
        EnvWrapper("minigrid.wrappers.ViewSizeWrapper", kwargs: ["agent_view_size": .number(5)]),
      ])
    #expect(
      EnvWrapper.json(ok.env_wrappers)
        == #"["minigrid.wrappers:OneHotPartialObsWrapper",{"minigrid.wrappers.ViewSizeWrapper":{"agent_view_size":5}}]"#)
    #expect(ok.wrappedText == " wrapped in OneHotPartialObsWrapper, ViewSizeWrapper")
    #expect(gym.wrappedText == "")
    let printed = try ok.prettyJSON()
    #expect(printed.contains(#""minigrid.wrappers:OneHotPartialObsWrapper""#), "\(printed)")
    let again = try TrainingConfig.decode(json: Data(printed.utf8), over: TrainingConfig(), source: "printed")
    #expect(again.env_wrappers == ok.env_wrappers)
    for (config, set, expected) in [
      (TrainingConfig(), #"env_wrappers=["gymnasium.wrappers:TimeLimit"]"#,
       #"env_wrappers = ["gymnasium.wrappers:TimeLimit"] is invalid: is for gym:ID environments (Gymnasium wrappers); built-in environments take env_config keys only"#),
      (gym, #"env_wrappers=["ImgObsWrapper"]"#,
       #"env_wrappers[0] = "ImgObsWrapper" is invalid: names no module: write module:Class, e.g. minigrid.wrappers:ImgObsWrapper"#),
      (gym, #"env_wrappers=["a:B", "minigrid wrappers:X"]"#,
       #"env_wrappers[1] = "minigrid wrappers:X" is invalid: is not module:Class with Python names"#),
      (gym, #"env_wrappers=["a.:B"]"#, "is not module:Class with Python names"),
      (gym, #"env_wrappers=[{"a:B": {}, "c:D": {}}]"#,
       #"'env_wrappers[0]' has an unusable value (each entry is "module:Class" or {"module:Class": {keyword arguments}})"#),
      (gym, #"env_wrappers=[3]"#, "'env_wrappers[0]' has an unusable value"),
    ] {
      let m = message { try config.applying(overrides: [set]).validate() }
      #expect(m.contains(expected), "\(set): \(m)")
    }
  }

  /// A config file that is not JSON says where: the line and column of the first
  /// unexpected text (a doubled comma, a missing one before the next line's key,
  /// single quotes), or that it ends too soon.
  @Test func aBrokenJSONFileSaysWhere() throws {
    for (text, want) in [
      (#"{"lr": 0.1,, }"#, "unexpected text at line 1, column 12"),
      ("{\"lr\": 0.1\n  \"gamma\": 0.9}", "unexpected text at line 2, column 3"),
      ("{'lr': 0.1}", "unexpected text at line 1, column 2"),
      (#"{"lr": "#, "it ends before the value is complete"),
    ] {
      let m = message { _ = try TrainingConfig.decode(json: Data(text.utf8), over: TrainingConfig(), source: "run.json") }
      #expect(m == "run.json: not valid JSON: \(want)", "\(text): \(m)")
    }
    // A --set list or object that does not parse says so, where a plain word stays a string.
    let base = TrainingConfig()
    #expect(
      message { _ = try base.applying(overrides: ["fcnet_hiddens=[1,2"]) }
        == "--set fcnet_hiddens=[1,2: the value is not valid JSON: it ends before the value is complete")
    #expect(
      message { _ = try base.applying(overrides: [#"env_config={"length": }"#]) }
        == #"--set env_config={"length": }: the value is not valid JSON: unexpected text at line 1, column 12"#)
    #expect(message { _ = try base.applying(overrides: ["fcnet_hiddens=wide"]) } == "--set fcnet_hiddens=wide: 'fcnet_hiddens' must be a list, e.g. [64, 64]")
    #expect(try base.applying(overrides: ["rnn_type=gru"]).rnn_type == .gru)
  }

  /// A misspelt key, choice or environment gets the likely one named before the
  /// list of every valid one; a name close to nothing gets no guess.
  @Test func misspellingsGetASuggestion() throws {
    let base = TrainingConfig()
    for (set, hint) in [
      ("entropy_coef=0.1", "unknown key 'entropy_coef' (did you mean 'entropy_coeff'?); valid keys: env, "),
      ("lrr=1", "unknown key 'lrr' (did you mean 'lr'?); valid keys:"),
      ("gmama=0.9", "unknown key 'gmama' (did you mean 'gamma'?); valid keys:"),
      ("rnn_type=lstmm", "rnn_type = 'lstmm' is invalid (did you mean 'lstm'?): use "),
      ("optimizer=Adam", "optimizer = 'Adam' is invalid (did you mean 'adam'?): use "),
    ] {
      #expect(message { _ = try base.applying(overrides: [set]) }.contains("--set \(set): \(hint)"), "\(set)")
    }
    let chain = TrainingConfig.defaults(for: "MemoryChain-v0")
    #expect(
      message { _ = try chain.applying(overrides: ["env_config.lenght=3"]) }
        == "--set env_config.lenght=3: unknown key 'env_config.lenght' for MemoryChain-v0 (did you mean 'env_config.length'?); valid: env_config.length")
    for (env, guess) in [
      ("CartPol", "CartPole-v1"), ("cartpole-v1", "CartPole-v1"), ("MemoryChian-v0", "MemoryChain-v0"),
      ("LunarLander-v3", "gym:LunarLander-v3"), ("ALE/Pong-v5", "gym:ALE/Pong-v5"),
    ] {
      var config = base
      config.env = env
      #expect(
        message { try config.validate() }.hasPrefix("env = '\(env)' is invalid (did you mean '\(guess)'?): use CartPole-v1, "),
        "\(env)")
    }
    // No guess: nothing close, or two candidates equally close.
    for set in ["bogus=1", "adam_beta=0.9"] {
      let m = message { _ = try base.applying(overrides: [set]) }
      #expect(m.hasPrefix("--set \(set): unknown key '\(set.prefix { $0 != "=" })'; valid keys: env, "), "\(m)")
    }
    var far = base
    far.env = "Pong"
    #expect(message { try far.validate() }.hasPrefix("env = 'Pong' is invalid: use CartPole-v1, "))
  }

  /// Another framework's key gets Herd's named, whether it is close in spelling or
  /// not; a file with several unknown keys has them all named at once.
  @Test func otherFrameworksNamesGetHerdsName() throws {
    let base = TrainingConfig()
    for (set, hint) in [
      ("unroll_length=20", "unknown key 'unroll_length' (TorchBeast's unroll_length; Herd's: 'max_seq_len'); valid keys: env, "),
      (
        "max_grad_norm=0.5",
        "unknown key 'max_grad_norm' (Sample Factory's, Stable Baselines' and CleanRL's max_grad_norm; Herd's: 'grad_clip'); valid keys: env, "
      ),
      ("n_epochs=4", "unknown key 'n_epochs' (Stable Baselines' n_epochs; Herd's: 'num_epochs'); valid keys:"),
      ("total_timesteps=1000", "total_timesteps; Herd's: '--stop-steps', a command-line option, not a key); valid keys:"),
    ] {
      let m = message { _ = try base.applying(overrides: [set]) }
      #expect(m.hasPrefix("--set \(set): ") && m.contains(hint), "\(m)")
    }
    let file = #"{"learning_rate": 0.001, "lr": 0.002, "model": {"use_lstm": true}, "bogus": 1, "gmama": 0.9}"#
    let m = message { _ = try TrainingConfig.decode(json: Data(file.utf8), over: base, source: "a.json") }
    #expect(
      m.hasPrefix(
        "a.json: unknown keys 'bogus', 'gmama' (did you mean 'gamma'?), 'learning_rate' (TorchBeast's, Sample Factory's, Stable Baselines' and CleanRL's learning_rate; Herd's: 'lr'), 'model' (RLlib's model; Herd's: none: its keys ('fcnet_hiddens', "
      ), "\(m)")
    #expect(m.contains("valid keys: env, "))
  }

  /// The table itself: no other name is one of Herd's keys or listed twice, and
  /// every key or option it names in backticks exists.
  @Test func otherNamesPointAtRealKeys() {
    let keys = Set(TrainingConfig.keys)
    let names = TrainingConfig.otherNames.map(\.name)
    #expect(Set(names).count == names.count)
    for other in TrainingConfig.otherNames {
      #expect(!keys.contains(other.name), "\(other.name) is a key")
      let quoted = other.here.matches(of: /`([^`]+)`/).map { String($0.1) }
      #expect(!quoted.isEmpty, "\(other.name)")
      for name in quoted {
        #expect(keys.contains(name) || ["--stop-steps", "--workers"].contains(name), "\(other.name): \(name)")
      }
    }
  }

  /// Keys with a fixed set of choices are enums: an unknown name (or a number) is
  /// an error that lists every valid one, never a silent fallback; each valid name
  /// round-trips through config.json.
  @Test func choicesAreEnumsThatNameTheValidValues() throws {
    let base = TrainingConfig()
    for (key, valid) in [
      ("optimizer", ["rmsprop", "adam"]), ("rnn_type", ["lstm", "gru"]), ("fcnet_activation", ["tanh", "relu", "linear"]),
      ("observation_filter", ["NoFilter", "MeanStdFilter"]), ("reward_clipping", ["none", "abs_one"]),
    ] {
      for bad in ["bogus", "3", "Adam"] where !valid.contains(bad) {
        let m = message { _ = try base.applying(overrides: ["\(key)=\(bad)"]) }
        #expect(m.contains(key) && valid.allSatisfy { m.contains($0) }, "\(key)=\(bad): \(m)")
      }
      for name in valid {
        let c = try base.applying(overrides: ["\(key)=\(name)"])
        let json = try c.prettyJSON()
        #expect(json.contains("\"\(key)\" : \"\(name)\""), "\(key)=\(name) in \(json)")
        #expect(try TrainingConfig.decode(json: Data(json.utf8), over: TrainingConfig(), source: "t") == c)
      }
    }
  }

  @Test func configFilesLayOverTheEnvironmentDefaults() throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("herd-config-\(UUID().uuidString).json").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    try Data(#"{"env": "MemoryChain-v0", "env_config": {"length": 30}, "max_seq_len": 40}"#.utf8).write(to: URL(fileURLWithPath: path))
    let c = try TrainingConfig.load(path: path, env: nil)
    #expect(c.env == "MemoryChain-v0" && c.env_config.length == 30 && c.max_seq_len == 40)
    #expect(c.optimizer == TrainingConfig.defaults(for: "MemoryChain-v0").optimizer)
    try Data(#"{"env": "MemoryChain-v0", "bogus": 1}"#.utf8).write(to: URL(fileURLWithPath: path))
    #expect(throws: ConfigError.self) { try TrainingConfig.load(path: path, env: nil) }
    try Data("not json".utf8).write(to: URL(fileURLWithPath: path))
    #expect(throws: ConfigError.self) { try TrainingConfig.load(path: path, env: nil) }
  }

  /// configs/ ships each environment's defaults; they must be what the binary uses,
  /// every key written out (a file that lacks a key still loads, with the key's
  /// default, so comparing loaded configs alone let the files fall behind).
  @Test func shippedConfigFilesMatchTheBuiltInDefaults() throws {
    var url = URL(fileURLWithPath: #filePath)
    while url.lastPathComponent != "Tests" { url.deleteLastPathComponent() }
    let dir = url.deletingLastPathComponent().appendingPathComponent("configs")
    for env in BuiltInEnvironments.ids {
      let path = dir.appendingPathComponent("\(env).json").path
      let fix = "regenerate it with herd train --env \(env) --print-config"
      let loaded = try TrainingConfig.load(path: path, env: nil)
      #expect(loaded == TrainingConfig.defaults(for: env), "\(path) differs from TrainingConfig.defaults(for: \"\(env)\"): \(fix)")
      let text = try String(contentsOfFile: path, encoding: .utf8)
      let expected = try TrainingConfig.defaults(for: env).prettyJSON()
      #expect(text.trimmingCharacters(in: .whitespacesAndNewlines) == expected.trimmingCharacters(in: .whitespacesAndNewlines), "\(path) is not what --print-config prints: \(fix)")
    }
  }

  /// The other files in configs/ are presets laid over the defaults (Atari, dear
  /// environments): each loads and validates, and the Atari ones name their game.
  @Test func shippedPresetsLoadAndValidate() throws {
    var url = URL(fileURLWithPath: #filePath)
    while url.lastPathComponent != "Tests" { url.deleteLastPathComponent() }
    let dir = url.deletingLastPathComponent().appendingPathComponent("configs")
    let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".json") }
    let presets = files.filter { f in !BuiltInEnvironments.ids.contains { "\($0).json" == f } }
    #expect(presets.contains("pong.json") && presets.contains("breakout.json") && presets.contains("sample-efficient.json"))
    for file in presets {
      let config = try TrainingConfig.load(path: dir.appendingPathComponent(file).path, env: nil)
      try config.validate()
      if file == "pong.json" || file == "breakout.json" {
        #expect(config.env == "gym:ALE/\(file == "pong.json" ? "Pong" : "Breakout")-v5" && config.conv_encoder == .impala_shallow)
        #expect(config.use_lstm && config.env_config["frame_stack"]?.intValue == 1, "\(file): single frames, an LSTM")
      }
    }
  }
}
