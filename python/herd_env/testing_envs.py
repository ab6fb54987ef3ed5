"""Small environments that misbehave on purpose, for Herd's fault tests.

Importing this module registers them (``gym:herd_env.testing_envs:HerdTest/Flaky-v0``):

- ``HerdTest/Flaky-v0``: a counter task whose ``step`` raises every ``fail_every``-th call
  (counting across episodes of one instance);
- ``HerdTest/NonFinite-v0``: its observation is NaN every ``bad_every``-th step;
- ``HerdTest/Spaces-v0``: a Dict observation with every kind of space Herd reads
  and one it drops (Text), and a MultiDiscrete action;
- ``HerdTest/Null-v0``: does nothing, fast (benchmarks);
- ``HerdTest/IntBoxAction-v0``: acts in an integer Box, which Herd refuses;
- ``HerdTest/Slow-v0``: every ``slow_every``-th ``step`` call sleeps ``seconds``
  (a slow simulator, or with a long sleep a hung one);
- ``HerdTest/Misshapen-v0``: every ``bad_every``-th ``step`` returns an observation
  two entries too long, and every ``reset_fails_every``-th ``reset`` raises;
- ``HerdTest/Scored-v0``: ``length`` steps; the info of an episode's last step has
  ``is_success`` (its last action was 1, the one rewarded), ``steps`` (``length``),
  ``odd`` (1.0, in odd-numbered episodes of an instance only) and ``label`` (a string);
- ``pz:herd_env.testing_envs:parallel_race``: a PettingZoo parallel game (see
  :func:`parallel_race`) whose agents finish at different steps;
- ``pz:herd_env.testing_envs:signal_game``: a cooperative PettingZoo parallel
  game of a speaker and a listener whose spaces differ (see :func:`signal_game`).
"""

import os
import time

import gymnasium
import numpy as np
from gymnasium import spaces


class Flaky(gymnasium.Env):
    """Observation: the step count scaled to [0, 1] (repeated ``$HERD_TEST_FLAKY_SIZE``
    times, 1 by default: a stand-in for a package whose version changes its spaces);
    reward 1 per step; 10 steps."""

    def __init__(self, fail_every=7, length=10):
        self.size = int(os.environ.get("HERD_TEST_FLAKY_SIZE", "1"))
        self.observation_space = spaces.Box(0.0, 1.0, (self.size,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.fail_every = fail_every
        self.length = length
        self.calls = 0
        self.t = 0

    def _obs(self):
        return np.full(self.size, self.t / self.length, np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.calls += 1
        if self.fail_every and self.calls % self.fail_every == 0:
            raise RuntimeError(f"Flaky fails on call {self.calls}")
        self.t += 1
        return self._obs(), 1.0, self.t >= self.length, False, {}


class NonFinite(Flaky):
    def __init__(self, bad_every=5, length=10):
        super().__init__(fail_every=0, length=length)
        self.bad_every = bad_every

    def step(self, action):
        obs, r, term, trunc, info = super().step(action)
        if self.calls % self.bad_every == 0:
            obs = np.full(self.size, np.nan, np.float32)
        return obs, r, term, trunc, info


class Misshapen(Flaky):
    def __init__(self, bad_every=0, reset_fails_every=0, length=10):
        super().__init__(fail_every=0, length=length)
        self.bad_every = bad_every
        self.reset_fails_every = reset_fails_every
        self.resets = 0

    def reset(self, seed=None, options=None):
        self.resets += 1
        if self.reset_fails_every and self.resets % self.reset_fails_every == 0:
            raise RuntimeError(f"Misshapen's reset fails on call {self.resets}")
        return super().reset(seed=seed, options=options)

    def step(self, action):
        obs, r, term, trunc, info = super().step(action)
        if self.bad_every and self.calls % self.bad_every == 0:
            obs = np.zeros(self.size + 2, np.float32)
        return obs, r, term, trunc, info


class AllSpaces(gymnasium.Env):
    """Reward 1 when the first action component equals the observed Discrete."""

    def __init__(self):
        self.observation_space = spaces.Dict(
            {
                "box": spaces.Box(-1.0, 1.0, (2, 2), np.float32),
                "cat": spaces.Discrete(3, start=1),
                "bits": spaces.MultiBinary(3),
                "multi": spaces.MultiDiscrete([2, 3]),
                "pair": spaces.Tuple((spaces.Discrete(2), spaces.Box(0, 255, (2,), np.uint8))),
                "text": spaces.Text(8),
            }
        )
        self.action_space = spaces.MultiDiscrete([3, 2])
        self.t = 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(int(self.np_random.integers(1 << 30)))
        self.t = 0
        self.last = self.observation_space.sample()
        return self.last, {}

    def step(self, action):
        self.t += 1
        reward = 1.0 if int(action[0]) + 1 == int(self.last["cat"]) else 0.0
        self.last = self.observation_space.sample()
        return self.last, reward, False, self.t >= 8, {}


gymnasium.register("HerdTest/Flaky-v0", entry_point=Flaky)
gymnasium.register("HerdTest/NonFinite-v0", entry_point=NonFinite)
gymnasium.register("HerdTest/Spaces-v0", entry_point=AllSpaces)
gymnasium.register("HerdTest/Misshapen-v0", entry_point=Misshapen)


class Scored(Flaky):
    def __init__(self, length=5):
        super().__init__(fail_every=0, length=length)
        self.episodes = 0

    def step(self, action):
        obs, _, term, trunc, info = super().step(action)
        reward = 0.0
        if term:
            self.episodes += 1
            reward = 1.0 if int(action) == 1 else 0.0
            info = {"is_success": int(action) == 1, "steps": self.t, "label": "done"}
            if self.episodes % 2 == 1:
                info["odd"] = np.float32(1.0)
        return obs, reward, term, trunc, info


gymnasium.register("HerdTest/Scored-v0", entry_point=Scored)


class Slow(Flaky):
    def __init__(self, slow_every=3, seconds=1.0, length=10):
        super().__init__(fail_every=0, length=length)
        self.slow_every = slow_every
        self.seconds = seconds

    def step(self, action):
        if (self.calls + 1) % self.slow_every == 0:
            self._sleep()
        return super().step(action)

    def _sleep(self):  # its own frame: the stack a hung host prints names it
        time.sleep(self.seconds)


gymnasium.register("HerdTest/Slow-v0", entry_point=Slow)


class Null(gymnasium.Env):
    """Does nothing, as fast as an environment can: the bridge's own cost shows.
    Every call returns the same observation array (no copy), so it is registered
    without Gymnasium's passive checker, which would warn about that."""

    def __init__(self, size=4):
        self.observation_space = spaces.Box(-1.0, 1.0, (size,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.obs = np.zeros(size, np.float32)

    def reset(self, seed=None, options=None):
        return self.obs, {}

    def step(self, action):
        return self.obs, 0.0, False, False, {}


gymnasium.register("HerdTest/Null-v0", entry_point=Null, disable_env_checker=True)


class IntBoxAction(Null):
    """Acts in an integer Box, a space Herd refuses (it acts in float Boxes)."""

    def __init__(self):
        super().__init__()
        self.action_space = spaces.Box(0, 5, (2,), np.int64)


gymnasium.register("HerdTest/IntBoxAction-v0", entry_point=IntBoxAction)


class BrokenRender(Null):
    """Asked for rgb_array frames, fails to render them (a renderer without its display)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, render_mode=None):
        super().__init__()
        self.render_mode = render_mode

    # New observation arrays (Null's one array is for the bridge benchmark only):
    # Gymnasium's checker, which gymnasium.make adds, warns about a shared one.
    def reset(self, seed=None, options=None):
        return self.obs.copy(), {}

    def step(self, action):
        return self.obs.copy(), 0.0, False, False, {}

    def render(self):
        raise RuntimeError("no display to render on")


gymnasium.register("HerdTest/BrokenRender-v0", entry_point=BrokenRender, max_episode_steps=5)


def parallel_race(need=(2, 3, 4), max_cycles=8, fail_every=0, nan_every=0):
    """A PettingZoo parallel game of ``len(need)`` runners (``runner_0``, ...): each
    step a runner that plays 1 scores (reward 1) and one that plays 0 does not;
    runner i is done (terminated) once it scored ``need[i]`` times; the rest are
    truncated after ``max_cycles`` steps. Observation ``[score / max(need), steps /
    max_cycles]``; ``infos[runner]["score"]`` its score. With ``fail_every`` n > 0,
    every n-th ``step`` call of an instance raises; with ``nan_every`` n > 0, every
    n-th gives runner_1 a NaN reward."""
    from pettingzoo import ParallelEnv

    class Race(ParallelEnv):
        metadata = {"name": "parallel_race_v0"}

        def __init__(self):
            self.possible_agents = [f"runner_{i}" for i in range(len(need))]
            self.need = dict(zip(self.possible_agents, need))
            self.calls = 0

        def observation_space(self, agent):
            return spaces.Box(0.0, 1.0, (2,), np.float32)

        def action_space(self, agent):
            return spaces.Discrete(2)

        def _obs(self, agent):
            return np.array([self.score[agent] / max(need), self.t / max_cycles], np.float32)

        def reset(self, seed=None, options=None):
            self.agents = list(self.possible_agents)
            self.score = dict.fromkeys(self.agents, 0)
            self.t = 0
            return {a: self._obs(a) for a in self.agents}, {a: {} for a in self.agents}

        def step(self, actions):
            self.calls += 1
            if fail_every and self.calls % fail_every == 0:
                raise RuntimeError(f"parallel_race: step call {self.calls} fails on purpose")
            self.t += 1
            rewards, terminations, truncations, infos = {}, {}, {}, {}
            for a in self.agents:
                scored = int(actions[a]) == 1
                self.score[a] += scored
                rewards[a] = float(scored)
                terminations[a] = self.score[a] >= self.need[a]
                truncations[a] = not terminations[a] and self.t >= max_cycles
                infos[a] = {"score": self.score[a]}
            if nan_every and self.calls % nan_every == 0 and "runner_1" in rewards:
                rewards["runner_1"] = float("nan")
            observations = {a: self._obs(a) for a in self.agents}
            self.agents = [a for a in self.agents if not (terminations[a] or truncations[a])]
            return observations, rewards, terminations, truncations, infos

    return Race()


def signal_game(targets=3, length=8):
    """A cooperative PettingZoo parallel game of two agents whose spaces differ.

    ``speaker_0`` sees the episode's target (a one-hot of ``targets``) and says one
    of ``targets`` words (``Discrete(targets)``); ``listener_0`` sees the word said
    the step before (a one-hot, zeros at the first step) and the steps taken over
    ``length``, and names one of ``targets + 1`` things (``Discrete(targets + 1)``,
    the last never the target). Both get reward 1 at each step at which the
    listener names the target; both are terminated after ``length`` steps.
    Naming at random scores ``length / (targets + 1)``; saying the target and
    repeating what was said scores ``length - 1`` and a third. ``infos`` hold
    ``right``, the listener's right answers so far.
    """
    from pettingzoo import ParallelEnv

    class Signal(ParallelEnv):
        metadata = {"name": "signal_v0"}

        def __init__(self):
            self.possible_agents = ["speaker_0", "listener_0"]
            self.rng = np.random.default_rng(0)

        def observation_space(self, agent):
            size = targets if agent == "speaker_0" else targets + 1
            return spaces.Box(0.0, 1.0, (size,), np.float32)

        def action_space(self, agent):
            return spaces.Discrete(targets if agent == "speaker_0" else targets + 1)

        def _observations(self):
            target = np.zeros(targets, np.float32)
            target[self.target] = 1
            heard = np.zeros(targets + 1, np.float32)
            if self.word is not None:
                heard[self.word] = 1
            heard[targets] = self.t / length
            return {"speaker_0": target, "listener_0": heard}

        def reset(self, seed=None, options=None):
            if seed is not None:
                self.rng = np.random.default_rng(seed)
            self.agents = list(self.possible_agents)
            self.target = int(self.rng.integers(targets))
            self.word = None
            self.t = 0
            self.right = 0
            return self._observations(), {a: {} for a in self.agents}

        def step(self, actions):
            word = int(actions["speaker_0"])
            if not 0 <= word < targets:
                raise ValueError(f"signal: the speaker said {word}, not a word 0..{targets - 1}")
            named = int(actions["listener_0"])
            if not 0 <= named <= targets:
                raise ValueError(f"signal: the listener named {named}, not 0..{targets}")
            reward = float(named == self.target)
            self.right += int(reward)
            self.word = word
            self.t += 1
            over = self.t >= length
            agents = self.agents
            self.agents = [] if over else list(agents)
            return (
                self._observations(),
                {a: reward for a in agents},
                {a: over for a in agents},
                {a: False for a in agents},
                {a: {"right": self.right} for a in agents},
            )

    return Signal()
