"""herd_env.wrappers.ActionMaskObservation: an action_masks() method into the observation."""
import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from herd_env.games import TicTacToe
from herd_env.make import make_env
from herd_env.spaces import Flattener
from herd_env.wrappers import ActionMaskObservation


class BoardOnly(TicTacToe):
    """TicTacToe as sb3-contrib's users write it: the board alone, the mask by method."""

    def __init__(self):
        super().__init__()
        self.observation_space = self.observation_space["board"]

    def _obs(self):
        return super()._obs()["board"]


def test_the_mask_becomes_the_entry_herd_reads():
    env = ActionMaskObservation(BoardOnly())
    assert set(env.observation_space.spaces) == {"action_mask", "observation"}
    flat = Flattener(env.observation_space)
    obs, _ = env.reset(seed=2)
    for _ in range(3):
        np.testing.assert_array_equal(obs["action_mask"], (env.unwrapped.board == 0).astype(np.int8))
        assert env.observation_space.contains(obs)
        row = np.zeros(flat.size, np.float32)
        flat(obs, row)
        np.testing.assert_array_equal(row[:9], obs["action_mask"])  # first: keys sort
        legal = np.flatnonzero(obs["action_mask"])
        obs, _, done, _, _ = env.step(int(legal[0]))
        if done:
            break


def test_a_dict_observation_gains_the_entry_under_the_runs_key():
    class Dicty(BoardOnly):
        def __init__(self):
            super().__init__()
            self.observation_space = spaces.Dict({"board": self.observation_space})

        def _obs(self):
            return {"board": super()._obs()}

    env = ActionMaskObservation(Dicty(), key="legal")
    assert set(env.observation_space.spaces) == {"board", "legal"}
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def test_what_cannot_be_wrapped_is_said():
    with pytest.raises(ValueError, match="has no action_masks"):
        ActionMaskObservation(make_env("CartPole-v1"))
    with pytest.raises(ValueError, match="already has a 'action_mask' entry"):
        ActionMaskObservation(TicTacToe())


def test_env_wrappers_names_it_by_import_path():
    gymnasium.register("HerdTest/BoardOnly-v0", entry_point=BoardOnly)
    env = make_env("HerdTest/BoardOnly-v0", wrappers=["herd_env.wrappers:ActionMaskObservation"])
    obs, _ = env.reset(seed=1)
    assert set(obs) == {"action_mask", "observation"} and obs["action_mask"].sum() in (8, 9)
    with pytest.raises(ValueError, match="has no action_masks"):
        make_env("CartPole-v1", wrappers=["herd_env.wrappers:ActionMaskObservation"])
