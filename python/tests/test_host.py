"""The host against plain Gymnasium, its faults, and the process protocol."""

import json
import os
import signal
import subprocess
import sys
import time

import gymnasium
import numpy as np
import pytest

import herd_env.testing_envs  # noqa: F401
from herd_env import layout as L
from herd_env.host import REMAKE_SEED_STRIDE, EpisodeRecorder, Host
from herd_env.make import make_env
from herd_env.spaces import Flattener


def attached(env_id, config, count, seed, first_index=0, info_keys=()):
    host = Host(env_id, config, count, seed, first_index, info_keys=info_keys)
    lay = L.Layout(
        count, host.flatten.size, host.mapper.dims, np.dtype(host.flatten.dtype).itemsize, len(info_keys)
    )
    buf = bytearray(lay.size)
    buf[:64] = lay.header()
    host.attach(buf)
    return host


@pytest.mark.parametrize(
    "env_id, config",
    [
        ("CartPole-v1", {"max_episode_steps": 25}),  # terminations and truncations
        ("popgym-RepeatPreviousEasy-v0", {}),
        ("MiniGrid-MemoryS7-v0", {}),
    ],
)
@pytest.mark.parametrize("split", [False, True])
def test_host_steps_exactly_like_gymnasium(env_id, config, split):
    """Same seeds, same actions: every observation, reward and flag equal, across
    episodes and autoresets (same-step autoreset: the final observation in its own
    rows, the next episode's first observation in place). Split: the copies are
    stepped in two groups of rows, as a worker with two groups per host does."""
    k, seed, first = 3, 11, 5
    host = attached(env_id, config, k, seed, first)
    plain = [make_env(env_id, config) for _ in range(k)]
    flat = Flattener(plain[0].observation_space)
    expect = np.zeros(host.flatten.size, host.flatten.dtype)
    host.reset()
    current = [env.reset(seed=seed + first + i)[0] for i, env in enumerate(plain)]
    for i in range(k):
        flat(current[i], expect)
        assert np.array_equal(host.obs[i], expect)
    rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(300):
        actions = rng.integers(0, plain[0].action_space.n, size=k)
        host.actions[:, 0] = actions
        if split:
            host.step(0, 1)
            host.step(1, k)
        else:
            host.step()
        for i, env in enumerate(plain):
            o, r, term, trunc, _ = env.step(int(actions[i]))
            assert host.rewards[i] == np.float32(r)
            assert bool(host.flags[i] & L.TERMINATED) == term and bool(host.flags[i] & L.TRUNCATED) == trunc
            if term or trunc:
                episodes += 1
                flat(o, expect)
                assert np.array_equal(host.final[i], expect)
                o, _ = env.reset()
            flat(o, expect)
            assert np.array_equal(host.obs[i], expect)
    assert episodes >= 6, "the comparison must cross several episode ends"


def test_a_step_that_raises_ends_the_episode_and_remakes_the_env():
    host = attached("HerdTest/Flaky-v0", {"fail_every": 4}, 2, 0)
    host.reset()
    seen = []
    for n in range(5):
        before = host.obs.copy()
        host.step()
        seen.append(host.flags.tolist())
        if n == 3:
            # The 4th call raises: truncated + error (the worker bootstraps from the
            # observation before the step, t = 3), and the remade env starts at t = 0.
            assert before.tolist() == [[np.float32(0.3)], [np.float32(0.3)]]
            assert host.obs.tolist() == [[0.0], [0.0]]
    assert seen[3] == [L.TRUNCATED | L.STEP_ERROR] * 2
    assert host.remakes == [1, 1]
    assert seen[4] == [0, 0]  # the new env counts its own calls


def test_an_observation_of_another_shape_ends_the_episode_and_remakes_the_env(capsys):
    # Its 3rd step's observation has 3 entries where the space has 1: an error
    # of that copy's, not the host's end.
    host = attached("HerdTest/Misshapen-v0", {"bad_every": 3}, 2, 0)
    host.reset()
    for n in range(4):
        host.step()
        if n < 2:
            assert host.flags.tolist() == [0, 0]
    # The 4th step is the remade copies' first: t = 1 again, no flags.
    assert host.remakes == [1, 1]
    assert host.flags.tolist() == [0, 0] and host.obs.tolist() == [[np.float32(0.1)], [np.float32(0.1)]]
    err = capsys.readouterr().err
    assert "returned an observation that does not fit its space" in err and err.count("could not broadcast") == 1


def test_an_observation_of_another_shape_is_flagged_as_an_error():
    host = attached("HerdTest/Misshapen-v0", {"bad_every": 2}, 1, 0)
    host.reset()
    host.step()
    host.step()
    assert host.flags[0] == L.TRUNCATED | L.STEP_ERROR and host.rewards[0] == 0.0
    assert host.obs.tolist() == [[0.0]], "the remade copy's first observation"


def test_a_reset_that_raises_keeps_the_episode_end_and_remakes_the_env(capsys):
    # Episodes of 2 steps; the 2nd reset (the autoreset after the first episode) raises.
    host = attached("HerdTest/Misshapen-v0", {"reset_fails_every": 2, "length": 2}, 1, 0)
    host.reset()
    host.step()
    host.step()
    assert host.flags[0] == L.TERMINATED, "the episode ended as the environment said"
    assert host.rewards[0] == 1.0 and host.final.tolist() == [[1.0]]
    assert host.remakes == [1] and host.obs.tolist() == [[0.0]]
    assert "raised in reset after its episode ended" in capsys.readouterr().err
    host.step()
    assert host.flags[0] == 0


def test_remade_env_gets_its_own_seed():
    host = attached("HerdTest/Flaky-v0", {"fail_every": 1}, 1, 100, 2)
    host.reset()
    host.step()
    assert host.envs[0].np_random_seed == 100 + 2 + REMAKE_SEED_STRIDE


def test_non_finite_observation_ends_the_episode_and_resets():
    host = attached("HerdTest/NonFinite-v0", {"bad_every": 3}, 1, 0)
    host.reset()
    for _ in range(2):
        host.step()
        assert host.flags[0] == 0
    host.step()
    assert host.flags[0] == L.TRUNCATED | L.NON_FINITE
    assert np.isfinite(host.obs).all() and host.obs[0, 0] == 0.0
    host.step()
    assert host.flags[0] == 0, "a stale non-finite final row does not flag later steps"


def test_episode_info_keys_are_read_from_the_last_steps_info(capsys):
    """Each key of an episode's last info in its row (a bool as 1 or 0), NaN for a
    key it lacks or a value that is not a number, each said once."""
    keys = ["is_success", "steps", "odd", "label", "missing"]
    host = attached("HerdTest/Scored-v0", {"length": 3}, 2, 0, info_keys=keys)
    host.reset()
    host.episode_info[:] = -7.0
    for episode in range(1, 4):
        for t in range(3):
            host.actions[:, 0] = [1, 0] if t == 2 else [0, 1]
            host.step()
            if t < 2:
                assert host.flags.tolist() == [0, 0]
        assert host.flags.tolist() == [L.TERMINATED] * 2
        rows = host.episode_info
        assert rows[:, :3].tolist()[0][:2] == [1.0, 3.0] and rows[1, :2].tolist() == [0.0, 3.0]
        odd = rows[:, 2]
        assert (odd == 1.0).all() if episode % 2 == 1 else np.isnan(odd).all(), episode
        assert np.isnan(rows[:, 3:]).all()
    err = capsys.readouterr().err
    assert err.count("info['label'] at an episode's end is str 'done', not a number") == 1
    assert err.count("an episode ended without 'missing' in its info (its keys: 'is_success', 'label', 'odd', 'steps')") == 1
    assert err.count("without 'odd'") == 1



def test_a_misspelt_info_key_gets_a_suggestion(capsys):
    host = attached("HerdTest/Scored-v0", {"length": 1}, 1, 0, info_keys=["is_sucess"])
    host.reset()
    host.step()
    assert np.isnan(host.episode_info[0, 0])
    assert "without 'is_sucess' in its info (did you mean 'is_success'?)" in capsys.readouterr().err


def test_an_episode_that_ends_in_an_error_has_no_info():
    host = attached("HerdTest/Flaky-v0", {"fail_every": 2}, 1, 0, info_keys=["x"])
    host.reset()
    host.episode_info[:] = 5.0
    host.step()
    host.step()
    assert host.flags[0] == L.TRUNCATED | L.STEP_ERROR and np.isnan(host.episode_info[0, 0])


def test_without_info_keys_the_layout_has_no_info_rows():
    host = attached("HerdTest/Scored-v0", {"length": 1}, 1, 0)
    host.reset()
    host.step()
    assert host.flags[0] == L.TERMINATED and host.episode_info.shape == (1, 0)


def test_a_worker_of_another_layout_version_is_named_as_such():
    host = Host("HerdTest/Scored-v0", {}, 1, 0, 0)
    lay = L.Layout(1, 1, 1, 4)
    buf = bytearray(lay.size)
    buf[:64] = lay.header()
    buf[4:8] = (L.VERSION + 1).to_bytes(4, "little")
    with pytest.raises(ValueError, match=f"the worker lays out shared memory version {L.VERSION + 1}, this herd_env"):
        host.attach(buf)


def test_the_info_keys_count_is_in_the_header():
    with pytest.raises(ValueError, match="is not this host's"):
        host = Host("HerdTest/Scored-v0", {}, 1, 0, 0, info_keys=["a"])
        lay = L.Layout(1, 1, 1, 4, 2)
        buf = bytearray(lay.size)
        buf[:64] = lay.header()
        host.attach(buf)


def spawn(args, shm_fd):
    return subprocess.Popen(
        [sys.executable, "-m", "herd_env.host", *args, "--shm-fd", str(shm_fd)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(shm_fd,),
        cwd=os.path.join(os.path.dirname(__file__), ".."),
    )


def test_process_protocol_over_pipes_and_shared_memory():
    fd = os.memfd_create("herd-test")
    p = spawn(["--env", "CartPole-v1", "--config", '{"max_episode_steps": 5}', "--count", "2", "--seed", "3"], fd)
    spec = json.loads(p.stdout.readline())
    assert spec["id"] == "CartPole-v1" and spec["config"] == '{"max_episode_steps": 5}'
    assert spec["observation"]["shape"] == [4] and spec["action"] == {"type": "discrete", "n": 2, "start": 0}
    assert spec["layout"] == L.VERSION and spec["herd_env"] == os.path.dirname(os.path.abspath(L.__file__))
    lay = L.Layout(2, 4, 1, 4)
    os.ftruncate(fd, lay.size)
    os.pwrite(fd, lay.header(), 0)
    import mmap

    buf = mmap.mmap(fd, lay.size)
    v = lay.views(buf, np.float32)

    def ask(c):
        p.stdin.write(c)
        p.stdin.flush()
        return p.stdout.read(1)

    assert ask(b"M") == b"m" and ask(b"R") == b"r"
    expect = gymnasium.make("CartPole-v1").reset(seed=3)[0]
    assert np.array_equal(v["observations"][0], expect)
    for _ in range(5):
        v["actions"][:, 0] = 1
        assert ask(b"S") == b"s"
    assert (v["flags"] & L.TRUNCATED).all()  # the 5-step limit
    p.stdin.write(b"Q")
    p.stdin.close()
    assert p.wait(timeout=10) == 0


def test_group_commands_step_only_their_rows():
    """With --groups 2, "a" steps copy 0 and "b" copy 1 (of 2); each answers "s"."""
    fd = os.memfd_create("herd-test")
    args = ["--env", "CartPole-v1", "--config", '{"max_episode_steps": 3}', "--count", "2", "--groups", "2"]
    p = spawn(args, fd)
    json.loads(p.stdout.readline())
    lay = L.Layout(2, 4, 1, 4)
    os.ftruncate(fd, lay.size)
    os.pwrite(fd, lay.header(), 0)
    import mmap

    v = lay.views(mmap.mmap(fd, lay.size), np.float32)

    def ask(c):
        p.stdin.write(c)
        p.stdin.flush()
        return p.stdout.read(1)

    assert ask(b"M") == b"m" and ask(b"R") == b"r"
    v["actions"][:, 0] = 0
    for _ in range(3):
        assert ask(b"a") == b"s"
    assert v["flags"][0] & L.TRUNCATED and v["flags"][1] == 0, "copy 1 has not stepped"
    before = v["observations"][1].copy()
    assert ask(b"b") == b"s" and not np.array_equal(v["observations"][1], before)
    p.stdin.write(b"Q")
    p.stdin.close()
    assert p.wait(timeout=10) == 0


def test_groups_outside_the_copies_are_refused():
    p = subprocess.run(
        [sys.executable, "-m", "herd_env.host", "--env", "CartPole-v1", "--count", "2", "--groups", "3"],
        capture_output=True, text=True, cwd=os.path.join(os.path.dirname(__file__), ".."),
    )
    assert p.returncode == 2 and "--groups 3: must be in 1..2" in p.stderr


def test_unknown_id_is_one_error_line_and_status_2():
    fd = os.memfd_create("herd-test")
    p = spawn(["--env", "NoSuchEnv-v9", "--count", "1"], fd)
    line = json.loads(p.stdout.readline())
    assert "NoSuchEnv" in line["error"]
    assert p.wait(timeout=10) == 2


def test_closing_the_command_pipe_ends_the_host():
    fd = os.memfd_create("herd-test")
    p = spawn(["--env", "CartPole-v1", "--count", "1"], fd)
    json.loads(p.stdout.readline())
    p.stdin.close()
    assert p.wait(timeout=10) == 0


def test_sigusr1_prints_the_python_stack_of_a_hung_step():
    """A worker that takes its host as hung sends SIGUSR1 before killing it: the
    host writes where it is stuck (every thread's stack) to stderr, the worker's log."""
    fd = os.memfd_create("herd-test")
    args = ["--env", "herd_env.testing_envs:HerdTest/Slow-v0", "--config", '{"slow_every": 1, "seconds": 60}']
    p = spawn(args + ["--count", "1"], fd)
    json.loads(p.stdout.readline())
    lay = L.Layout(1, 1, 1, 4)
    os.ftruncate(fd, lay.size)
    os.pwrite(fd, lay.header(), 0)

    def ask(c):
        p.stdin.write(c)
        p.stdin.flush()
        return p.stdout.read(1)

    assert ask(b"M") == b"m" and ask(b"R") == b"r"
    p.stdin.write(b"S")  # sleeps for a minute in Slow._sleep
    p.stdin.flush()
    time.sleep(1.0)
    assert p.poll() is None
    p.send_signal(signal.SIGUSR1)
    time.sleep(0.5)
    assert p.poll() is None, "the stack is printed, the host is not ended by it"
    p.kill()
    p.wait(timeout=10)
    err = p.stderr.read().decode()
    assert "most recent call first" in err and "in _sleep" in err and "testing_envs.py" in err, err


def test_an_environments_prints_do_not_reach_the_reply_pipe():
    fd = os.memfd_create("herd-test")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(__file__))
    p = subprocess.Popen(
        [sys.executable, "-m", "herd_env.host", "--env", "chatty_env:Chatty-v0", "--count", "1", "--shm-fd", str(fd)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(fd,), env=env,
        cwd=os.path.join(os.path.dirname(__file__), ".."),
    )
    spec = json.loads(p.stdout.readline())
    assert spec["id"] == "chatty_env:Chatty-v0"
    p.stdin.close()
    assert p.wait(timeout=10) == 0
    assert b"hello from Chatty" in p.stderr.read()


def test_record_writes_copy_zeros_first_episode_as_a_gif(tmp_path, capfd):
    """--record: a frame after the reset and after each step of copy 0's first
    episode, written when it ends; later episodes are not recorded."""
    from PIL import Image

    path = str(tmp_path / "episode.gif")
    host = Host("CartPole-v1", {"max_episode_steps": 12}, 2, 0, 0, record=path)
    lay = L.Layout(2, 4, 1, 4)
    buf = bytearray(lay.size)
    buf[:64] = lay.header()
    host.attach(buf)
    host.reset()
    host.actions[:, 0] = 0
    steps = 0
    while not host.flags[0]:
        assert not os.path.exists(path), "written only when the episode ends"
        host.step()
        steps += 1
    assert steps <= 12
    assert f"recorded an episode of {steps + 1} frames" in capfd.readouterr().err
    with Image.open(path) as gif:
        # Pillow merges identical neighbouring frames.
        assert gif.format == "GIF" and 2 <= gif.n_frames <= steps + 1 and gif.width <= 320
    written = os.path.getmtime(path)
    for _ in range(30):
        host.step()
    assert os.path.getmtime(path) == written and not os.path.exists(path + ".tmp")


def _recording_host(env_id, config, path, count=2):
    host = Host(env_id, config, count, 0, 0, record=path)
    lay = L.Layout(count, host.flatten.size, host.mapper.dims, 4)
    buf = bytearray(lay.size)
    buf[:64] = lay.header()
    host.attach(buf)
    return host


def test_a_renderer_that_fails_stops_the_recording_not_the_host(tmp_path, capfd):
    """A copy 0 that cannot render: one line says so, the episodes go on (the
    host raised out of its reset before and was restarted without the recording)."""
    path = str(tmp_path / "episode.gif")
    host = _recording_host("HerdTest/BrokenRender-v0", {}, path)
    host.reset()
    for _ in range(12):
        host.step()
    err = capfd.readouterr().err
    assert f"recording to {path} failed, the episodes go on without it: RuntimeError: no display to render on" in err
    assert err.count("recording to") == 1
    assert host.recorder is None and not os.path.exists(path)


def test_headless_sends_mujoco_to_egl_only_without_a_display(monkeypatch):
    for display, preset, expected in [(None, None, "egl"), (":0", None, None), (None, "osmesa", "osmesa")]:
        for name, value in [("DISPLAY", display), ("MUJOCO_GL", preset)]:
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        EpisodeRecorder.headless()
        assert os.environ.get("MUJOCO_GL") == expected, (display, preset)


def test_a_mujoco_episode_records_without_a_display(tmp_path, capfd):
    """HalfCheetah's renderer (GLFW by default) needs a display; the host records
    it without one (MuJoCo on EGL), in a fresh process as the worker starts it,
    through the camera that follows the body."""
    pytest.importorskip("mujoco")
    path = tmp_path / "cheetah.gif"
    script = (
        "import sys; from herd_env.host import Host; from herd_env import layout as L\n"
        f"h = Host('HalfCheetah-v5', {{'max_episode_steps': 5}}, 1, 0, 0, record={str(path)!r})\n"
        "lay = L.Layout(1, h.flatten.size, h.mapper.dims, 4); buf = bytearray(lay.size); buf[:64] = lay.header()\n"
        "h.attach(buf); h.reset()\n"
        "for _ in range(5): h.step()\n"
        "print(h.envs[0].unwrapped.mujoco_renderer.camera_id)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MUJOCO_GL", "PYOPENGL_PLATFORM")}
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "recorded an episode of 6 frames" in r.stderr, r.stderr
    assert path.read_bytes().startswith(b"GIF89a")
    # Filmed through the model's "track" camera (id 0 in half_cheetah.xml), which
    # follows the body; the free camera (-1) stays behind.
    assert r.stdout.split() == ["0"], r.stdout
