import Foundation
import HerdEnvs
import HerdNN

/// A bad configuration: names the key, the value and what would be valid.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
  /// The message.
  public let description: String
  public init(_ description: String) { self.description = description }
}

extension TrainingConfig {
  /// The built-in environments, by name.
  public static var environmentNames: [String] { Environments.ids }

  /// The prefix of a Gymnasium environment's name (`gym:CartPole-v1`).
  public static let gymPrefix = "gym:"

  /// The prefix of a PettingZoo environment's name (`pz:classic/tictactoe-v3`).
  public static var pettingZooPrefix: String { HostedEnvironments.pettingZooPrefix }

  /// The info mean of the return against past policies (``OpponentPool``).
  public static let pastReturnKey = "return_vs_past"

  /// Workers end each episode record's info with its return against a past
  /// policy (``pastReturnKey``): a PettingZoo run that keeps a pool.
  public var reportsPastReturn: Bool { self_play_pool_size > 0 && env.hasPrefix(Self.pettingZooPrefix) }

  /// The info keys episode records carry, in order: `episode_info_keys`, then
  /// ``pastReturnKey`` when ``reportsPastReturn``.
  public var reportedInfoKeys: [String] { episode_info_keys + (reportsPastReturn ? [Self.pastReturnKey] : []) }

  /// What `env` may be, in words (for errors and help).
  public static var environmentChoices: String {
    environmentNames.joined(separator: ", ")
      + ", gym:ID for a Gymnasium environment (gym:CartPole-v1, gym:my_package.envs:MyEnv-v0), or pz:ID for a PettingZoo one (pz:classic/tictactoe-v3, pz:my_package.envs:make_env)"
  }

  /// The env host's id when `env` names an environment stepped in one: a
  /// Gymnasium id (`gym:ID` gives `ID`) or a PettingZoo one (`pz:ID`, given whole:
  /// the host reads the prefix); nil for a built-in environment.
  public var gymID: String? {
    if env.hasPrefix(Self.pettingZooPrefix) { return env }
    return env.hasPrefix(Self.gymPrefix) ? String(env.dropFirst(Self.gymPrefix.count)) : nil
  }

  /// Training defaults for a Gymnasium environment Herd has never seen (see the
  /// README, "Bring your own environment"): Adam at 1e-3, observations normalised
  /// by a running mean and std (a new environment's scales are unknown), and the
  /// previous action and reward as core inputs (`herd train` turns the previous
  /// action off for a Box action space, which cannot take it yet).
  public static let gymTrainingDefaults =
    #"{"optimizer": "adam", "lr": 0.001, "observation_filter": "MeanStdFilter", "lstm_use_prev_action": true, "lstm_use_prev_reward": true}"#

  /// The most `episode_info_keys` a run records.
  public static let maxInfoKeys = 16

  /// Every top-level key, in declaration order (for messages and `--set`).
  public static var keys: [String] {
    Mirror(reflecting: TrainingConfig()).children.compactMap(\.label)
  }

  /// The defaults shipped for `env` (tuned; see configs/ and the README), or the
  /// library defaults for an unknown name (``validate()`` then rejects it).
  public static func defaults(for env: String) -> TrainingConfig {
    var c = TrainingConfig()
    c.env = env
    // The built-in environments' tuned keys live in their registrations (see their
    // files); a Gymnasium environment gets ``gymTrainingDefaults``.
    let tuned: String
    if let r = Environments.named(env) {
      tuned = r.trainingDefaults
      c.env_config = EnvConfig(r.options.mapValues { .number(Double($0)) })
    } else if env.hasPrefix(gymPrefix) || env.hasPrefix(pettingZooPrefix) {
      tuned = gymTrainingDefaults
    } else {
      return c
    }
    guard let data = tuned.data(using: .utf8), let tuned = try? decode(json: data, over: c, source: env) else {
      preconditionFailure("the training defaults of \(env) do not parse")
    }
    return tuned
  }

  /// What JSONSerialization found wrong in `json`, with the line and column (its
  /// own message is "The data is not in the correct format", the offset only in
  /// the error's debug description, "Invalid value around character 12.").
  static func whereJSONFails(_ json: Data, _ error: Error) -> String {
    let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? error.localizedDescription
    if detail.hasPrefix("Unexpected end of file") { return "it ends before the value is complete" }
    guard let marker = detail.range(of: "around character "),
      let offset = Int(detail[marker.upperBound...].prefix { $0.isNumber }), offset <= json.count
    else { return detail }
    let before = [UInt8](json).prefix(offset)
    let line = before.reduce(1) { $1 == 10 ? $0 + 1 : $0 }
    let column = offset - (before.lastIndex(of: 10).map { $0 + 1 } ?? 0) + 1
    return "unexpected text at line \(line), column \(column)"
  }

  /// Decodes a JSON object over `base`: keys present replace the base's values,
  /// unknown keys are errors naming every one and listing the valid keys.
  public static func decode(json: Data, over base: TrainingConfig, source: String) throws -> TrainingConfig {
    let object: Any
    do {
      object = try JSONSerialization.jsonObject(with: json)
    } catch {
      throw ConfigError("\(source): not valid JSON: \(Self.whereJSONFails(json, error))")
    }
    guard let dict = object as? [String: Any] else { throw ConfigError("\(source): must be a JSON object") }
    return try base.merging(dict, source: source)
  }

  /// Reads a config file (JSON) over the defaults for the env it names (or `env`).
  public static func load(path: String, env: String?) throws -> TrainingConfig {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw ConfigError("config file \(path) cannot be read")
    }
    var envName = env
    if envName == nil, let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
      envName = obj["env"] as? String
    }
    return try decode(json: data, over: defaults(for: envName ?? TrainingConfig().env), source: path)
  }

  /// Applies `KEY=VALUE` overrides (`--set`); dotted keys reach into `env_config`.
  /// VALUE is JSON when it parses as JSON (`3`, `false`, `[64, 64]`), else a string.
  public func applying(overrides: [String]) throws -> TrainingConfig {
    var config = self
    for item in overrides {
      guard let eq = item.firstIndex(of: "=") else {
        throw ConfigError("--set \(item): expected KEY=VALUE, e.g. --set lstm_cell_size=128")
      }
      let key = String(item[..<eq]).trimmingCharacters(in: .whitespaces)
      let raw = String(item[item.index(after: eq)...])
      let value: Any
      do {
        value = try JSONSerialization.jsonObject(with: Data(raw.utf8), options: [.fragmentsAllowed])
      } catch {
        // A list or an object that does not parse is a typo, not a string.
        let start = raw.drop { $0 == " " }.first
        if start == "[" || start == "{" {
          throw ConfigError("--set \(item): the value is not valid JSON: \(Self.whereJSONFails(Data(raw.utf8), error))")
        }
        value = raw
      }
      let parts = key.split(separator: ".").map(String.init)
      var dict: [String: Any]
      if parts.count == 1 {
        dict = [key: value]
      } else if parts.count == 2 {
        dict = [parts[0]: [parts[1]: value]]
      } else {
        throw ConfigError("--set \(item): keys have at most one dot (env_config.length, evaluation_env_config.length)")
      }
      config = try config.merging(dict, source: "--set \(item)")
    }
    return config
  }

  /// This config with the keys of `dict` replaced, validated by type and name.
  func merging(_ dict: [String: Any], source: String) throws -> TrainingConfig {
    let known = Set(Self.keys)
    // Every unknown key at once (a file from another framework has several),
    // each with another framework's name turned into Herd's, else a likely
    // misspelling's correction.
    let unknown = dict.keys.filter { !known.contains($0) }.sorted().map { key in
      "'\(key)'" + (Self.otherName(key).map { " (\($0.hint))" } ?? Spelling.hint(for: key, among: Self.keys))
    }
    if !unknown.isEmpty {
      throw ConfigError(
        "\(source): unknown key\(unknown.count == 1 ? "" : "s") \(unknown.joined(separator: ", ")); valid keys: \(Self.keys.joined(separator: ", "))"
      )
    }
    for (key, valid) in Self.choiceKeys {
      guard let value = dict[key] else { continue }
      guard let name = value as? String, valid.names.contains(name) else {
        let hint = (value as? String).map { Spelling.hint(for: $0, among: valid.names) } ?? ""
        throw ConfigError("\(source): \(key) = '\(value)' is invalid\(hint): use \(valid.text)")
      }
    }
    var current = try JSONSerialization.jsonObject(with: JSONEncoder().encode(self)) as? [String: Any] ?? [:]
    for (key, value) in dict {
      if key == "evaluation_env_config" {
        guard let sub = value as? [String: Any] else {
          throw ConfigError("\(source): evaluation_env_config must be an object, e.g. {\"length\": 30}")
        }
        var merged = current[key] as? [String: Any] ?? [:]
        for (k, v) in sub { merged[k] = v }
        current[key] = merged
      } else if key == "env_config" {
        guard let sub = value as? [String: Any] else {
          throw ConfigError("\(source): env_config must be an object, e.g. {\"length\": 30}")
        }
        // A built-in environment has its own keys; a Gymnasium one takes any.
        let envName = dict["env"] as? String ?? env
        var merged = current["env_config"] as? [String: Any] ?? [:]
        let builtIn = Environments.named(envName)
        for (k, v) in sub {
          if let builtIn, builtIn.options[k] == nil {
            let valid = builtIn.options.keys.sorted().map { "env_config.\($0)" }
            let hint = Spelling.hint(for: "env_config.\(k)", among: valid)
            throw ConfigError(
              "\(source): unknown key 'env_config.\(k)' for \(envName)\(hint); valid: \(valid.isEmpty ? "none" : valid.joined(separator: ", "))"
            )
          }
          merged[k] = v
        }
        current[key] = merged
      } else {
        current[key] = value
      }
    }
    let data = try JSONSerialization.data(withJSONObject: current)
    do {
      return try JSONDecoder().decode(TrainingConfig.self, from: data)
    } catch let DecodingError.typeMismatch(type, context) {
      throw ConfigError(
        "\(source): '\(Self.keyPath(context.codingPath))' must be \(Self.typeName(type, key: context.codingPath.first?.stringValue))")
    } catch let DecodingError.dataCorrupted(context) {
      throw ConfigError(
        "\(source): '\(Self.keyPath(context.codingPath))' has an unusable value (\(context.debugDescription))"
      )
    } catch {
      throw ConfigError("\(source): \(error)")
    }
  }

  /// A decoding error's place as a user writes it: `env_config.length`,
  /// `conv_filters[1][0]`.
  static func keyPath(_ path: [any CodingKey]) -> String {
    path.reduce("") { text, key in
      if let i = key.intValue { return text + "[\(i)]" }
      return text.isEmpty ? key.stringValue : text + "." + key.stringValue
    }
  }

  /// The keys whose values are a ``ConfigChoice``, with their valid names.
  static let choiceKeys: [(String, (names: [String], text: String))] = [
    ("fcnet_activation", choice(Activation.self)), ("post_fcnet_activation", choice(Activation.self)),
    ("rnn_type", choice(RNNType.self)),
    ("optimizer", choice(OptimizerKind.self)), ("observation_filter", choice(ObservationFilterKind.self)),
    ("reward_clipping", choice(RewardClipping.self)), ("conv_encoder", choice(ConvEncoderKind.self)),
    ("conv_activation", choice(Activation.self)), ("clip_anchor", choice(ClipAnchor.self)),
    ("pg_advantage", choice(PGAdvantage.self)),
    ("weight_init", choice(WeightInit.self)),
  ]

  static func choice<C: ConfigChoice>(_: C.Type) -> (names: [String], text: String) {
    (C.allCases.map(\.rawValue), C.choices)
  }

  static func typeName(_ type: Any.Type, key: String? = nil) -> String {
    // A list's element type is not in the error; the one list of strings is named.
    if key == "episode_info_keys" && type is [Any].Type { return typeName([String].self) }
    switch type {
    case is Int.Type, is UInt64.Type: return "an integer"
    case is Float.Type, is Double.Type: return "a number"
    case is Bool.Type: return "true or false"
    case is String.Type: return "a string"
    case is [Int].Type: return "a list of integers, e.g. [64, 64]"
    case is [String].Type: return "a list of strings, e.g. [\"is_success\"]"
    case is [[Int]].Type: return "a list of lists of integers, e.g. [[16, 8, 4], [32, 4, 2]]"
    case is [Any].Type: return "a list, e.g. [64, 64]"
    case is [String: Any].Type: return "an object, e.g. {\"length\": 30}"
    default: return "\(type)"
    }
  }

  /// Checks every value; the error names the key, the value and what is valid.
  public func validate() throws {
    func fail(_ key: String, _ value: Any, _ valid: String) -> ConfigError {
      ConfigError("\(key) = \(value) is invalid: \(valid)")
    }
    if env.hasPrefix(Self.pettingZooPrefix) {
      let module = env.dropFirst(Self.pettingZooPrefix.count)
      guard !module.isEmpty, !module.contains(where: \.isWhitespace) else {
        throw fail("env", "'\(env)'", "pz: needs a PettingZoo id without spaces, e.g. pz:classic/tictactoe-v3")
      }
    } else if let id = gymID {
      guard !id.isEmpty, !id.contains(where: \.isWhitespace) else {
        throw fail("env", "'\(env)'", "gym: needs a Gymnasium id without spaces, e.g. gym:CartPole-v1")
      }
    } else if let builtIn = Environments.named(env) {
      for key in builtIn.options.keys.sorted() {
        guard let value = env_config[key] else { continue }  // absent: the registration's default
        guard let v = value.intValue, v >= 1 else {
          throw fail("env_config.\(key)", value.description, "must be an integer of at least 1")
        }
      }
      let valid = builtIn.options.keys.sorted().map { "evaluation_env_config.\($0)" }
      for key in evaluation_env_config.values.keys.sorted() {
        guard builtIn.options[key] != nil else {
          let hint = Spelling.hint(for: "evaluation_env_config.\(key)", among: valid)
          throw ConfigError(
            "unknown key 'evaluation_env_config.\(key)' for \(env)\(hint); valid: \(valid.isEmpty ? "none" : valid.joined(separator: ", "))"
          )
        }
        guard let v = evaluation_env_config[key]?.intValue, v >= 1 else {
          throw fail(
            "evaluation_env_config.\(key)", evaluation_env_config[key]?.description ?? "null",
            "must be an integer of at least 1")
        }
      }
    } else {
      // A Gymnasium id written without its prefix is the likeliest other mistake.
      // PettingZoo's registry ids name their family (classic/tictactoe-v3), its
      // older modules end in _vN (pettingzoo.classic.tictactoe_v3).
      let pettingZoo =
        env.wholeMatch(of: /(classic|butterfly|sisl|mpe|magent|atari)\/[\w.]+-v\d+/) != nil
        || env.wholeMatch(of: /\w+(\.\w+)*_v\d+/) != nil
      let guess =
        Spelling.suggestion(for: env, among: Self.environmentNames)
        ?? (pettingZoo ? "pz:\(env)" : nil)
        ?? (env.wholeMatch(of: /[\w.:\/]+-v\d+/) != nil ? "gym:\(env)" : nil)
      let hint = guess.map { " (did you mean '\($0)'?)" } ?? ""
      throw ConfigError("env = '\(env)' is invalid\(hint): use \(Self.environmentChoices)")
    }
    if !episode_info_keys.isEmpty {
      let list = "[" + episode_info_keys.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
      guard gymID != nil else {
        throw fail(
          "episode_info_keys", list,
          "is for gym:ID environments (keys of their step's info dict); built-in environments have no info")
      }
      if episode_info_keys.contains("") {
        throw fail("episode_info_keys", list, "a key must not be empty")
      }
      if Set(episode_info_keys).count != episode_info_keys.count {
        throw fail("episode_info_keys", list, "each key at most once")
      }
      if episode_info_keys.count > Self.maxInfoKeys {
        throw fail("episode_info_keys", list, "at most \(Self.maxInfoKeys) keys")
      }
    }
    if !env_wrappers.isEmpty {
      let list = "[" + env_wrappers.map(\.description).joined(separator: ", ") + "]"
      guard gymID != nil else {
        throw fail(
          "env_wrappers", list,
          "is for gym:ID environments (Gymnasium wrappers); built-in environments take env_config keys only")
      }
      for (i, w) in env_wrappers.enumerated() {
        if let problem = w.pathProblem { throw fail("env_wrappers[\(i)]", "\"\(w.path)\"", problem) }
      }
    }
    if self_play_pool_size < 0 {
      throw fail("self_play_pool_size", self_play_pool_size, "must be 0 (always against itself) or positive")
    }
    if self_play_pool_size > 0 && !env.hasPrefix(Self.pettingZooPrefix) {
      throw fail(
        "self_play_pool_size", self_play_pool_size,
        "is for games of several agents (pz:ID environments); \(env) has one agent per environment: leave it 0")
    }
    if self_play_snapshot_interval < 1 {
      throw fail(
        "self_play_snapshot_interval", self_play_snapshot_interval, "must be at least 1 (policy versions between snapshots)")
    }
    if !(0...1).contains(self_play_past_fraction) {
      throw fail("self_play_past_fraction", self_play_past_fraction, "must be in [0, 1] (the share of games a past policy plays in)")
    }
    if reportsPastReturn && episode_info_keys.contains(Self.pastReturnKey) {
      throw fail(
        "episode_info_keys", "[\"\(Self.pastReturnKey)\"]",
        "\(Self.pastReturnKey) is Herd's own with self_play_pool_size (the return against past policies); rename the environment's")
    }
    for (k, v) in [
      ("num_envs_per_worker", num_envs_per_worker), ("num_workers", num_workers), ("lstm_cell_size", lstm_cell_size),
      ("max_seq_len", max_seq_len), ("train_batch_size", train_batch_size), ("max_policy_lag", max_policy_lag),
      ("broadcast_interval", broadcast_interval), ("learner_queue_size", learner_queue_size),
      ("learner_threads", learner_threads), ("num_epochs", num_epochs),
    ] where v < 1 {
      throw fail(k, v, "must be at least 1")
    }
    if max_requests_in_flight_per_worker < 0 {
      throw fail(
        "max_requests_in_flight_per_worker", max_requests_in_flight_per_worker, "must be 0 (no limit) or at least 1")
    }
    if sync_sampling && max_requests_in_flight_per_worker == 0 {
      throw fail(
        "max_requests_in_flight_per_worker", max_requests_in_flight_per_worker,
        "must be at least 1 with sync_sampling (1: each batch acted on by the newest policy)")
    }
    if minibatch_size != 0 && (minibatch_size < max_seq_len || minibatch_size > train_batch_size) {
      throw fail(
        "minibatch_size", minibatch_size,
        "must be 0 (the whole batch) or between max_seq_len (\(max_seq_len)) and train_batch_size (\(train_batch_size))")
    }
    if !(clip_param >= 0 && clip_param < 1) {
      throw fail("clip_param", clip_param, "must be in [0, 1) (0: IMPALA's policy gradient; APPO uses 0.4)")
    }
    if !(max_sample_reuse >= 1) || !max_sample_reuse.isFinite {
      throw fail("max_sample_reuse", max_sample_reuse, "must be at least 1 (1: no reuse when idle)")
    }
    if !(replay_proportion >= 0) || !replay_proportion.isFinite {
      throw fail("replay_proportion", replay_proportion, "must be 0 (no replay) or positive, replayed fragments per new one")
    }
    if replay_buffer_num_slots < 0 {
      throw fail("replay_buffer_num_slots", replay_buffer_num_slots, "must be 0 (no buffer) or positive")
    }
    if replay_proportion > 0 && replay_buffer_num_slots == 0 {
      throw fail(
        "replay_buffer_num_slots", replay_buffer_num_slots,
        "must be positive when replay_proportion is \(replay_proportion): the buffer replayed fragments are drawn from (for example \(4 * fragmentsPerBatch), four batches)")
    }
    if checkpoint_milestone_env_steps < 0
      || (checkpoint_milestone_env_steps > 0 && checkpoint_milestone_env_steps < train_batch_size)
    {
      throw fail(
        "checkpoint_milestone_env_steps", checkpoint_milestone_env_steps,
        "must be 0 (no milestones) or at least train_batch_size (\(train_batch_size)): the env steps between kept policies, e.g. 1000000 (the weights change once per batch, and each milestone is a file)")
    }
    if evaluation_interval_env_steps < 0
      || (evaluation_interval_env_steps > 0 && evaluation_interval_env_steps < train_batch_size)
    {
      throw fail(
        "evaluation_interval_env_steps", evaluation_interval_env_steps,
        "must be 0 (no evaluations) or at least train_batch_size (\(train_batch_size)): the env steps between evaluations, e.g. 100000")
    }
    if !evaluation_env_config.values.isEmpty && evaluation_interval_env_steps == 0 {
      throw fail(
        "evaluation_env_config", evaluation_env_config.json,
        "needs evaluation_interval_env_steps (the env steps between evaluations, e.g. 100000): without it nothing is evaluated")
    }
    if evaluation_episodes < 1 {
      throw fail("evaluation_episodes", evaluation_episodes, "must be at least 1: the episodes each evaluation runs")
    }
    for (k, v) in [("lr_decay_env_steps", lr_decay_env_steps), ("entropy_decay_env_steps", entropy_decay_env_steps)]
    where v < 0 {
      throw fail(k, v, "must be 0 (constant) or positive")
    }
    for (k, v, start, decay, steps) in [
      ("lr_final", lr_final, "lr", "lr_decay_env_steps", lr_decay_env_steps),
      ("entropy_coeff_final", entropy_coeff_final, "entropy_coeff", "entropy_decay_env_steps", entropy_decay_env_steps),
    ] where steps == 0 && v != 0 {
      throw fail(
        k, v,
        "needs \(decay) (the env steps over which \(start) decays to it, e.g. 10000000): without it \(start) stays constant")
    }
    if train_batch_size < max_seq_len {
      throw fail(
        "train_batch_size", train_batch_size,
        "must be at least max_seq_len (\(max_seq_len)): a batch is train_batch_size / max_seq_len fragments")
    }
    if let bad = fcnet_hiddens.first(where: { $0 < 1 }) {
      throw fail("fcnet_hiddens", fcnet_hiddens, "sizes must be at least 1 (got \(bad))")
    }
    if let bad = post_fcnet_hiddens.first(where: { $0 < 1 }) {
      throw fail("post_fcnet_hiddens", post_fcnet_hiddens, "sizes must be at least 1 (got \(bad))")
    }
    if let bad = conv_fc_hiddens.first(where: { $0 < 1 }) {
      throw fail("conv_fc_hiddens", conv_fc_hiddens, "sizes must be at least 1 (got \(bad))")
    }
    for (i, f) in conv_filters.enumerated()
    where !(f.count == 3 || f.count == 4) || f.prefix(3).contains(where: { $0 < 1 }) || (f.count == 4 && f[3] < 0) {
      throw fail(
        "conv_filters[\(i)]", f,
        "each filter is [channels, kernel, stride] or [channels, kernel, stride, padding], channels, kernel and stride at least 1, padding at least 0")
    }
    if conv_encoder == .custom && conv_filters.isEmpty {
      throw fail("conv_encoder", "custom", "needs conv_filters, e.g. [[16, 8, 4], [32, 4, 2]]")
    }
    if !conv_filters.isEmpty && ![.auto, .custom].contains(conv_encoder) {
      throw fail(
        "conv_filters", conv_filters, "is used only with conv_encoder custom or auto (conv_encoder is \(conv_encoder.rawValue))")
    }
    for (k, v) in [("lr", lr), ("rmsprop_epsilon", rmsprop_epsilon), ("adam_epsilon", adam_epsilon)]
    where !(v > 0) || !v.isFinite {
      throw fail(k, v, "must be a positive number")
    }
    for (k, v) in [
      ("lr_final", lr_final), ("grad_clip", grad_clip), ("vf_loss_coeff", vf_loss_coeff),
      ("entropy_coeff", entropy_coeff), ("entropy_coeff_final", entropy_coeff_final),
      ("momentum", momentum),
    ] where !(v >= 0) || !v.isFinite {
      throw fail(k, v, "must be 0 or positive")
    }
    for (k, v) in [
      ("gamma", gamma), ("rmsprop_alpha", rmsprop_alpha), ("adam_beta1", adam_beta1), ("adam_beta2", adam_beta2),
      ("vtrace_lambda", vtrace_lambda),
    ]
    where !(v >= 0 && v <= 1) {
      throw fail(k, v, "must be in [0, 1]")
    }
    for (k, v) in [
      ("vtrace_clip_rho_threshold", vtrace_clip_rho_threshold),
      ("vtrace_clip_pg_rho_threshold", vtrace_clip_pg_rho_threshold),
      ("vtrace_clip_c_threshold", vtrace_clip_c_threshold),
    ] where !(v > 0) {
      throw fail(k, v, "must be positive")
    }
    if !(log_std_init >= DiagGaussian.minLogStd && log_std_init <= DiagGaussian.maxLogStd) {
      let clamp = "[\(DiagGaussian.minLogStd), \(DiagGaussian.maxLogStd)]"
      throw fail("log_std_init", log_std_init, "must be in \(clamp), the clamp of a Gaussian's log std (0: std 1)")
    }
    if !(env_step_timeout_seconds > 0) || !env_step_timeout_seconds.isFinite {
      throw fail("env_step_timeout_seconds", env_step_timeout_seconds, "must be a positive number of seconds")
    }
    if !(checkpoint_interval_seconds > 0) {
      throw fail("checkpoint_interval_seconds", checkpoint_interval_seconds, "must be positive")
    }
    if !(progress_interval_seconds > 0) {
      throw fail("progress_interval_seconds", progress_interval_seconds, "must be positive")
    }
  }

  /// The config as pretty JSON with sorted keys (what the run directory records).
  public func prettyJSON() throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(self), as: UTF8.self)
  }
}
