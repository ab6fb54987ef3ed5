extension TrainingConfig {
  /// A setting's name in another RL framework that is not a key here, and what
  /// Herd calls it. Someone bringing a TorchBeast, Sample Factory, Stable
  /// Baselines (or RL Zoo), CleanRL or RLlib config types these; the unknown-key
  /// error then names the right key instead of a bare list, and
  /// docs/configuration.md lists them all.
  public struct OtherName: Sendable {
    /// The other framework's key.
    public var name: String
    /// The frameworks that use it: "TorchBeast", "Stable Baselines".
    public var from: [String]
    /// Herd's key or command-line option for it, in backticks, and any note on
    /// how the two differ.
    public var here: String

    /// "TorchBeast's", "Stable Baselines' and CleanRL's".
    public var whose: String {
      let owned = from.map { $0.hasSuffix("s") ? "\($0)'" : "\($0)'s" }
      return owned.count == 1
        ? owned[0] : owned.dropLast().joined(separator: ", ") + " and " + owned[owned.count - 1]
    }

    /// The hint in an unknown-key error: backticks as the error's quotes.
    public var hint: String {
      "\(whose) \(name); Herd's: \(here.replacingOccurrences(of: "`", with: "'"))"
    }
  }

  /// The names of ``OtherName``, in the order docs/configuration.md lists them.
  public static let otherNames: [OtherName] = [
    OtherName(name: "unroll_length", from: ["TorchBeast"], here: "`max_seq_len`"),
    OtherName(
      name: "rollout_fragment_length", from: ["RLlib"],
      here: "`max_seq_len` (a fragment is T steps of one environment, and BPTT runs over it)"),
    OtherName(name: "rollout", from: ["Sample Factory"], here: "`max_seq_len`"),
    OtherName(
      name: "recurrence", from: ["Sample Factory"], here: "`max_seq_len` (BPTT runs over whole fragments)"),
    OtherName(
      name: "n_steps", from: ["Stable Baselines"], here: "`max_seq_len` (steps of each environment per fragment)"),
    OtherName(
      name: "num_steps", from: ["CleanRL"], here: "`max_seq_len` (steps of each environment per fragment)"),
    OtherName(
      name: "batch_size", from: ["TorchBeast", "Sample Factory"],
      here:
        "`train_batch_size`, in timesteps (TorchBeast's batch_size times `max_seq_len`); Stable Baselines' batch_size is `minibatch_size`"
    ),
    OtherName(
      name: "learning_rate", from: ["TorchBeast", "Sample Factory", "Stable Baselines", "CleanRL"], here: "`lr`"),
    OtherName(name: "discounting", from: ["TorchBeast"], here: "`gamma`"),
    OtherName(
      name: "lr_schedule", from: ["RLlib"],
      here: "`lr`, `lr_final` and `lr_decay_env_steps` (a linear decay from one to the other; RLlib's takes [step, value] points)"),
    OtherName(name: "anneal_lr", from: ["CleanRL"], here: "`lr_decay_env_steps` (with `lr_final` 0, CleanRL's anneal to 0)"),
    OtherName(name: "entropy_cost", from: ["TorchBeast"], here: "`entropy_coeff`"),
    OtherName(
      name: "entropy_coeff_schedule", from: ["RLlib"],
      here:
        "`entropy_coeff`, `entropy_coeff_final` and `entropy_decay_env_steps` (a linear decay from one to the other; RLlib's takes [step, value] points)"
    ),
    OtherName(name: "ent_coef", from: ["Stable Baselines", "CleanRL"], here: "`entropy_coeff`"),
    OtherName(name: "exploration_loss_coeff", from: ["Sample Factory"], here: "`entropy_coeff`"),
    OtherName(name: "baseline_cost", from: ["TorchBeast"], here: "`vf_loss_coeff`"),
    OtherName(name: "vf_coef", from: ["Stable Baselines", "CleanRL"], here: "`vf_loss_coeff`"),
    OtherName(name: "value_loss_coeff", from: ["Sample Factory"], here: "`vf_loss_coeff`"),
    OtherName(name: "grad_norm_clipping", from: ["TorchBeast"], here: "`grad_clip`"),
    OtherName(
      name: "max_grad_norm", from: ["Sample Factory", "Stable Baselines", "CleanRL"], here: "`grad_clip`"),
    OtherName(
      name: "num_actors", from: ["TorchBeast"],
      here: "`num_workers` (`--workers`; each worker process steps `num_envs_per_worker` environments)"),
    OtherName(name: "num_env_runners", from: ["RLlib"], here: "`num_workers` (`--workers`)"),
    OtherName(name: "num_rollout_workers", from: ["RLlib"], here: "`num_workers` (`--workers`)"),
    OtherName(name: "num_envs_per_env_runner", from: ["RLlib"], here: "`num_envs_per_worker`"),
    OtherName(name: "n_envs", from: ["Stable Baselines"], here: "`num_envs_per_worker` (per worker process)"),
    OtherName(name: "num_envs", from: ["CleanRL"], here: "`num_envs_per_worker` (per worker process)"),
    OtherName(name: "num_learner_threads", from: ["TorchBeast"], here: "`learner_threads`"),
    OtherName(name: "alpha", from: ["TorchBeast"], here: "`rmsprop_alpha`"),
    OtherName(
      name: "epsilon", from: ["TorchBeast"], here: "`rmsprop_epsilon` (`adam_epsilon` with `optimizer` adam)"),
    OtherName(name: "rnn_size", from: ["Sample Factory"], here: "`lstm_cell_size` (a GRU's size too)"),
    OtherName(name: "hidden_size", from: ["PyTorch"], here: "`lstm_cell_size` (a GRU's size too)"),
    OtherName(name: "use_rnn", from: ["Sample Factory"], here: "`use_lstm` (`rnn_type` picks lstm or gru)"),
    OtherName(name: "clip_range", from: ["Stable Baselines"], here: "`clip_param`"),
    OtherName(name: "clip_coef", from: ["CleanRL"], here: "`clip_param`"),
    OtherName(
      name: "ppo_clip_ratio", from: ["Sample Factory"],
      here: "`clip_param` (the ratio clipped to [1 - clip_param, 1 + clip_param])"),
    OtherName(
      name: "gae_lambda", from: ["Sample Factory", "Stable Baselines", "CleanRL"],
      here: "`vtrace_lambda` (with `pg_advantage` gae for GAE's advantage)"),
    OtherName(
      name: "lambda", from: ["RLlib"], here: "`vtrace_lambda` (with `pg_advantage` gae for GAE's advantage)"),
    OtherName(name: "n_epochs", from: ["Stable Baselines"], here: "`num_epochs`"),
    OtherName(name: "update_epochs", from: ["CleanRL"], here: "`num_epochs`"),
    OtherName(name: "num_sgd_iter", from: ["RLlib"], here: "`num_epochs`"),
    OtherName(name: "sgd_minibatch_size", from: ["RLlib"], here: "`minibatch_size`"),
    OtherName(name: "norm_adv", from: ["CleanRL"], here: "`normalize_advantages`"),
    OtherName(name: "ortho_init", from: ["Stable Baselines"], here: "`weight_init` orthogonal"),
    OtherName(name: "normalize_input", from: ["Sample Factory"], here: "`observation_filter` MeanStdFilter"),
    OtherName(name: "info_keywords", from: ["Stable Baselines"], here: "`episode_info_keys`"),
    OtherName(name: "env_wrapper", from: ["RL Zoo"], here: "`env_wrappers` (the same entries)"),
    OtherName(name: "wrapper_class", from: ["Stable Baselines"], here: "`env_wrappers` (by import path)"),
    OtherName(
      name: "save_milestones_sec", from: ["Sample Factory"],
      here: "`checkpoint_milestone_env_steps` (in env steps, not seconds)"),
    OtherName(
      name: "eval_freq", from: ["Stable Baselines"],
      here: "`evaluation_interval_env_steps` (in env steps of all environments, not steps of each)"),
    OtherName(
      name: "evaluation_interval", from: ["RLlib"],
      here: "`evaluation_interval_env_steps` (in env steps, not training iterations)"),
    OtherName(name: "n_eval_episodes", from: ["Stable Baselines"], here: "`evaluation_episodes`"),
    OtherName(name: "evaluation_duration", from: ["RLlib"], here: "`evaluation_episodes` (in episodes)"),
    OtherName(
      name: "total_steps", from: ["TorchBeast"], here: "`--stop-steps`, a command-line option, not a key"),
    OtherName(
      name: "total_timesteps", from: ["Stable Baselines", "CleanRL"],
      here: "`--stop-steps`, a command-line option, not a key"),
    OtherName(
      name: "train_for_env_steps", from: ["Sample Factory"],
      here: "`--stop-steps`, a command-line option, not a key"),
    OtherName(
      name: "model", from: ["RLlib"],
      here: "none: its keys (`fcnet_hiddens`, `use_lstm`, `lstm_cell_size`, ...) go at the top level"),
  ]

  /// The other framework's name `key` stands for, if it is one.
  public static func otherName(_ key: String) -> OtherName? {
    otherNames.first { $0.name == key }
  }
}
