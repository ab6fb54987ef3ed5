import HerdEnvs
import HerdNN

/// Everything a training run needs, with RLlib's names where RLlib has one
/// (`fcnet_hiddens`, `use_lstm`, `max_seq_len`, `lstm_cell_size`,
/// `lstm_use_prev_action`, `lstm_use_prev_reward`, `train_batch_size`,
/// `vf_loss_coeff`, `entropy_coeff`, `grad_clip`, `vtrace_clip_rho_threshold`...), so
/// a config moves over from RLlib. RLlib nests the model keys under `model`; Herd
/// keeps every key at the top level.
///
/// Files are JSON objects; every field is optional (defaults below, then the
/// per-environment defaults of ``defaults(for:)``), unknown keys are errors, and
/// ``validate()`` names any bad value.
public struct TrainingConfig: Codable, Sendable, Equatable {
  // MARK: Environment
  /// A built-in environment (`CartPole-v1`, `StatelessCartPole-v1`,
  /// `MemoryChain-v0`, `Pendulum-v1`, `StatelessPendulum-v1`, `PixelMemory-v0`, or
  /// one a program registers), a Gymnasium one, `gym:ID` (`gym:CartPole-v1`,
  /// `gym:my_package.envs:MyEnv-v0`), or a PettingZoo one, `pz:ID`
  /// (`pz:classic/connect_four-v3`, `pz:my_package.envs:make_env`), whose agents
  /// take a row each and are all played by the one policy (self-play); the last
  /// two are stepped in Python env host processes.
  public var env = "StatelessCartPole-v1"
  /// Environment options, a JSON object: `length` (MemoryChain's and PixelMemory's
  /// episode length), `max_episode_steps` (CartPole's and Pendulum's time limit);
  /// a Gymnasium environment gets them all as keyword arguments of `gymnasium.make`,
  /// a PettingZoo one as those of its maker, but for Herd's `herd_opponent`:
  /// `"random"` plays every agent but one (picked per game) with random legal moves,
  /// to evaluate a self-play policy (`evaluation_env_config`, `herd eval --env-config`).
  public var env_config = EnvConfig()
  /// Environments per rollout worker, stepped as one batch (K): rows of the batch.
  /// A PettingZoo game takes one per agent, so this must be a multiple of its agents.
  public var num_envs_per_worker = 32
  /// Seconds a Gymnasium environment's step or reset may take in its env host
  /// before the worker takes the host as hung: the host's Python stack goes to the
  /// worker's log, the host is killed and started again, and its episodes under way
  /// end as truncated. A step that takes a sixth of this is logged once as slow.
  /// Raise it for a simulator whose steps or resets are slower (built-in
  /// environments do not use it).
  public var env_step_timeout_seconds: Double = 60
  /// Rollout worker processes `herd train` starts (`--workers` overrides it; threads
  /// with `--in-process`). `herd learner` starts none: workers connect to it.
  public var num_workers = 1
  /// `NoFilter` or `MeanStdFilter` (running normalisation of observations, RLlib's names).
  public var observation_filter = ObservationFilterKind.NoFilter
  /// Keys of a Gymnasium environment's `info` dict to record at each episode's
  /// end (`["is_success"]`), as Stable Baselines' `info_keywords`: the info of the
  /// step that ended the episode, a number or a bool (1 or 0). Each key's mean over
  /// the last 100 episodes that had it is reported beside the return: the progress
  /// line, `progress.jsonl` and TensorBoard (`episode_info/KEY`), `/stats`,
  /// `/metrics`, `summary.json` and `herd eval`. An episode without the key, or
  /// with a value that is not a number, records none (the env host says so once).
  public var episode_info_keys: [String] = []
  /// Gymnasium wrappers around each gym:ID environment, innermost first, as RL
  /// Zoo's `env_wrapper`: `"module:Class"` (or `"module.Class"`), or with keyword
  /// arguments `{"module:Class": {"name": value}}`, e.g.
  /// `["minigrid.wrappers:OneHotPartialObsWrapper", "minigrid.wrappers:ImgObsWrapper"]`.
  /// The env host imports each module and wraps what `gymnasium.make` built
  /// (`Class(env, **kwargs)`); the policy sees the outermost wrapper's spaces.
  public var env_wrappers: [EnvWrapper] = []
  /// The entry of a Dict observation that masks the actions (PettingZoo's and
  /// RLlib's `action_mask`): a Box or MultiBinary of one 0/1 per action (per
  /// logit: a MultiDiscrete's components one after another). Where it is 0 the
  /// policy's logit is replaced by -1e9, so the action is never sampled nor taken
  /// greedily and gets no gradient; the observation filter leaves the entry as it
  /// is. An observation without the entry is not masked. Empty: never mask.
  public var action_mask_key = "action_mask"
  /// Past policies each worker keeps to play against in games of several agents
  /// (`pz:ID`): a snapshot of its weights every `self_play_snapshot_interval`
  /// policy versions, the newest this many. In a share
  /// (`self_play_past_fraction`) of games one of them, drawn at random, plays
  /// every seat but one, and the current policy learns from that seat alone; the
  /// other games it plays against itself. Its return in the games against the
  /// past is reported as `return_vs_past` beside the episode info means. 0: always
  /// against itself. Each kept policy takes about three times the model's size in
  /// the worker. For `pz:ID` runs only; a game of one row (`herd_opponent`) leaves
  /// it unused.
  public var self_play_pool_size = 0
  /// Policy versions (updates) between the snapshots of `self_play_pool_size`.
  public var self_play_snapshot_interval = 50
  /// The share of games (0 to 1) a past policy plays in, with `self_play_pool_size`.
  public var self_play_past_fraction: Double = 0.2

  // MARK: Model
  /// Encoder hidden sizes.
  public var fcnet_hiddens = [64]
  /// Encoder activation: `tanh`, `relu` or `linear`.
  public var fcnet_activation = Activation.tanh
  /// The convolutional encoder for image observations (a Box of rank 2 or 3,
  /// height x width x channels): `auto` (`impala_shallow` for uint8 images of at
  /// least 20 x 20, `custom` when `conv_filters` is set, none otherwise), `none`,
  /// `impala_shallow`, `impala_deep`, `nature` or `custom`. See ``ConvPlan``.
  public var conv_encoder = ConvEncoderKind.auto
  /// A custom stack (RLlib's format): `[[channels, kernel, stride], ...]`, with an
  /// optional fourth entry, the padding (default 0); each layer is followed by
  /// `conv_activation`.
  public var conv_filters: [[Int]] = []
  /// The activation of the convolutional encoder and its fully connected layers.
  public var conv_activation = Activation.relu
  /// Fully connected layers after the flattened feature map; empty: the preset's
  /// (256 for IMPALA's encoders and `custom`, 512 for `nature`).
  public var conv_fc_hiddens: [Int] = []
  /// Fully connected layers after the core, before the heads (RLlib's
  /// `post_fcnet_hiddens`; empty: the heads read the core's output). With
  /// `vf_share_layers = false` the value's tower has its own of the same sizes.
  public var post_fcnet_hiddens: [Int] = []
  /// The activation after each of the `post_fcnet_hiddens` layers: `relu` (RLlib's
  /// default), `tanh` or `linear`.
  public var post_fcnet_activation = Activation.relu
  /// A recurrent core after the encoder (false: feed-forward policy).
  public var use_lstm = true
  /// The recurrent cell when `use_lstm`: `lstm` or `gru`.
  public var rnn_type = RNNType.lstm
  /// Cell size H.
  public var lstm_cell_size = 64
  /// Fragment length T: the most steps a fragment holds and BPTT runs over.
  public var max_seq_len = 20
  /// Feed the previous action to the core: one one-hot per action head, or a
  /// Box action's D floats clipped to the space's bounds (what the environment
  /// took).
  public var lstm_use_prev_action = false
  /// Feed the previous reward to the core.
  public var lstm_use_prev_reward = false
  /// A Box action space's Gaussian: its log standard deviation is one learned
  /// vector shared by every state (true) or an output of the policy head (false).
  /// RLlib's name; Herd's default is true (RLlib's is false), as CleanRL's and
  /// Stable Baselines' continuous PPO.
  public var free_log_std = true
  /// A Box action space's Gaussian: the log standard deviation it starts with, the
  /// learned vector's value (`free_log_std`) or the bias of each log std output of
  /// the head (every state's log std then starts there, up to the head's small
  /// weights). Stable Baselines' name; 0 is std 1. Within the clamp [-20, 2].
  /// configs/halfcheetah.json starts at -2 (std 0.14), which made every HalfCheetah
  /// seed learn but held Hopper and the Pendulums back: try both on a new task.
  public var log_std_init: Float = 0
  /// A Box action space with finite bounds: the environment takes every sample at
  /// or beyond a bound as the bound, so the policy gradient and the importance
  /// ratios use the probability of that whole tail as the sample's probability
  /// (Clipped Action Policy Gradient, Fujita and Maeda 2018). False uses the
  /// Gaussian density of the sample as drawn, which pushes a mean beyond a bound
  /// further out and let policies with the previous action as an input collapse
  /// on the Pendulums.
  public var clipped_action_logp = true
  /// Whether the value head shares the encoder and the core with the policy (true,
  /// IMPALA's one network) or has its own (false: an encoder `vf_encoder.*` and a
  /// core `vf_core.*` of the same sizes, carried in the state beside the policy's),
  /// so the value loss no longer shapes the policy's features. RLlib's name.
  /// Flat observations only.
  public var vf_share_layers = true
  /// How the weights start: `pytorch` (each layer's PyTorch default, uniform within
  /// 1/sqrt(fan-in); the heads within 0.01) or `orthogonal` (Stable Baselines'
  /// `ortho_init` and CleanRL's habit: orthogonal matrices with gain sqrt(2) for
  /// ReLU layers, 5/3 for tanh, 1 for linear ones and the recurrent core, 0.01 for
  /// the policy head, 1 for the value head, every bias 0).
  public var weight_init = WeightInit.pytorch

  // MARK: Learning (IMPALA, Espeholt et al. 2018)
  /// Timesteps per batch B; the learner takes B / T fragments.
  public var train_batch_size = 640
  /// Discount.
  public var gamma: Float = 0.99
  /// Learning rate at the start.
  public var lr: Float = 0.0005
  /// Learning rate reached after `lr_decay_env_steps` (linear decay); IMPALA decays to 0.
  public var lr_final: Float = 0
  /// Env steps over which the rate decays; 0 keeps `lr` constant.
  public var lr_decay_env_steps = 0
  /// `rmsprop` (IMPALA's) or `adam`.
  public var optimizer = OptimizerKind.rmsprop
  /// RMSProp decay (alpha).
  public var rmsprop_alpha: Float = 0.99
  /// RMSProp epsilon (added after the root).
  public var rmsprop_epsilon: Float = 0.01
  /// RMSProp momentum.
  public var momentum: Float = 0
  /// Adam betas and epsilon.
  public var adam_beta1: Float = 0.9
  public var adam_beta2: Float = 0.999
  public var adam_epsilon: Float = 1e-8
  /// Global-norm gradient clip; 0 turns clipping off.
  public var grad_clip: Float = 40
  /// Baseline loss weight.
  public var vf_loss_coeff: Float = 0.5
  /// Entropy bonus weight at the start.
  public var entropy_coeff: Float = 0.01
  /// Entropy bonus weight reached after `entropy_decay_env_steps` (linear decay,
  /// as `lr_final`; RLlib's `entropy_coeff_schedule` from `entropy_coeff` to this).
  public var entropy_coeff_final: Float = 0
  /// Env steps over which the entropy bonus weight decays; 0 keeps `entropy_coeff`
  /// constant.
  public var entropy_decay_env_steps = 0
  /// V-trace rho-bar (value targets).
  public var vtrace_clip_rho_threshold: Float = 1
  /// V-trace rho-bar for the policy-gradient advantages.
  public var vtrace_clip_pg_rho_threshold: Float = 1
  /// V-trace c-bar.
  public var vtrace_clip_c_threshold: Float = 1
  /// V-trace lambda (multiplies c).
  public var vtrace_lambda: Float = 1
  /// The policy-gradient advantage: `vtrace`, IMPALA's `r_t + gamma v_{t+1} - V(x_t)`,
  /// or `gae`, `r_t + gamma (lambda v_{t+1} + (1 - lambda) V(x_{t+1})) - V(x_t)`,
  /// which on-policy is exactly PPO's GAE(lambda) advantage (IMPALA's has one factor
  /// of lambda less on every later step). Both carry the clipped ratio off-policy;
  /// with `vtrace_lambda` = 1 they are the same.
  public var pg_advantage = PGAdvantage.vtrace
  /// `none` or `abs_one` (clip rewards to [-1, 1] for learning).
  public var reward_clipping = RewardClipping.none
  /// Divide the rewards the learner trains on by the running standard deviation of
  /// the discounted return (Stable Baselines' VecNormalize, Gymnasium's
  /// NormalizeReward): one scale for rewards of any size. The statistics are the
  /// learner's, saved in checkpoints; episode returns are reported unscaled.
  public var reward_scaling = false
  /// Fragments older than this many updates are dropped (and counted).
  public var max_policy_lag = 100
  /// Updates between weight broadcasts to the workers.
  public var broadcast_interval = 1
  /// Fragments the learner's queue holds before workers wait (backpressure).
  public var learner_queue_size = 256
  /// Fragment batches a worker process may have on the way to the learner that the
  /// learner has not yet taken into its queue (RLlib's
  /// `max_requests_in_flight_per_env_runner`); 0: no limit beyond the sockets'
  /// buffers. With 1 the data a worker acts on next is at most the queue plus one
  /// batch behind the learner: the low policy lag that many passes per batch need.
  /// In-process workers are bounded by the queue alone.
  public var max_requests_in_flight_per_worker = 0
  /// PPO's on-policy rhythm for worker processes: a batch counts as in flight
  /// (`max_requests_in_flight_per_worker`) until the learner has trained on it, not
  /// only taken it, and the worker then waits for the weights that update made. With
  /// a limit of 1 every batch is acted on by the newest policy, so the first pass
  /// over it is on-policy (policy lag 0), at the cost of the learner and the worker
  /// taking turns. The learner trains a worker's batch whole, as soon as it has
  /// `train_batch_size` steps or nothing more arrives.
  public var sync_sampling = false
  /// Passes over each batch (RLlib APPO's `num_epochs`): every pass is V-trace
  /// corrected against the stored behaviour policy, so reuse stays off-policy
  /// correct. 1 trains on each sample once, as IMPALA does.
  public var num_epochs = 1
  /// PPO's clip on the importance ratio (RLlib APPO's `clip_param`): with > 0 the
  /// policy term is the clipped surrogate on the V-trace targets, which keeps many
  /// updates on the same data (`num_epochs`) from overshooting. 0 (the default) is
  /// IMPALA's policy gradient.
  public var clip_param: Float = 0
  /// What the clipped surrogate's ratio is taken against: `behaviour`, the policy
  /// that acted (APPO's choice without a target network), or `learner`, the
  /// learner's own policy when it first trained on the step, with the lag corrected
  /// by a weight truncated at `vtrace_clip_pg_rho_threshold` (decoupled PPO).
  public var clip_anchor = ClipAnchor.behaviour
  /// Scale the policy-gradient advantages to mean 0 and standard deviation 1 over
  /// each batch (PPO's habit; off by default, as in IMPALA).
  public var normalize_advantages = false
  /// With `num_epochs` > 1: the value targets and advantages of each fragment are
  /// computed by V-trace on the pass that first trains on it and kept for the
  /// passes after (PPO's returns and advantages, fixed per batch), instead of being
  /// recomputed under each pass's weights. The importance ratios of the policy
  /// term are still taken under the current weights on every pass.
  public var freeze_targets = false
  /// Timesteps per update within a pass (whole fragments: a multiple of
  /// `max_seq_len`); 0 is the whole batch, one update per pass.
  public var minibatch_size = 0
  /// The idle learner's reuse: when no new batch is ready, train again on the last
  /// one, until the timesteps trained reach this many times the env steps sampled.
  /// 1 (the default) never reuses; 4 lets a slow environment's samples be used up
  /// to four times in all. Reported as the reuse ratio in the logs and /stats.
  public var max_sample_reuse: Double = 1
  /// Experience replay (RLlib IMPALA's `replay_proportion`): each new batch of
  /// fragments is trained with this many times as many fragments drawn at random from
  /// the replay buffer mixed in (0.5: one replayed fragment for every two new ones;
  /// fractions carry over between batches). Replayed fragments keep their stored
  /// states and behaviour logits, so V-trace weighs them exactly. 0 (the default): no replay.
  public var replay_proportion: Double = 0
  /// Fragments the replay buffer keeps (RLlib's `replay_buffer_num_slots`, here one
  /// fragment per slot): the newest ones trained on, oldest dropped first, and
  /// none older than `max_policy_lag` updates. 0: no buffer.
  public var replay_buffer_num_slots = 0
  /// Threads the learner splits each batch over (data parallel, gradients summed;
  /// each shard uses single-threaded BLAS). 1 on a machine shared with workers.
  public var learner_threads = 1

  // MARK: Run
  /// Seed for weights, environments and sampling.
  public var seed: UInt64 = 0
  /// Seconds between checkpoints (also written at the end and on Ctrl-C).
  public var checkpoint_interval_seconds: Double = 60
  /// Every this many env steps, also keep the policy's weights as
  /// `RUN_DIR/milestones/STEPS.herd` (STEPS: the multiple of this reached; never
  /// replaced), so the policy can be evaluated, exported or compared along the run
  /// (`herd eval --checkpoint RUN_DIR/milestones/1000000.herd`). Weights only, as
  /// `best.herd`. 0 keeps none; otherwise at least `train_batch_size`.
  public var checkpoint_milestone_env_steps = 0
  /// Every this many env steps, evaluate the learner's newest weights on
  /// environments of the learner's own, away from training: `evaluation_episodes`
  /// episodes, each environment starting where `herd eval --seed 1000000` starts
  /// it, so every evaluation (of any run) meets the same episode starts, none of
  /// them a worker's first. The result goes to the log,
  /// `RUN_DIR/evaluations.jsonl`, TensorBoard (`evaluation/...`), `/stats` and
  /// `summary.json`; the best evaluated weights to `RUN_DIR/best_eval.herd`.
  /// Training goes on meanwhile (the evaluation is a thread of its own). A run
  /// that stops on its criteria (not on Ctrl-C) ends with an evaluation of its
  /// final weights (`final_evaluation` in `summary.json`). 0 evaluates never;
  /// otherwise at least `train_batch_size`.
  public var evaluation_interval_env_steps = 0
  /// Episodes per evaluation (at least 1), run in the smaller of this and
  /// `num_envs_per_worker` environments, each a fixed share as `herd eval` does.
  public var evaluation_episodes = 10
  /// Evaluate with each head's most likely action (a Gaussian policy's mean);
  /// false samples from the policy as training does.
  public var evaluation_greedy = true
  /// `env_config` keys the evaluations' environments take instead of the run's
  /// (RLlib's `evaluation_config` for the environment): `{"length": 30}` evaluates
  /// a MemoryChain policy trained at length 10 on chains three times as long. The
  /// observation and action spaces must stay the run's. Empty: the run's own.
  public var evaluation_env_config = EnvConfig()
  /// Seconds between progress lines and `progress.jsonl` records (the status board,
  /// `/stats`, is refreshed every second, or at this interval when shorter).
  public var progress_interval_seconds: Double = 2

  /// Environment options: a JSON object. A built-in environment reads its own keys
  /// (MemoryChain's `length`, CartPole's `max_episode_steps`); a Gymnasium one gets
  /// them all as keyword arguments of `gymnasium.make`, a PettingZoo one as those of
  /// its maker (see `env_config`).
  public struct EnvConfig: Codable, Sendable, Equatable {
    public var values: [String: JSONValue]

    public init(_ values: [String: JSONValue] = [:]) { self.values = values }

    public init(from decoder: any Decoder) throws {
      values = try decoder.singleValueContainer().decode([String: JSONValue].self)
    }

    public func encode(to encoder: any Encoder) throws {
      var c = encoder.singleValueContainer()
      try c.encode(values)
    }

    public subscript(key: String) -> JSONValue? {
      get { values[key] }
      set { values[key] = newValue }
    }

    /// MemoryChain's episode length L (its registration's default when unset).
    public var length: Int {
      get { values["length"]?.intValue ?? MemoryChain.registration.options["length"] ?? 10 }
      set { values["length"] = .number(Double(newValue)) }
    }

    /// CartPole's time limit (its registration's default when unset).
    public var max_episode_steps: Int {
      get { values["max_episode_steps"]?.intValue ?? CartPole.registration.options["max_episode_steps"] ?? 500 }
      set { values["max_episode_steps"] = .number(Double(newValue)) }
    }

    /// The object as compact JSON with sorted keys: what the environment is made
    /// with and what its spec records.
    public var json: String { JSONValue.object(values).description }
  }

  /// The library defaults (not tuned for any environment).
  public init() {}

  /// Derived: fragments per batch (B / T, at least 1).
  public var fragmentsPerBatch: Int { max(1, train_batch_size / max(1, max_seq_len)) }

  /// For the log: a PettingZoo run that does not evaluate shows no sign of what
  /// self-play learns (in a zero-sum game every win is another row's loss, so the
  /// mean return is 0), and how to see it. Nil otherwise.
  public var selfPlayNotice: String? {
    guard env.hasPrefix(Self.pettingZooPrefix), evaluation_interval_env_steps == 0 else { return nil }
    let how =
      #"to measure it against random moves, --set evaluation_interval_env_steps=200000 --set 'evaluation_env_config={"herd_opponent": "random"}'"#
    return reportsPastReturn
      ? "\(env): one policy plays every agent, so in a zero-sum game its games against itself add 0 to the mean return whatever it learns, and return_vs_past says how it does against its past; \(how)"
      : "\(env): one policy plays every agent, so in a zero-sum game the mean return stays 0 whatever it learns; \(how)"
  }

  /// What a batch size that is not a whole number of fragments becomes, for the
  /// log: batches and minibatches hold whole fragments of `max_seq_len` steps, so
  /// the sizes round down. Nil when both divide evenly.
  public var roundingNotice: String? {
    var parts: [String] = []
    if train_batch_size % max_seq_len != 0 {
      parts.append(
        "train_batch_size = \(train_batch_size) is not a multiple of max_seq_len = \(max_seq_len): a batch is \(fragmentsPerBatch) fragment\(fragmentsPerBatch == 1 ? "" : "s") of up to \(max_seq_len) steps (\(fragmentsPerBatch * max_seq_len) timesteps)"
      )
    }
    if minibatch_size > 0 && minibatch_size % max_seq_len != 0 {
      let n = max(1, minibatch_size / max_seq_len)
      parts.append(
        "minibatch_size = \(minibatch_size) is not a multiple of max_seq_len = \(max_seq_len): a minibatch is \(n) fragment\(n == 1 ? "" : "s") (\(n * max_seq_len) timesteps)"
      )
    }
    return parts.isEmpty ? nil : parts.joined(separator: "; ")
  }
}

/// A config value with a fixed set of choices: an enum whose raw values are the
/// names in config files. An unknown name is an error listing the valid ones.
public protocol ConfigChoice: RawRepresentable, CaseIterable, Codable, Sendable where RawValue == String {}

extension ConfigChoice {
  /// The valid names, e.g. "rmsprop or adam".
  public static var choices: String {
    let names = allCases.map(\.rawValue)
    return names.count < 2 ? names.joined() : names.dropLast().joined(separator: ", ") + " or " + names.last!
  }
}

/// The optimiser (`optimizer`).
public enum OptimizerKind: String, ConfigChoice {
  /// RMSProp as IMPALA uses it (`rmsprop_alpha`, `rmsprop_epsilon`, `momentum`).
  case rmsprop
  /// Adam (`adam_beta1`, `adam_beta2`, `adam_epsilon`).
  case adam
}

/// How the network's weights start (`weight_init`).
public enum WeightInit: String, ConfigChoice {
  /// PyTorch's default per layer (see ``ParameterInit``).
  case pytorch
  /// Orthogonal matrices with gains per layer, biases zero.
  case orthogonal
}

/// The recurrent cell (`rnn_type`) when `use_lstm` is true.
public enum RNNType: String, ConfigChoice {
  case lstm
  case gru
}

/// Observation normalisation, part of the model (`observation_filter`, RLlib's names;
/// see ``ObservationFilter``).
public enum ObservationFilterKind: String, ConfigChoice {
  /// Observations as the environment gives them.
  case NoFilter
  /// The learner's running mean and standard deviation, clipped to +-10.
  case MeanStdFilter
}

/// The convolutional encoder (`conv_encoder`).
public enum ConvEncoderKind: String, ConfigChoice {
  /// `impala_shallow` for uint8 images of at least 20 x 20, `custom` with
  /// `conv_filters`, else none.
  case auto
  /// No convolutions: the MLP over the flat observation.
  case none
  /// Espeholt et al. 2018: conv 8x8 stride 4 (16), conv 4x4 stride 2 (32), FC 256.
  case impala_shallow
  /// Espeholt et al. 2018: three stages (16, 32, 32) of conv 3x3, max-pool 3x3
  /// stride 2 and two residual blocks, then FC 256.
  case impala_deep
  /// Mnih et al. 2015: conv 8x8/4 (32), 4x4/2 (64), 3x3/1 (64), FC 512.
  case nature
  /// `conv_filters`.
  case custom
}

/// What the clipped surrogate's ratio is taken against (`clip_anchor`).
public enum ClipAnchor: String, ConfigChoice {
  /// The behaviour policy stored with each step.
  case behaviour
  /// The learner's policy when it first trained on the step.
  case learner
}

/// The policy-gradient advantage's form (`pg_advantage`).
public enum PGAdvantage: String, ConfigChoice {
  /// IMPALA's: `r_t + gamma_t v_{t+1} - V(x_t)`.
  case vtrace
  /// `r_t + gamma_t (lambda v_{t+1} + (1 - lambda) V(x_{t+1})) - V(x_t)`: GAE(lambda) on-policy.
  case gae
}

/// Reward clipping for learning (`reward_clipping`).
public enum RewardClipping: String, ConfigChoice {
  case none
  /// Clip to [-1, 1].
  case abs_one
}

extension Activation: ConfigChoice {}
