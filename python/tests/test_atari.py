"""Herd's Atari preprocessing: its logic on a scripted ALE stand-in, then on ALE itself."""

import subprocess
import sys

import gymnasium
import numpy as np
import pytest

from herd_env import layout as L
from herd_env.atari import AreaResize, AtariFrames, split_options, vector_obstacle
from herd_env.host import Host
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
    env = AtariFrames(inner, noop_max=1, frame_skip=4, screen_size=8, frame_stack=3)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (8, 8, 3)
    assert [int(obs[0, 0, c]) for c in range(3)] == [0, 0, 1], "black frames, then the first (after one no-op)"
    obs, *_ = env.step(0)
    obs, r, term, *_ = env.step(0)
    assert [int(obs[0, 0, c]) for c in range(3)] == [1, 5, 9]
    obs, r, term, *_ = env.step(0)
    assert term and r == 1.0, "the skip stops at the episode's end"
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
        "from herd_env.atari import AtariVector\n"
        "v = AtariVector('ALE/Pong-v5', {}, 2)\n"
        "v.reset([1, 2])\n"
        "v.step([0, 0])\n"
        "v.close()\n"
        "print('made')\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "made" in r.stdout, r.stderr
    assert "Stella" not in r.stderr and "Arcade Learning Environment" not in r.stderr, r.stderr


def test_area_resize_averages_over_areas():
    """Hand-computed: 5 x 4 to 2 x 2 averages spans of 2.5 rows and 2 columns; a
    row cut in half counts half. Rounding is half to even, as OpenCV's."""
    frame = np.arange(20, dtype=np.uint8).reshape(5, 4) * 10
    out = AreaResize(5, 4, 2, 2)(frame)
    rows = frame.astype(np.float64)
    top = (rows[0] + rows[1] + 0.5 * rows[2]) / 2.5
    bottom = (0.5 * rows[2] + rows[3] + rows[4]) / 2.5
    expect = np.array([[top[:2].mean(), top[2:].mean()], [bottom[:2].mean(), bottom[2:].mean()]])
    assert np.array_equal(out, np.rint(expect).astype(np.uint8)), (out, expect)
    assert out.dtype == np.uint8 and out.shape == (2, 2)
    flat = np.full((210, 160), 77, np.uint8)
    assert np.all(AreaResize(210, 160, 84, 84)(flat) == 77), "a flat frame stays flat"
    half = np.zeros((2, 2), np.uint8)
    half[0, 0] = 1
    half[1, 1] = 1
    assert AreaResize(2, 2, 1, 1)(half)[0, 0] == 0, "0.5 rounds to the even 0"
    half[0, 1] = 2
    assert AreaResize(2, 2, 1, 1)(half)[0, 0] == 1, "1.0"


def test_which_configs_ale_vector_environment_takes(capfd):
    pytest.importorskip("ale_py.vector_env")
    assert vector_obstacle("ALE/Pong-v5", {}) is None
    assert vector_obstacle("ALE/Pong-v5", {"frame_stack": 4, "repeat_action_probability": 0.0}) is None
    assert vector_obstacle("ALE/Pong-v5", {"max_num_frames_per_episode": 400, "full_action_space": True}) is None
    assert vector_obstacle("ALE/Pong-v5", {"mode": 1, "difficulty": 0}) == (
        "ALE's vector environment takes no 'difficulty', 'mode'", False)
    assert vector_obstacle("ALE/Pong-v5", {"max_episode_steps": 100})[0].endswith("'max_episode_steps'")
    assert vector_obstacle("ALE/Pong-v5", {"vector_env": False}) == ("vector_env is false", True)
    assert vector_obstacle("ALE/Pong-v5", {"atari_preprocessing": False}) == ("atari_preprocessing is false", True)
    assert vector_obstacle("ALE/Pong-v5", {}, render_mode="rgb_array")[1]
    assert "screen_size 160" in vector_obstacle("ALE/Pong-v5", {"screen_size": 160})[0]
    # ALE's vector environment gives an ended episode's row the next episode's info.
    reason, chosen = vector_obstacle("ALE/Pong-v5", {}, info_keys=["lives"])
    assert reason.startswith("episode_info_keys reads each episode's last info") and not chosen
    with pytest.raises(ValueError, match="vector_env = 'yes' is invalid: must be true or false"):
        split_options({"vector_env": "yes"})
    # A host says why it steps in Python only when an option the user set forces it.
    capfd.readouterr()
    for config in ({}, {"vector_env": False}):
        Host("ALE/Pong-v5", config, 2, 0, 0).close()
    assert "Python" not in capfd.readouterr().err
    host = Host("ALE/Pong-v5", {"mode": 1}, 2, 0, 0)
    assert not host.vectors
    host.close()
    err = capfd.readouterr().err
    assert "ALE/Pong-v5: stepped one copy at a time in Python, more slowly: ALE's vector environment takes no 'mode'" in err


def attached(env_id, config, count, seed, groups):
    host = Host(env_id, config, count, seed, 0, groups=groups)
    lay = L.Layout(count, host.flatten.size, host.mapper.dims, np.dtype(host.flatten.dtype).itemsize)
    buf = bytearray(lay.size)
    buf[:64] = lay.header()
    host.attach(buf)
    return host


@pytest.mark.parametrize("game, stack", [("ALE/Breakout-v5", 2), ("ALE/MsPacman-v5", 1)])
def test_the_vector_environment_and_the_wrapper_give_the_same_steps(game, stack):
    """Both implementations, in hosts of two row groups, without no-op starts and
    sticky actions: the same actions give the same observations (every pixel:
    the resize repeats OpenCV's arithmetic), rewards and episode ends, across ALE's
    time limit (400 frames here); a final observation's older frames are the same,
    its newest one is made of earlier frames in the vector environment."""
    pytest.importorskip("ale_py.vector_env")
    config = {"noop_max": 0, "repeat_action_probability": 0.0, "max_num_frames_per_episode": 400, "frame_stack": stack}
    k, groups = 4, [(0, 2), (2, 4)]
    vector = attached(game, config, k, 7, groups)
    python = attached(game, dict(config, vector_env=False), k, 7, groups)
    assert len(vector.vectors) == 2 and not python.vectors
    assert vector.observation_space == python.observation_space
    assert vector.action_space == python.action_space
    vector.reset()
    python.reset()
    assert np.array_equal(vector.obs, python.obs)
    rng = np.random.default_rng(0)
    ends = rewarded = 0
    for t in range(250):
        actions = rng.integers(0, python.action_space.n, size=k)
        vector.actions[:, 0] = actions
        python.actions[:, 0] = actions
        for lo, hi in groups:
            vector.step(lo, hi)
            python.step(lo, hi)
        assert np.array_equal(vector.rewards, python.rewards), t
        assert np.array_equal(vector.flags, python.flags), t
        assert np.array_equal(vector.obs, python.obs), t
        rewarded += int(np.count_nonzero(python.rewards))
        for i in np.nonzero(python.flags)[0]:
            ends += 1
            v, p = vector.final_rows[i], python.final_rows[i]
            assert np.array_equal(v[:, :, :-1], p[:, :, :-1]), t
            assert np.mean(v[:, :, -1] == p[:, :, -1]) > 0.9, t
    assert ends >= 8, "the comparison must cross episode ends"
    if game == "ALE/MsPacman-v5":
        assert rewarded > 0, "and rewards"
    vector.close()
    python.close()


def test_a_vector_host_steps_whole_row_groups_only():
    pytest.importorskip("ale_py.vector_env")
    host = attached("ALE/Pong-v5", {}, 4, 0, [(0, 2), (2, 4)])
    host.reset()
    host.step()  # every group
    host.step(2, 4)
    with pytest.raises(ValueError, match="rows 1..<3 are not whole row groups"):
        host.step(1, 3)
    host.close()


def test_seeds_beyond_a_c_int_are_folded():
    """Herd's seeds are 64-bit (`herd eval --seed` gives copy i seed * 1000 + i);
    ALE's are C ints: a seed is taken modulo 2^31 - 1, the same episode as its
    remainder's."""
    pytest.importorskip("ale_py.vector_env")
    from herd_env.atari import AtariVector

    config = {"repeat_action_probability": 0.25}
    a, b = AtariVector("ALE/Pong-v5", config, 2), AtariVector("ALE/Pong-v5", config, 2)
    big = [2**40 + 3, 2**31 + 5]
    first_a = a.reset(big)
    first_b = b.reset([s % (2**31 - 1) for s in big])
    assert np.array_equal(first_a, first_b)
    for t in range(200):
        oa, ra, *_ = a.step([t % 6, (t * 7) % 6])
        ob, rb, *_ = b.step([t % 6, (t * 7) % 6])
        assert np.array_equal(oa, ob) and np.array_equal(ra, rb), t
    a.close()
    b.close()


def test_episode_info_keys_step_atari_copy_by_copy_with_each_episodes_last_info(capfd):
    pytest.importorskip("ale_py.vector_env")
    config = {"noop_max": 0, "repeat_action_probability": 0.0, "max_num_frames_per_episode": 40}
    host = Host("ALE/Pong-v5", config, 2, 0, 0, info_keys=["episode_frame_number"])
    assert not host.vectors
    lay = L.Layout(2, host.flatten.size, host.mapper.dims, 1, 1)
    buf = bytearray(lay.size)
    buf[:64] = lay.header()
    host.attach(buf)
    host.reset()
    for _ in range(10):  # 40 frames, 4 per step
        host.step()
    assert (host.flags & L.TRUNCATED).all()
    assert host.episode_info[:, 0].tolist() == [40.0, 40.0], "the ended episode's frame count, not the next one's"
    host.close()
    assert "stepped one copy at a time in Python, more slowly: episode_info_keys" in capfd.readouterr().err
