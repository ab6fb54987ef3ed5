"""herd_env.bench, the reference side of `herd bench envhost`, on every action space Herd acts in."""

import json

import numpy as np
import pytest
from gymnasium import spaces

from herd_env import bench


@pytest.mark.parametrize(
    "space",
    [
        spaces.Discrete(3, start=-1),
        spaces.MultiDiscrete([2, 5], start=[1, -2]),
        spaces.Box(-2, 2, (3,), np.float32),
        spaces.Box(np.array([-np.inf, 0], np.float32), np.array([np.inf, 1], np.float32)),
    ],
)
def test_random_actions_are_k_members_of_the_space(space):
    rng = np.random.default_rng(0)
    actions = bench.random_actions(space, rng, 64)
    assert len(actions) == 64
    assert all(space.contains(a) for a in actions), actions[:4]
    # More than one value: not a constant that happens to be in the space.
    assert len({np.asarray(a).tobytes() for a in actions}) > 1


@pytest.mark.parametrize("mode", ["loop", "sync"])
@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])
def test_the_reference_rate_runs_for_discrete_and_box_actions(env, mode, capsys):
    bench.main(["--env", env, "--mode", mode, "--count", "2", "--seconds", "0.05"])
    result = json.loads(capsys.readouterr().out)
    assert result["env"] == env and result["mode"] == mode and result["steps_per_second"] > 0
