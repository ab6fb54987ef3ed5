"""env_wrappers: Gymnasium wrappers the env host puts around each copy."""

import json
import os

import gymnasium
import numpy as np
import pytest

import herd_env.testing_envs  # noqa: F401
from herd_env import layout as L
from herd_env.host import Host
from herd_env.make import load_wrapper, make_env, parse_wrappers, wrap

TIME_LIMIT_5 = ("gymnasium.wrappers:TimeLimit", {"max_episode_steps": 5})


def episode_length(env, seed=0):
    env.reset(seed=seed)
    steps = 0
    while True:
        steps += 1
        _, _, terminated, truncated, _ = env.step(0)
        if terminated or truncated:
            return steps, truncated


def test_a_wrapper_gets_its_keyword_arguments():
    plain, _ = episode_length(make_env("CartPole-v1"))
    assert plain > 5, "CartPole pushed left lasts longer than 5 steps, so the limit is what ends it"
    steps, truncated = episode_length(make_env("CartPole-v1", wrappers=[TIME_LIMIT_5]))
    assert (steps, truncated) == (5, True)


def test_wrappers_apply_innermost_first_and_both_path_forms_load():
    env = make_env(
        "MiniGrid-MemoryS7-v0",
        wrappers=[("minigrid.wrappers:OneHotPartialObsWrapper", {}), ("minigrid.wrappers.ImgObsWrapper", {})],
    )
    # One-hot first (a Dict with a 7x7x20 image), then the image alone.
    assert type(env).__name__ == "ImgObsWrapper"
    assert type(env.env).__name__ == "OneHotPartialObsWrapper"
    assert env.observation_space.shape == (7, 7, 20)
    obs, _ = env.reset(seed=1)
    assert set(np.unique(obs)) <= {0, 1}
    # The other order fails inside the one-hot wrapper, which needs the Dict.
    with pytest.raises(Exception):
        make_env(
            "MiniGrid-MemoryS7-v0",
            wrappers=[("minigrid.wrappers:ImgObsWrapper", {}), ("minigrid.wrappers:OneHotPartialObsWrapper", {})],
        )


def test_a_dotted_attribute_after_the_colon():
    assert load_wrapper("gymnasium:wrappers.TimeLimit") is gymnasium.wrappers.TimeLimit


@pytest.mark.parametrize(
    "path, message",
    [
        ("no_such_module_xyz:Wrapper", "cannot import 'no_such_module_xyz'"),
        ("gymnasium.wrappers:TimeLimt", "has no 'TimeLimt' (did you mean 'TimeLimit'?)"),
        ("gymnasium:__version__", "is not a class or function"),
        ("TimeLimit", "is not module:Class"),
    ],
)
def test_a_bad_path_is_named(path, message):
    with pytest.raises(ValueError) as e:
        load_wrapper(path)
    assert message in str(e.value)
    assert "env_wrappers" in str(e.value)


def test_bad_keyword_arguments_and_a_non_environment_are_named():
    with pytest.raises(ValueError) as e:
        make_env("CartPole-v1", wrappers=[("gymnasium.wrappers:TimeLimit", {"max_steps": 5})])
    assert 'gymnasium.wrappers:TimeLimit(env, **{"max_steps": 5}) failed' in str(e.value)
    with pytest.raises(ValueError) as e:
        wrap(gymnasium.make("CartPole-v1"), [("builtins:repr", {})])
    assert "returned str, not a Gymnasium environment" in str(e.value)


def test_parse_wrappers_reads_entries_and_refuses_anything_else():
    assert parse_wrappers('["a:B", {"c.d:E": {"n": 2}}]') == [("a:B", {}), ("c.d:E", {"n": 2})]
    assert parse_wrappers('[["a:B", {}], ["c.d:E", {"n": 2}]]') == [("a:B", {}), ("c.d:E", {"n": 2})]
    assert parse_wrappers("[]") == []
    for bad in ['[3]', '[["a:B"]]', '{"a:B": {}}', '[["a:B", []]]']:
        with pytest.raises(ValueError):
            parse_wrappers(bad)


def test_the_host_wraps_every_copy_and_its_remakes():
    host = Host("HerdTest/Flaky-v0", {"fail_every": 3}, 2, 0, 0, wrappers=[TIME_LIMIT_5])
    assert all(e._max_episode_steps == 5 for e in host.envs)
    lay = L.Layout(2, host.flatten.size, host.mapper.dims, np.dtype(host.flatten.dtype).itemsize, 0)
    buf = bytearray(lay.size)
    buf[:64] = lay.header()
    host.attach(buf)
    host.reset()
    for _ in range(4):
        host.step()
    assert host.remakes[0] >= 1, "a step raised, so copy 0 was made again"
    assert host.envs[0]._max_episode_steps == 5, "a remade copy is wrapped too"


def test_the_process_reads_wrappers_from_its_command_line():
    import subprocess
    import sys

    fd = os.memfd_create("herd-test")
    args = ["--env", "CartPole-v1", "--count", "1", "--wrappers", json.dumps(["gymnasium.wrappers:FlattenObservation"])]
    p = subprocess.Popen(
        [sys.executable, "-m", "herd_env.host", *args, "--shm-fd", str(fd)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(fd,),
    )
    line = json.loads(p.stdout.readline())
    assert line["id"] == "CartPole-v1" and "error" not in line
    p.stdin.close()
    assert p.wait(timeout=10) == 0
    bad = ["--env", "CartPole-v1", "--count", "1", "--wrappers", json.dumps([{"gymnasium.wrappers:Nope": {}}])]
    p = subprocess.Popen(
        [sys.executable, "-m", "herd_env.host", *bad, "--shm-fd", str(fd)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(fd,),
    )
    line = json.loads(p.stdout.readline())
    assert "env_wrappers" in line["error"] and "'Nope'" in line["error"]
    assert p.wait(timeout=10) == 2


def test_the_recorded_copy_is_wrapped_too(tmp_path):
    host = Host("CartPole-v1", {}, 2, 0, 0, record=str(tmp_path / "episode.gif"), wrappers=[TIME_LIMIT_5])
    assert [e._max_episode_steps for e in host.envs] == [5, 5]
    assert host.envs[0].render_mode == "rgb_array"
    assert episode_length(host.envs[0]) == (5, True)


def test_entries_as_a_config_or_a_sidecar_writes_them():
    env = make_env("CartPole-v1", wrappers=[{"gymnasium.wrappers:TimeLimit": {"max_episode_steps": 3}}])
    assert episode_length(env) == (3, True)
    env = make_env("CartPole-v1", wrappers=["gymnasium.wrappers:FlattenObservation"])
    assert type(env).__name__ == "FlattenObservation"
    for bad in [3, {"a:B": {}, "c:D": {}}, {"a:B": []}, ("a:B",)]:
        with pytest.raises(ValueError) as e:
            make_env("CartPole-v1", wrappers=[bad])
        assert "env_wrappers" in str(e.value)
