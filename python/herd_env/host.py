"""The env host process: K Gymnasium environments stepped for a Herd worker.

Started by the worker as ``python -m herd_env.host --env ID --config JSON --count K
--seed S --first-index I`` with fd 0 its command pipe, fd 1 its reply pipe and fd 3
an anonymous shared-memory file (see ``herd_env.layout``). The environments'
own prints go to stderr, which the worker forwards.

1. The host makes its K environments and writes one JSON line on the reply pipe:
   the spec (``{"id", "config", "observation", "action"}``), or ``{"error": ...}``
   (then it exits with status 2).
2. ``M``: the worker sized the shared memory; the host maps it and answers ``m``.
3. ``R``: reset copy i with seed ``S + I + i``; answer ``r``.
   ``S``: step every copy with the actions in shared memory; answer ``s``.
   ``a``, ``b``, ...: step only the j-th of the G row groups (``--groups G``;
   group j holds copies ``j * K // G`` up to ``(j + 1) * K // G``); answer ``s``.
   The worker steps one group here while its policy acts for another.
   ``Q`` or the end of the command pipe: close the environments and exit.

With ``--record PATH`` copy 0 (or game 0) is made with ``render_mode="rgb_array"`` and its
first episode is written to PATH as an animated GIF (Pillow) when it ends, before
the step is answered: a frame after the reset and after every step, at most 300
frames (longer episodes keep every k-th), at most 320 pixels wide.

A ``pz:`` id names a PettingZoo environment (``herd_env.multiagent``): each
game fills as many consecutive rows as it has agents (``"agents"`` in the spec),
so K and every row group's bounds must be multiples of it. ``--probe`` makes one
game, writes the spec and exits: the worker asks it first, to split its rows
along whole games.

An ``ALE/...`` id's copies are stepped by ALE's vector environment in C++, one
per row group, when it takes the env_config (``herd_env.atari``); the rows it
fills are the same as the per-copy wrapper's.

A step is Gymnasium's with same-step autoreset: when an episode ends, the final
observation goes to its own rows and the environment is reset at once. A step
that raises, or whose observation does not fit the observation space (another
shape), ends the episode (truncated, reward 0, flag bit 2): the traceback is
logged once per kind and exception type, and the environment is closed, made again
and reset with seed ``S + I + i + 1000003 * n`` for its n-th remaking. A reset
that raises after an episode ended keeps that episode's end, reward and final
observation, and the copy is made again the same way. A non-finite
observation or reward ends the episode the same way (flag bit 3, reward 0 when it
was the reward) after a reset. For rows with bit 2 or 3 the host writes no final
observation: the worker bootstraps from the observation the action was taken on,
which it still holds.
"""

import argparse
import difflib
import faulthandler
import json
import math
import mmap
import os
import signal
import sys
import traceback

import numpy as np
from gymnasium import spaces

from herd_env import layout as L
from herd_env import atari
from herd_env import multiagent
from herd_env.make import log as _log
from herd_env.make import make_env, parse_wrappers, resolve
from herd_env.spaces import ActionMapper, Flattener, describe

REMAKE_SEED_STRIDE = 1000003


def group_bounds(count, groups, unit=1):
    """The row groups ``[(lo, hi), ...]`` of ``count`` rows split ``groups`` ways along
    whole units of ``unit`` rows (a PettingZoo game's agents), as the worker splits them."""
    units = count // unit
    return [(j * units // groups * unit, (j + 1) * units // groups * unit) for j in range(groups)]


def _die_with_parent():
    """Asks Linux to kill this process when the worker that started it dies."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:  # not Linux: the closed command pipe still ends the host
        pass


MAX_FRAMES = 300
MAX_WIDTH = 320


class EpisodeRecorder:
    """Collects one episode's frames and writes them as an animated GIF."""

    @staticmethod
    def headless():
        """No display or sound device for pygame-based renderers, and MuJoCo's
        renderer on EGL when there is no display (its default, GLFW, needs one);
        set before making the env, and only where the user set nothing."""
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        if not os.environ.get("DISPLAY"):
            os.environ.setdefault("MUJOCO_GL", "egl")

    @staticmethod
    def make(env_id, config, wrappers=()):
        """Copy 0, made to render rgb_array frames. A MuJoCo model with a camera
        named "track" (the locomotion tasks have one that follows the body) is
        filmed through it unless the config picks a camera: the default free
        camera stays put while a running agent leaves the picture."""
        env = make_env(env_id, config, render_mode="rgb_array", wrappers=wrappers)
        model = getattr(env.unwrapped, "model", None)
        if {"camera_name", "camera_id"} & set(config or {}) or "mujoco" not in type(model).__module__:
            return env
        import mujoco

        if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "track") < 0:
            return env
        try:
            tracked = make_env(
                env_id, dict(config or {}, camera_name="track"), render_mode="rgb_array", wrappers=wrappers
            )
        except TypeError:  # an environment that takes no camera_name
            return env
        env.close()
        return tracked

    def __init__(self, env, path):
        self.env, self.path, self.frames = env, path, []
        self.fps = int(env.metadata.get("render_fps") or 30)

    def frame(self):
        f = self.env.render()
        if f is None:
            raise ValueError(f"{self.env.spec.id if self.env.spec else self.env} renders no rgb_array frame")
        self.frames.append(np.asarray(f, dtype=np.uint8))

    def write(self):
        from PIL import Image

        step = max(1, -(-len(self.frames) // MAX_FRAMES))
        frames = self.frames[::step]
        images = []
        for f in frames:
            im = Image.fromarray(f)
            if im.width > MAX_WIDTH:
                im = im.resize((MAX_WIDTH, max(1, im.height * MAX_WIDTH // im.width)))
            images.append(im.convert("P", palette=Image.Palette.ADAPTIVE))
        tmp = self.path + ".tmp"
        duration = max(20, int(1000 * step / self.fps))
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
        os.replace(tmp, self.path)
        _log(f"recorded an episode of {len(self.frames)} frames ({len(images)} in the GIF) to {self.path}")


class Host:
    """The K environments of a host process. ``groups``: the row groups the worker
    steps one at a time (``[(lo, hi), ...]``, default one group of all rows).
    ALE ids step through ALE's vector environment, one per group, when it can
    take the env_config (:func:`herd_env.atari.vector_obstacle`; when it cannot
    for an option the user set, one line says so). Every other id, and an ALE one
    it cannot take, is K Gymnasium environments stepped in turn."""

    def __init__(
        self, env_id, config, count, seed, first_index, record=None, groups=None, info_keys=(), wrappers=(),
        group_count=None,
    ):
        self.env_id = env_id
        self.wrappers = list(wrappers)
        self.info_keys = list(info_keys)
        self.config = config
        self.count = count
        self.base_seed = seed + first_index
        self.remakes = [0] * count
        self.logged = set()
        # ``group_count``: the worker's ``--groups``, split here along whole games.
        self.group_count = group_count if groups is None else None
        self.groups = list(groups or group_bounds(count, group_count or 1))
        self.vectors = None
        self.games = None
        self.agents = 1
        # What the worker should say about the spaces it is shown (a game whose
        # agents' spaces were made alike).
        self.notes = []
        if multiagent.is_pettingzoo(env_id):
            self._make_games(record)
            return
        resolved = resolve(env_id)
        if atari.is_atari(resolved):
            obstacle = (
                ("env_wrappers wrap each copy", True)
                if self.wrappers
                else atari.vector_obstacle(
                    resolved, config, render_mode="rgb_array" if record else None, info_keys=self.info_keys
                )
            )
            if obstacle is None:
                self.vectors = [atari.AtariVector(resolved, config, hi - lo) for lo, hi in self.groups]
        else:
            obstacle = None
        if self.vectors:
            self.envs = []
            space_source = self.vectors[0]
        else:
            if record:
                EpisodeRecorder.headless()
            self.envs = [
                EpisodeRecorder.make(env_id, config, self.wrappers)
                if record and i == 0
                else make_env(env_id, config, wrappers=self.wrappers)
                for i in range(count)
            ]
            space_source = self.envs[0]
            if obstacle and not obstacle[1]:  # said once the copies exist (ALE may refuse the option itself)
                _log(f"{env_id}: stepped one copy at a time in Python, more slowly: {obstacle[0]}")
        self.recorder = EpisodeRecorder(self.envs[0], record) if record else None
        self.observation_space = space_source.observation_space
        self.action_space = space_source.action_space
        self.flatten = Flattener(self.observation_space)
        if self.flatten.size == 0:
            raise ValueError(
                f"observation space {self.observation_space} has no numbers Herd can use: it reads Box, Discrete, "
                "MultiBinary, MultiDiscrete and Dict/Tuple of these"
            )
        self._spaces_ready()

    def _spaces_ready(self):
        self.mapper = ActionMapper(self.action_space)
        self.is_float = self.flatten.dtype == np.float32
        self.views = None

    def _make_games(self, record):
        """The PettingZoo games of a ``pz:`` id: ``count`` rows, a game's agents
        on consecutive rows (K and the row groups' bounds multiples of them)."""
        if self.wrappers:
            raise ValueError(
                f"{self.env_id}: env_wrappers wrap Gymnasium environments; for a PettingZoo one, wrap it in a "
                "function of your own module and name that (pz:MODULE:FUNCTION)"
            )
        if record:
            EpisodeRecorder.headless()
        first = multiagent.make_game(self.env_id, self.config, render_mode="rgb_array" if record else None)
        n = self.agents = first.rows
        if self.count % n:
            raise ValueError(
                f"{self.env_id}: {self.count} rows are not whole games of {n} agents: a game's agents take "
                f"{n} rows, so num_envs_per_worker (and each env host's and row group's share) must be a multiple of {n}"
            )
        if self.group_count:
            if self.group_count > self.count // n:
                raise ValueError(f"{self.env_id}: {self.group_count} row groups for {self.count // n} games")
            self.groups = group_bounds(self.count, self.group_count, n)
        for lo, hi in self.groups:
            if lo % n or hi % n:
                raise ValueError(f"{self.env_id}: row group {lo}..<{hi} splits a game of {n} agents")
        self.games = [first] + [multiagent.make_game(self.env_id, self.config) for _ in range(self.count // n - 1)]
        self.remakes = [0] * len(self.games)
        self.envs = []
        # Game 0's first game is filmed as a Gymnasium copy 0's first episode is.
        self.recorder = EpisodeRecorder(first.env, record) if record else None
        self.observation_space = first.observation_space
        self.action_space = first.action_space
        if first.padding:
            self.notes.append(first.padding.describe())
        self.flatten = Flattener(self.observation_space)
        if self.flatten.size == 0:
            raise ValueError(f"{self.env_id}: observation space {self.observation_space} has no numbers Herd can use")
        self._spaces_ready()

    def spec(self, config_text):
        return {
            "id": self.env_id,
            "config": config_text,
            "observation": describe(self.observation_space),
            "action": describe(self.action_space),
            # The worker checks that this herd_env lays out the memory as it does.
            "layout": L.VERSION,
            "herd_env": os.path.dirname(os.path.abspath(__file__)),
            "agents": self.agents,
            "notes": self.notes,
        }

    def attach(self, buf):
        lay = L.Layout(
            self.count, self.flatten.size, self.mapper.dims, np.dtype(self.flatten.dtype).itemsize, len(self.info_keys)
        )
        lay.check_header(buf)
        v = lay.views(buf, self.flatten.dtype)
        self.actions, self.rewards, self.flags = v["actions"], v["rewards"], v["flags"]
        self.episode_info = v["episode_info"]
        self.obs, self.final = v["observations"], v["final_observations"]
        # A Box observation is written straight into its row (no flattening call):
        # the rows seen with the Box's own shape.
        if isinstance(self.observation_space, spaces.Box):
            shape = (self.count,) + tuple(self.observation_space.shape)
            self.obs_rows, self.final_rows = self.obs.reshape(shape), self.final.reshape(shape)
        else:
            self.obs_rows = self.final_rows = None

    def reset(self):
        if self.games is not None:
            for g, game in enumerate(self.games):
                self._write_game(g, game.reset(seed=self.base_seed + g * self.agents), self.obs)
            self.rewards[:] = 0
            self.flags[:] = 0
            if self.recorder:
                self.recorder.frames = []
                self._record_frame(ended=False)
            return
        if self.vectors:
            for (lo, hi), vector in zip(self.groups, self.vectors):
                self.obs_rows[lo:hi] = vector.reset(self.base_seed + np.arange(lo, hi))
        for i, env in enumerate(self.envs):
            obs, _ = env.reset(seed=self.base_seed + i)
            self.flatten(obs, self.obs[i])
        if self.recorder:
            self.recorder.frames = []
            self._record_frame(ended=False)
        self.rewards[:] = 0
        self.flags[:] = 0

    def _log_once(self, key, message):
        if key not in self.logged:
            self.logged.add(key)
            _log(message + " (logged once)")

    def _fault(self, i, phase, e, unit="copy"):
        """Logs, once per phase and exception type, that copy (or game) ``i`` failed."""
        what = {
            "step": "raised in step; the episode ends",
            "reset": "raised in reset after its episode ended",
            "observation": f"returned an observation that does not fit its space {self.observation_space}; the episode ends",
        }[phase]
        self._log_once(
            (phase, type(e).__name__),
            f"{self.env_id} {unit} {i} {what} and the environment is made again:\n" + traceback.format_exc().rstrip(),
        )

    def _info_value(self, key, value):
        """A number for an info value: a bool, an integer, a float or an array of one
        element; NaN (said once per key) for anything else."""
        try:
            a = np.asarray(value)
            if a.size == 1 and (a.dtype.kind in "biuf"):
                return float(a.reshape(()))
        except Exception:
            pass
        self._log_once(
            ("info type", key),
            f"{self.env_id}: info[{key!r}] at an episode's end is {type(value).__name__} {value!r:.60}, not a number: "
            "episode_info_keys records numbers and bools; these episodes record none for it",
        )
        return math.nan

    def _record_info(self, i, info):
        """Writes row ``i``'s episode info: each key of ``episode_info_keys`` from the
        info dict of the step that ended its episode (NaN for a key it lacks, said
        once per key with the keys it has)."""
        row = self.episode_info[i]
        for n, key in enumerate(self.info_keys):
            if key in info:
                row[n] = self._info_value(key, info[key])
            else:
                row[n] = math.nan
                have = ", ".join(repr(k) for k in sorted(info, key=str)) or "none"
                close = difflib.get_close_matches(key, [k for k in info if isinstance(k, str)], n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self._log_once(
                    ("info missing", key),
                    f"{self.env_id}: an episode ended without {key!r} in its info{hint} (its keys: {have}); "
                    "it records none for that episode_info_keys entry",
                )

    def _remake(self, i):
        try:
            self.envs[i].close()
        except Exception:
            pass
        self.remakes[i] += 1
        self.envs[i] = make_env(self.env_id, self.config, wrappers=self.wrappers)
        obs, _ = self.envs[i].reset(seed=self.base_seed + i + REMAKE_SEED_STRIDE * self.remakes[i])
        self.flatten(obs, self.obs[i])

    def step(self, lo=0, hi=None):
        """Steps copies ``lo`` up to ``hi`` (all by default)."""
        hi = self.count if hi is None else hi
        if self.games is not None:
            self._step_games(lo, hi)
            return
        if self.vectors:
            self._step_vectors(lo, hi)
            return
        actions = self.mapper.actions(self.actions[lo:hi])
        obs, final, flatten = self.obs, self.final, self.flatten
        obs_rows, final_rows = self.obs_rows, self.final_rows
        envs = self.envs
        rewards = [0.0] * (hi - lo)
        flags = [0] * (hi - lo)
        ended = []
        for j in range(hi - lo):
            i = lo + j
            env = envs[i]
            phase = "step"
            try:
                o, r, terminated, truncated, info = env.step(actions[j])
                phase = "observation"
                if terminated or truncated:
                    if final_rows is None:
                        flatten(o, final[i])
                    else:
                        final_rows[i] = o
                    if self.info_keys:
                        self._record_info(i, info)
                    phase = "reset"
                    o, _ = env.reset()
                    phase = "observation"
                if obs_rows is None:
                    flatten(o, obs[i])
                else:
                    obs_rows[i] = o
            except Exception as e:
                if i == 0 and self.recorder:
                    self._finish_recording()
                self._fault(i, phase, e)
                if phase == "reset":
                    # The episode ended as the environment said (its reward and
                    # final observation stand); only the next one needs a new copy.
                    rewards[j] = r
                    ended.append(i)
                    flags[j] = (L.TERMINATED if terminated else 0) | (L.TRUNCATED if truncated else 0)
                else:
                    flags[j] = L.TRUNCATED | L.STEP_ERROR
                    self.episode_info[i] = math.nan
                self._remake(i)
                continue
            rewards[j] = r
            if i == 0 and self.recorder:
                self._record_frame(ended=terminated or truncated)
            if terminated or truncated:
                ended.append(i)
                flags[j] = (L.TERMINATED if terminated else 0) | (L.TRUNCATED if truncated else 0)
        self.rewards[lo:hi] = rewards
        # One check over the whole block; rows are looked at only when it fails.
        if not np.isfinite(self.rewards[lo:hi]).all() or (
            self.is_float
            and not (np.isfinite(obs[lo:hi]).all() and (not ended or np.isfinite(final[ended]).all()))
        ):
            self._non_finite(flags, ended, lo, hi)
        self.flags[lo:hi] = flags

    def _write_game(self, g, observations, into):
        n = self.agents
        for j, o in enumerate(observations):
            self.flatten(o, into[g * n + j])

    def _step_games(self, lo, hi):
        """Steps the PettingZoo games of rows ``lo..<hi`` (whole games). A game that
        ends is reset at once; one that raises or gives a non-finite number ends as
        a Gymnasium copy would (truncated, flag bit 2 or 3), made again if it raised."""
        n = self.agents
        for g in range(lo // n, hi // n):
            rows = slice(g * n, (g + 1) * n)
            game = self.games[g]
            actions = self.mapper.actions(self.actions[rows])
            phase = "step"
            try:
                observations, rewards, over, terminated, infos = game.step(list(actions))
                if g == 0 and self.recorder:
                    self._record_frame(ended=over)
                phase = "observation"
                if over:
                    self._write_game(g, observations, self.final)
                    if self.info_keys:
                        for j, info in enumerate(infos):
                            self._record_info(g * n + j, info)
                    phase = "reset"
                    observations = game.reset()
                    phase = "observation"
                self._write_game(g, observations, self.obs)
            except Exception as e:
                if g == 0 and self.recorder:
                    self._finish_recording()
                self._fault(g, phase, e, unit="game")
                self.flags[rows] = L.TRUNCATED | L.STEP_ERROR
                self.rewards[rows] = 0
                self.episode_info[rows] = math.nan
                self._remake_game(g)
                continue
            self.rewards[rows] = rewards
            flags = [
                (L.TERMINATED if t else L.TRUNCATED) if over else 0 for t in terminated
            ]
            if not np.isfinite(self.rewards[rows]).all() or (
                self.is_float
                and not (np.isfinite(self.obs[rows]).all() and (not over or np.isfinite(self.final[rows]).all()))
            ):
                self._log_once(
                    ("nonfinite",),
                    f"{self.env_id} game {g} gave a non-finite observation or reward; its episodes end and it is reset",
                )
                self.rewards[rows] = np.nan_to_num(self.rewards[rows], nan=0.0, posinf=0.0, neginf=0.0)
                self._write_game(g, game.reset(), self.obs)
                flags = [L.TRUNCATED | L.NON_FINITE] * n
                if self.info_keys:
                    self.episode_info[rows] = math.nan
            self.flags[rows] = flags

    def _remake_game(self, g):
        try:
            self.games[g].close()
        except Exception:
            pass
        self.remakes[g] += 1
        self.games[g] = multiagent.make_game(self.env_id, self.config)
        seed = self.base_seed + g * self.agents + REMAKE_SEED_STRIDE * self.remakes[g]
        self._write_game(g, self.games[g].reset(seed=seed), self.obs)

    def _step_vectors(self, lo, hi):
        """Steps the groups that make up rows ``lo..<hi`` through their vector environments."""
        covered = [(g, b) for g, b in enumerate(self.groups) if lo <= b[0] and b[1] <= hi]
        if sum(b[1] - b[0] for _, b in covered) != hi - lo:
            raise ValueError(f"rows {lo}..<{hi} are not whole row groups of {self.groups}")
        for g, (glo, ghi) in covered:
            actions = self.mapper.actions(self.actions[glo:ghi])
            obs, rewards, terminated, truncated, final = self.vectors[g].step(actions)
            self.obs_rows[glo:ghi] = obs
            self.rewards[glo:ghi] = rewards
            flags = np.where(terminated, L.TERMINATED, 0) | np.where(truncated, L.TRUNCATED, 0)
            if final is not None:
                self.final_rows[glo:ghi][terminated | truncated] = final
            self.flags[glo:ghi] = flags

    def _finish_recording(self):
        """Writes the recorded episode and stops recording."""
        recorder, self.recorder = self.recorder, None
        recorder.write()

    def _record_frame(self, ended):
        """Renders copy 0's frame, and writes the episode when it ``ended``. A
        renderer that fails stops the recording, with one line saying why; the
        episodes go on."""
        path = self.recorder.path
        try:
            self.recorder.frame()
            if ended:
                self._finish_recording()
        except Exception as e:
            self.recorder = None
            hint = ""
            if "mujoco" in type(e).__module__ or "OpenGL" in str(e):
                hint = " (MuJoCo renders without a display with MUJOCO_GL=egl or MUJOCO_GL=osmesa)"
            _log(f"recording to {path} failed, the episodes go on without it: {type(e).__name__}: {e}{hint}")

    def _non_finite(self, flags, ended, lo, hi):
        """Ends (and resets) the episodes of copies ``lo..<hi`` whose observation or reward is not finite."""
        ok = np.isfinite(self.rewards[lo:hi])
        if self.is_float:
            ok &= np.isfinite(self.obs[lo:hi]).all(axis=1)
            done = np.zeros(hi - lo, bool)
            done[[i - lo for i in ended]] = True
            ok &= ~done | np.isfinite(self.final[lo:hi]).all(axis=1)
        for j in np.nonzero(~ok)[0]:
            i = lo + int(j)
            self._log_once(
                ("nonfinite",),
                f"{self.env_id} copy {i} gave a non-finite observation or reward; the episode ends and is reset",
            )
            self.rewards[i] = 0.0 if not math.isfinite(self.rewards[i]) else self.rewards[i]
            for attempt in range(3):
                o, _ = self.envs[i].reset()
                self.flatten(o, self.obs[i])
                if not self.is_float or np.isfinite(self.obs[i]).all():
                    break
            else:
                raise RuntimeError(f"{self.env_id} copy {i} gives non-finite observations after reset")
            flags[j] = (flags[j] & ~L.TERMINATED) | L.TRUNCATED | L.NON_FINITE
            if self.info_keys:
                self.episode_info[i] = math.nan

    def close(self):
        for env in self.envs + (self.vectors or []) + (self.games or []):
            try:
                env.close()
            except Exception:
                pass


def _write_line(fd, obj):
    os.write(fd, (json.dumps(obj) + "\n").encode())


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m herd_env.host", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True, help="Gymnasium id, optionally module:id")
    parser.add_argument("--config", default="{}", help="JSON object passed to gymnasium.make as keyword arguments")
    parser.add_argument("--count", type=int, required=True, help="environments in this process (K)")
    parser.add_argument("--seed", type=int, default=0, help="seed base S")
    parser.add_argument("--first-index", type=int, default=0, help="index I of this host's first copy")
    parser.add_argument("--shm-fd", type=int, default=3, help="the shared-memory file descriptor")
    parser.add_argument("--groups", type=int, default=1, help="row groups G the worker steps one at a time")
    parser.add_argument("--record", help="write copy 0's first episode to this GIF file")
    parser.add_argument(
        "--probe", action="store_true", help="make one copy (or game), write the spec and exit (the rows a game takes)"
    )
    parser.add_argument(
        "--info-keys", default="[]", help="JSON list of info keys recorded at each episode's end (episode_info_keys)"
    )
    parser.add_argument(
        "--wrappers", default="[]", help='env_wrappers as JSON: "module:Class" or {"module:Class": {kwargs}} entries, innermost first'
    )
    args = parser.parse_args(argv)
    if args.probe:
        args.count, args.groups = 1, 1
    if not 1 <= args.groups <= min(26, args.count):
        parser.error(f"--groups {args.groups}: must be in 1..{min(26, args.count)}")

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when the host stops
    # A worker that takes this host as hung (env_step_timeout_seconds) sends SIGUSR1
    # first: every thread's Python stack goes to stderr, the worker's log, so the
    # user sees where the environment hangs (even inside C code holding the GIL).
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    _die_with_parent()
    commands = os.dup(0)
    replies = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # an environment's prints must not reach the reply pipe
    sys.stdout = sys.stderr

    try:
        config = json.loads(args.config)
        if not isinstance(config, dict):
            raise ValueError(f"env_config must be a JSON object, not {args.config}")
        info_keys = json.loads(args.info_keys)
        if not isinstance(info_keys, list) or not all(isinstance(k, str) for k in info_keys):
            raise ValueError(f"--info-keys must be a JSON list of strings, not {args.info_keys}")
        if args.probe and multiagent.is_pettingzoo(args.env):
            game = multiagent.make_game(args.env, config)
            args.count = game.rows
            game.close()
        host = Host(
            args.env, config, args.count, args.seed, args.first_index, record=args.record,
            info_keys=info_keys, wrappers=parse_wrappers(args.wrappers), group_count=args.groups,
        )
        bounds = host.groups
    except Exception as e:
        _write_line(replies, {"error": f"{type(e).__name__}: {e}"})
        return 2
    _write_line(replies, host.spec(args.config))
    if args.probe:
        host.close()
        return 0

    buf = None
    try:
        while True:
            c = os.read(commands, 1)
            if c == b"S":
                host.step()
                os.write(replies, b"s")
            elif b"a" <= c <= b"z" and c[0] - 97 < len(bounds):
                host.step(*bounds[c[0] - 97])
                os.write(replies, b"s")
            elif c == b"R":
                host.reset()
                os.write(replies, b"r")
            elif c == b"M":
                size = os.fstat(args.shm_fd).st_size
                buf = mmap.mmap(args.shm_fd, size)
                host.attach(buf)
                os.write(replies, b"m")
            elif c in (b"Q", b""):
                break
            else:
                raise ValueError(f"unknown command {c!r}")
    except BrokenPipeError:
        pass
    finally:
        host.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
