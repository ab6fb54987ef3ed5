"""Herd's Atari preprocessing: its logic on a scripted ALE stand-in, then on ALE itself."""

import subprocess
import sys

import gymnasium
import numpy as np
import pytest

from herd_env.atari import AtariFrames, split_options
from herd_env.make import make_env


class Scripted(gymnasium.Env):
    """Grey 210x160 frames whose value is the frame count; reward 1 per frame;
    the episode terminates on frame `end`. Records the actions it gets."""

    observation_space = gymnasium.spaces.Box(0, 255, (210, 160), np.uint8)
    action_space = gymnasium.spaces.Discrete(3)

    def __init__(self, end=1000, flicker=False):
        self.end, self.flicker, self.t, self.actions = end, flicker, 0, []

    def get_action_meanings(self):
        return ["NOOP", "FIRE", "UP"]

    def frame(self):
        f = np.full((210, 160), self.t % 200, np.uint8)
        if self.flicker and self.t % 2 == 1:
            f[:, :] = 0  # odd frames blank: a max over two frames hides it
        return f

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.frame(), {}

    def step(self, action):
        self.actions.append(int(action))
        self.t += 1
        return self.frame(), 1.0, self.t >= self.end, False, {}


def test_frame_skip_sums_rewards_and_maxes_the_last_two_frames():
    inner = Scripted(flicker=True)
    env = AtariFrames(inner, noop_max=0, frame_skip=4, screen_size=84, frame_stack=1)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (84, 84, 1) and obs.dtype == np.uint8
    obs, reward, term, trunc, _ = env.step(2)
    assert reward == 4.0 and not term and inner.actions == [2, 2, 2, 2]
    # Frames 3 (blank) and 4 (value 4): the max shows 4.
    assert np.all(obs == 4)


def test_noop_starts_are_bounded_and_vary():
    counts = set()
    for seed in range(20):
        inner = Scripted()
        env = AtariFrames(inner, noop_max=5, frame_skip=4, screen_size=84)
        env.reset(seed=seed)
        assert 1 <= len(inner.actions) <= 5 and set(inner.actions) == {0}
        counts.add(len(inner.actions))
    assert len(counts) >= 3


def test_frames_stack_as_channels_oldest_first_and_episodes_end():
    inner = Scripted(end=10)
    env = AtariFrames(inner, noop_max=0, frame_skip=4, screen_size=8, frame_stack=3)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (8, 8, 3) and np.all(obs == 0), "the reset frame fills the stack"
    obs, *_ = env.step(0)
    obs, r, term, *_ = env.step(0)
    assert [int(obs[0, 0, c]) for c in range(3)] == [0, 4, 8]
    obs, r, term, *_ = env.step(0)
    assert term and r == 2.0, "the skip stops at the episode's end"
    assert env.observation_space.shape == (8, 8, 3)


def test_options_are_checked():
    opts, rest = split_options({"frame_stack": 4, "repeat_action_probability": 0.0})
    assert opts["frame_stack"] == 4 and rest == {"repeat_action_probability": 0.0}
    with pytest.raises(ValueError, match="frame_stack"):
        split_options({"frame_stack": 0})


def test_pong_through_make_env():
    pytest.importorskip("ale_py")
    env = make_env("ALE/Pong-v5", {"frame_stack": 2})
    obs, _ = env.reset(seed=1)
    assert obs.shape == (84, 84, 2) and obs.dtype == np.uint8
    assert env.observation_space.shape == (84, 84, 2) and env.action_space.n == 6
    total = 0.0
    for _ in range(50):
        obs, r, term, trunc, _ = env.step(env.action_space.sample())
        total += r
    assert obs.max() > obs.min(), "the frame shows something"
    raw = make_env("ALE/Pong-v5", {"atari_preprocessing": False})
    assert raw.observation_space.shape == (210, 160, 3)
    with pytest.raises(ValueError, match="frameskip"):
        make_env("ALE/Pong-v5", {"frameskip": 2})


def test_ale_prints_no_banner():
    """A fresh process making Pong prints no ALE banner on stderr (ALE's C++
    writes it to file descriptor 2 once per process, so only another process
    sees it)."""
    pytest.importorskip("ale_py")
    script = (
        "import ale_py\n"
        "from herd_env.make import make_env\n"
        "env = make_env('ALE/Pong-v5')\n"
        "env.reset(seed=1)\n"
        "env.step(0)\n"
        "env.close()\n"
        "print('made')\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "made" in r.stdout, r.stderr
    assert "Stella" not in r.stderr and "Arcade Learning Environment" not in r.stderr, r.stderr
