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
- **84x84 grey:** ALE's own luminance (``obs_type="grayscale"``), resized
  bilinearly with Pillow. uint8 all the way: Herd scales to [0, 1] inside the
  network.
- **Frame stacking:** ``frame_stack`` (default 1: a single frame, the memory test
  for a recurrent policy) stacks the last k frames as channels, [84, 84, k]
  (channels last, as Herd's images are), oldest first.
- **Sticky actions:** ALE v5's default, ``repeat_action_probability`` 0.25
  (Machado et al.); set it to 0 in env_config for IMPALA's deterministic setting.
- **Lives:** an episode ends at game over, not at a lost life (no
  ``terminal_on_life_loss``), so the return is the game's score.
- **Action set:** the game's minimal set (ALE's default), ``full_action_space``
  false.
- **Rewards** pass through unclipped, so the episode return is the raw game score;
  clipping to [-1, 1] for training is the learner's ``reward_clipping: abs_one``.
- **Time limit:** ALE v5's 108,000 emulator frames (30 minutes of play).
"""

import gymnasium
import numpy as np
from PIL import Image

# env_config keys this wrapper takes (the rest go to gymnasium.make).
OPTIONS = {"atari_preprocessing": True, "noop_max": 30, "frame_skip": 4, "screen_size": 84, "frame_stack": 1}


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
    return opts, rest


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
        self.observation_space = gymnasium.spaces.Box(0, 255, self.stack.shape, np.uint8)
        meanings = env.unwrapped.get_action_meanings() if hasattr(env.unwrapped, "get_action_meanings") else ["NOOP"]
        if meanings[0] != "NOOP":
            raise ValueError(f"the first action is {meanings[0]}, not NOOP: no-op starts need it")

    def _resize(self, frame):
        return np.asarray(Image.fromarray(frame).resize((self.size, self.size), Image.BILINEAR), dtype=np.uint8)

    def _push(self, frame):
        self.stack[:, :, :-1] = self.stack[:, :, 1:]
        self.stack[:, :, -1] = self._resize(frame)
        return self.stack.copy()

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        noops = int(self.np_random.integers(1, self.noop_max + 1)) if self.noop_max > 0 else 0
        for _ in range(noops):
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset()
        self.stack[:] = 0
        for _ in range(self.stack.shape[2]):
            self._push(obs)
        return self.stack.copy(), info

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
