"""Atari frames as IMPALA and RLlib train on them, in the env host.

``make_env`` wraps every ``ALE/...`` id in :class:`AtariFrames` unless the
env_config says ``"atari_preprocessing": false``. The choices, where IMPALA
(Espeholt et al. 2018), RLlib's ``wrap_deepmind`` and Machado et al. (2018) agree
or where Herd had to pick:

- **No-op starts:** a random number of NOOPs in 1..``noop_max`` (30) after each
  reset, so episodes do not all start alike.
- **Frame skip 4, max over the last two frames:** each agent step repeats the
  action on 4 emulator frames and sums their rewards; the observation is the
  pixel-wise maximum of the last two (Atari sprites flicker). The emulator itself
  runs with ``frameskip=1`` so the wrapper sees every frame.
- **84x84 grey:** ALE's own luminance, resized by averaging over areas
  (OpenCV's ``INTER_AREA``, what Gymnasium's ``AtariPreprocessing`` and ALE's
  vector environment use). uint8 all the way: Herd scales to [0, 1] inside the
  network.
- **Frame stacking:** ``frame_stack`` (default 1: a single frame, the memory test
  for a recurrent policy) stacks the last k frames as channels, [84, 84, k]
  (channels last, as Herd's images are), oldest first; an episode starts with
  k - 1 black frames before its first (as ALE's vector environment does).
- **Sticky actions:** ALE v5's default, ``repeat_action_probability`` 0.25
  (Machado et al.); set it to 0 in env_config for IMPALA's deterministic setting.
- **Lives:** an episode ends at game over, not at a lost life (no
  ``terminal_on_life_loss``), so the return is the game's score.
- **Action set:** the game's minimal set (ALE's default), ``full_action_space``
  false.
- **Rewards** pass through unclipped, so the episode return is the raw game score;
  clipping to [-1, 1] for training is the learner's ``reward_clipping: abs_one``.
- **Time limit:** ALE v5's 108,000 emulator frames (30 minutes of play).

**Two implementations, the same frames.** By default the env host steps its
copies through ALE's own vector environment (``ale_py.vector_env``, C++: the
emulator, the frame skip, the max, the resize and the stack without a Python
call per copy or frame; :class:`AtariVector`). :class:`AtariFrames` is the
same preprocessing as a Gymnasium wrapper over one ALE environment, used where
the vector environment cannot go: a recorded copy (``herd eval --record``
renders it), ``gymnasium.make`` options the vector environment does not take
(``mode``, ``difficulty``, ``max_episode_steps``, ...), or ``"vector_env":
false``. Its resize repeats OpenCV's single-precision arithmetic
(:class:`AreaResize`), so without no-op starts and sticky actions the two give
identical observations, rewards and episode ends (the tests compare them). Where
they differ:

- the random streams: the no-op starts and sticky actions draw from different
  generators, so the same seed does not give the same episode;
- the no-op starts: 1 to ``noop_max`` here (Gymnasium's ``AtariPreprocessing``),
  0 to ``noop_max - 1`` in the vector environment;
- the final observation of an episode: the vector environment does not read the
  screen of the frame that ended it, so the newest frame of that one
  observation is made of earlier frames. Herd reads a final observation only to
  bootstrap a truncated episode (ALE's time limit, 30 minutes of play).
"""

import math

import gymnasium
import numpy as np

# env_config keys Herd's Atari preprocessing takes (the rest go to gymnasium.make).
OPTIONS = {
    "atari_preprocessing": True,
    "noop_max": 30,
    "frame_skip": 4,
    "screen_size": 84,
    "frame_stack": 1,
    "vector_env": True,
}

# The gymnasium.make options of an ALE v5 id that ALE's vector environment takes too.
VECTOR_KWARGS = ("repeat_action_probability", "full_action_space", "max_num_frames_per_episode")


def is_atari(env_id):
    return env_id.startswith("ALE/")


def split_options(config):
    """(wrapper options, gymnasium.make kwargs) from an env_config."""
    opts = dict(OPTIONS)
    rest = {}
    for k, v in (config or {}).items():
        if k in OPTIONS:
            opts[k] = v
        else:
            rest[k] = v
    for k in ("noop_max", "frame_skip", "screen_size", "frame_stack"):
        v = opts[k]
        if not isinstance(v, int) or isinstance(v, bool) or v < (0 if k == "noop_max" else 1):
            raise ValueError(f"env_config.{k} = {v!r} is invalid: must be an integer of at least {0 if k == 'noop_max' else 1}")
    for k in ("atari_preprocessing", "vector_env"):
        if not isinstance(opts[k], bool):
            raise ValueError(f"env_config.{k} = {opts[k]!r} is invalid: must be true or false")
    return opts, rest


def _area_taps(n_in, n_out):
    """For each of ``n_out`` outputs, the input cells it averages and their
    weights: ``(index, weight)`` arrays of shape [taps, n_out] (unused taps have
    weight 0). The weights are the overlap of the output's span of ``n_in / n_out``
    inputs with each input cell, over the span (the last span cut at the edge),
    rounded to float32, as OpenCV's area resize computes them."""
    scale = n_in / n_out
    columns = []
    for o in range(n_out):
        start, end = o * scale, (o + 1) * scale
        span = min(scale, n_in - start)
        first = min(math.ceil(start), min(math.floor(end), n_in - 1))
        last = min(math.floor(end), n_in - 1)
        taps = []
        if first - start > 1e-3:  # the part of a cell before the first whole one
            taps.append((first - 1, (first - start) / span))
        taps += [(i, 1.0 / span) for i in range(first, last)]
        if end - last > 1e-3:  # the part of a cell after the last whole one
            taps.append((last, min(end - last, 1.0, span) / span))
        columns.append(taps)
    width = max(len(t) for t in columns)
    index = np.zeros((width, n_out), np.intp)
    weight = np.zeros((width, n_out), np.float32)
    for o, taps in enumerate(columns):
        for j, (i, w) in enumerate(taps):
            index[j, o], weight[j, o] = i, np.float32(w)
    return index, weight


class AreaResize:
    """Resizes uint8 frames by averaging over areas, in float32 and in the order
    OpenCV's ``INTER_AREA`` adds (each row across, then the rows down, each sum
    started with its first product), rounded half to even: the same bytes as
    ALE's vector environment makes of the same frame (the tests check this on
    several games)."""

    def __init__(self, height, width, out_height, out_width):
        self.rows, self.row_weights = _area_taps(height, out_height)
        self.cols, self.col_weights = _area_taps(width, out_width)
        self.row_weights = self.row_weights[:, :, None]

    def __call__(self, frame):
        f = frame.astype(np.float32)
        across = f[:, self.cols[0]] * self.col_weights[0]
        for j in range(1, len(self.cols)):
            across += f[:, self.cols[j]] * self.col_weights[j]
        down = across[self.rows[0]] * self.row_weights[0]
        for j in range(1, len(self.rows)):
            down += across[self.rows[j]] * self.row_weights[j]
        return np.rint(down).astype(np.uint8)


class AtariFrames(gymnasium.Wrapper):
    """No-op starts, frame skip with a max over the last two frames, resize and
    stacking, over an ALE environment made with ``frameskip=1`` and grey frames."""

    def __init__(self, env, noop_max=30, frame_skip=4, screen_size=84, frame_stack=1):
        super().__init__(env)
        if len(env.observation_space.shape) != 2:
            raise ValueError(f"AtariFrames needs grey frames (obs_type='grayscale'), got {env.observation_space.shape}")
        self.noop_max = noop_max
        self.frame_skip = frame_skip
        self.size = screen_size
        self.stack = np.zeros((screen_size, screen_size, frame_stack), np.uint8)
        height, width = env.observation_space.shape
        self.resize = AreaResize(height, width, screen_size, screen_size)
        self.observation_space = gymnasium.spaces.Box(0, 255, self.stack.shape, np.uint8)
        meanings = env.unwrapped.get_action_meanings() if hasattr(env.unwrapped, "get_action_meanings") else ["NOOP"]
        if meanings[0] != "NOOP":
            raise ValueError(f"the first action is {meanings[0]}, not NOOP: no-op starts need it")

    def _push(self, frame):
        self.stack[:, :, :-1] = self.stack[:, :, 1:]
        self.stack[:, :, -1] = self.resize(frame)
        return self.stack.copy()

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        noops = int(self.np_random.integers(1, self.noop_max + 1)) if self.noop_max > 0 else 0
        for _ in range(noops):
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset()
        self.stack[:] = 0  # an episode's first observation: its frame after k - 1 black ones
        return self._push(obs), info

    def step(self, action):
        total = 0.0
        last = prev = None
        terminated = truncated = False
        info = {}
        for _ in range(self.frame_skip):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            prev, last = last, obs
            if terminated or truncated:
                break
        frame = last if prev is None else np.maximum(prev, last)
        return self._push(frame), total, terminated, truncated, info


def vector_obstacle(env_id, config, render_mode=None, info_keys=()):
    """Why ALE's vector environment cannot step ``env_id`` with this env_config,
    or None when it can: ``(reason, chosen)``, ``chosen`` when the user asked
    for the Python wrapper (or for no preprocessing, or a recording) rather than
    for an option only the wrapper has."""
    opts, kwargs = split_options(config)
    if not opts["atari_preprocessing"]:
        return "atari_preprocessing is false", True
    if not opts["vector_env"]:
        return "vector_env is false", True
    if render_mode is not None:
        return "a recorded copy renders its frames", True
    if info_keys:
        return "episode_info_keys reads each episode's last info, and ALE's vector environment gives the next one's", False
    if opts["screen_size"] in (160, 210):
        return f"screen_size {opts['screen_size']} equals a side of the screen", False
    other = sorted(k for k in kwargs if k not in VECTOR_KWARGS)
    if other:
        return f"ALE's vector environment takes no {', '.join(repr(k) for k in other)}", False
    try:
        import ale_py.vector_env  # noqa: F401
    except ImportError as e:
        return f"ale_py has no vector environment ({e})", False
    return None


class AtariVector:
    """``count`` copies of an ALE v5 game stepped by ALE's vector environment in
    C++, with the preprocessing of :class:`AtariFrames` (channels last, oldest
    frame first) and Gymnasium's same-step autoreset: :meth:`step` returns the
    next observations (a new episode's first where one ended) and, for the copies
    whose episode ended, the final observations. One C++ thread steps them while
    the caller waits."""

    def __init__(self, env_id, config, count):
        from ale_py.vector_env import AtariVectorEnv

        opts, kwargs = split_options(config)
        quiet_ale()
        spec = dict(gymnasium.spec(env_id).kwargs)
        spec.update(kwargs)
        self.env = AtariVectorEnv(
            spec["game"],
            count,
            num_threads=1,
            autoreset_mode="SameStep",
            repeat_action_probability=float(spec.get("repeat_action_probability", 0.25)),
            full_action_space=bool(spec.get("full_action_space", False)),
            max_num_frames_per_episode=int(spec.get("max_num_frames_per_episode", 108000)),
            img_height=opts["screen_size"],
            img_width=opts["screen_size"],
            grayscale=True,
            stack_num=opts["frame_stack"],
            frameskip=opts["frame_skip"],
            maxpool=True,
            noop_max=opts["noop_max"],
            episodic_life=False,
            reward_clipping=False,
            use_fire_reset=False,
        )
        size, stack = opts["screen_size"], opts["frame_stack"]
        self.observation_space = gymnasium.spaces.Box(0, 255, (size, size, stack), np.uint8)
        self.action_space = self.env.single_action_space

    @staticmethod
    def _channels_last(frames):
        """[n, stack, H, W] as [n, H, W, stack]."""
        return np.moveaxis(frames, 1, -1)

    # ALE's seeds are C ints, and -1 asks it for a random one.
    SEED_MODULUS = 2**31 - 1

    def reset(self, seeds):
        """Resets every copy, copy i with ``seeds[i]`` (taken modulo 2^31 - 1: Herd's
        seeds are 64-bit); returns [count, H, W, stack]."""
        folded = np.array([int(s) % self.SEED_MODULUS for s in seeds], dtype=np.int64)
        obs, _ = self.env.reset(seed=folded)
        return self._channels_last(obs)

    def step(self, actions):
        """Steps every copy with ``actions`` (count integers): (observations,
        rewards, terminated, truncated, final observations of the copies that
        ended, in copy order)."""
        obs, rewards, terminated, truncated, info = self.env.step(np.asarray(actions, dtype=np.int32))
        ended = terminated | truncated
        final = self._channels_last(info["final_obs"][ended]) if ended.any() else None
        return self._channels_last(obs), rewards, terminated, truncated, final

    def close(self):
        self.env.close()


def quiet_ale():
    """ALE logs at Warning and above: its banner ("A.L.E: Arcade Learning
    Environment ...", "[Powered by Stella]") is Info, printed by every host
    process into a run's log; its warnings and errors still show."""
    import ale_py

    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Warning)


def make_atari(env_id, config, render_mode=None):
    """An ALE environment with :class:`AtariFrames` (unless ``atari_preprocessing`` is false)."""
    opts, kwargs = split_options(config)
    quiet_ale()
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    if not opts["atari_preprocessing"]:
        return gymnasium.make(env_id, **kwargs)
    for k in ("frameskip", "obs_type"):
        if k in kwargs:
            raise ValueError(
                f"env_config.{k} is set by Herd's Atari preprocessing (frame_skip, grey frames); "
                f"use frame_skip, or atari_preprocessing: false to pass {k} to ALE yourself")
    env = gymnasium.make(env_id, frameskip=1, obs_type="grayscale", **kwargs)
    return AtariFrames(env, opts["noop_max"], opts["frame_skip"], opts["screen_size"], opts["frame_stack"])
