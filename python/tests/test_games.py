"""herd_env.games: TicTacToe's rules and its action mask."""
import gymnasium
import numpy as np
from gymnasium.utils.env_checker import check_env

import herd_env.games  # noqa: F401  (registers Herd/TicTacToe-v0)
from herd_env.games import TicTacToe
from herd_env.spaces import Flattener, describe


def test_it_passes_gymnasiums_checker():
    check_env(TicTacToe(), skip_render_check=True)


def test_the_mask_is_the_empty_squares_and_comes_first_in_the_flat_vector():
    env = gymnasium.make("Herd/TicTacToe-v0")
    flat = Flattener(env.observation_space)
    assert [e["key"] for e in describe(env.observation_space)["spaces"]] == ["action_mask", "board"]
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            board = env.unwrapped.board
            np.testing.assert_array_equal(obs["action_mask"], (board == 0).astype(np.int8))
            row = np.zeros(flat.size, np.float32)
            flat(obs, row)
            np.testing.assert_array_equal(row[:9], obs["action_mask"])
            np.testing.assert_array_equal(env.unwrapped.action_masks(), obs["action_mask"])
            legal = np.flatnonzero(obs["action_mask"])
            obs, reward, done, truncated, info = env.step(int(env.unwrapped.np_random.choice(legal)))
            assert not truncated
        assert info["illegal"] == 0 and reward in (-1.0, 0.0, 1.0)
        assert (reward == 1.0) == (info["win"] == 1) and (reward == 0.0) == (info["draw"] == 1)


def test_a_move_on_a_taken_square_loses_at_once():
    env = TicTacToe()
    env.reset(seed=3)
    env.board[:] = 0
    env.board[4] = 2
    obs, reward, done, _, info = env.step(4)
    assert done and reward == -1.0 and info == {"win": 0, "draw": 0, "illegal": 1}


def test_three_in_a_row_wins_and_the_opponent_plays_only_empty_squares():
    env = TicTacToe()
    env.reset(seed=0)
    env.board[:] = [1, 1, 0, 2, 2, 0, 0, 0, 0]
    _, reward, done, _, info = env.step(2)
    assert done and reward == 1.0 and info["win"] == 1
    env.reset(seed=1)
    for _ in range(200):
        env.board[:] = 0
        env.board[[0, 1, 2, 3]] = [1, 2, 1, 2]
        before = env.board.copy()
        env._opponent()
        changed = np.flatnonzero(env.board != before)
        assert len(changed) == 1 and before[changed[0]] == 0 and env.board[changed[0]] == 2


def test_a_full_board_without_a_line_is_a_draw():
    env = TicTacToe()
    env.reset(seed=0)
    env.board[:] = [1, 2, 1, 1, 2, 2, 2, 1, 0]
    _, reward, done, _, info = env.step(8)
    assert done and reward == 0.0 and info["draw"] == 1
