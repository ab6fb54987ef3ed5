"""PettingZoo environments in the env host: a row per agent, one shared policy."""

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("pettingzoo")

from herd_env import layout as L  # noqa: E402
from herd_env import multiagent  # noqa: E402
from test_host import attached  # noqa: E402

TTT = "pz:classic/tictactoe-v3"
RACE = "pz:herd_env.testing_envs:parallel_race"


def legal_or_zero(host, rng):
    """A random legal move for each row (0 for a row whose mask is all zeros)."""
    for i in range(host.count):
        legal = np.flatnonzero(host.obs[i, :9] > 0.5)
        host.actions[i] = rng.choice(legal) if len(legal) else 0


def test_a_turn_based_game_takes_a_row_per_player_and_they_take_turns():
    host = attached(TTT, {}, 4, seed=1)
    assert host.agents == 2 and len(host.games) == 2
    host.reset()
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(200):
        movers = (host.obs[:, :9] > 0.5).any(axis=1).reshape(2, 2)
        # In each game exactly one player may move; the other's mask is zeros.
        assert (movers.sum(axis=1) == 1).all(), host.obs[:, :9]
        legal_or_zero(host, rng)
        host.step()
        for g in range(2):
            flags, rewards = host.flags[2 * g:2 * g + 2], host.rewards[2 * g:2 * g + 2]
            if flags.any():
                ended += 1
                # Both players' episodes end together, terminated, zero-sum.
                assert (flags == L.TERMINATED).all()
                assert rewards.sum() == 0 and set(rewards) <= {-1.0, 0.0, 1.0}
                # The final boards are the same game seen from each side.
                final = host.final[2 * g:2 * g + 2, 9:].reshape(2, 3, 3, 2)
                assert (final[0, :, :, 0] == final[1, :, :, 1]).all()
            else:
                assert (rewards == 0).all()
    assert ended > 10


def test_the_waiting_player_sees_the_move_it_waited_for():
    host = attached(TTT, {}, 2, seed=3)
    host.reset()
    assert host.obs[0, :9].all() and not host.obs[1, :9].any()  # player_1 opens
    host.actions[0], host.actions[1] = 4, 7  # row 1's action is ignored
    host.step()
    board_1 = host.obs[1, 9:].reshape(3, 3, 2)
    assert board_1[1, 1, 1] == 1 and board_1[:, :, 0].sum() == 0  # the opponent's centre
    assert host.obs[1, 4] == 0 and host.obs[1, 7] == 1  # its own move is still legal
    assert not host.obs[0, :9].any()


def test_against_a_random_opponent_a_game_takes_one_row_that_always_moves():
    host = attached(TTT, {"herd_opponent": "random"}, 3, seed=5)
    assert host.agents == 1 and len(host.games) == 3
    host.reset()
    rng = np.random.default_rng(1)
    seats, returns = set(), []
    for _ in range(300):
        assert (host.obs[:, :9] > 0.5).any(axis=1).all()  # never waiting
        legal_or_zero(host, rng)
        host.step()
        for i in range(3):
            if host.flags[i]:
                returns.append(host.rewards[i])
        seats.update(g.played[0] for g in host.games)
    assert seats == {"player_1", "player_2"}  # either side, game by game
    assert len(returns) > 30 and set(returns) <= {-1.0, 0.0, 1.0}


def test_an_opponent_herd_does_not_know_is_refused():
    with pytest.raises(ValueError, match="herd_opponent 'best'"):
        multiagent.make_game(TTT, {"herd_opponent": "best"})


def test_a_parallel_game_waits_for_its_slowest_agent():
    host = attached(RACE, {}, 6, seed=0, info_keys=("score",))
    assert host.agents == 3
    host.reset()
    host.actions[:] = 1
    rewards = []
    for _ in range(4):
        host.step()
        rewards.append(host.rewards[:3].copy())
        if _ < 3:
            assert not host.flags.any()
    # runner_0 needed 2: it scores twice, then waits with reward 0 and its last
    # observation; every row's episode ends when runner_2 finishes at step 4.
    assert [r[0] for r in rewards] == [1, 1, 0, 0]
    assert [r[2] for r in rewards] == [1, 1, 1, 1]
    assert (host.flags == L.TERMINATED).all()
    assert host.final[0, 0] == pytest.approx(2 / 4) and host.final[2, 0] == pytest.approx(1.0)
    assert host.episode_info[:3, 0].tolist() == [2, 3, 4]
    assert (host.obs[:, 1] == 0).all()  # reset: step count 0


def test_agents_still_running_when_a_game_is_cut_short_are_truncated():
    host = attached(RACE, {"need": [1, 9, 9], "max_cycles": 3}, 3, seed=0)
    host.reset()
    host.actions[:] = 1
    for _ in range(3):
        host.step()
    assert host.flags.tolist() == [L.TERMINATED, L.TRUNCATED, L.TRUNCATED]


def test_a_game_that_raises_ends_all_its_rows_and_is_made_again(capsys):
    host = attached(RACE, {"fail_every": 2}, 6, seed=0)
    host.reset()
    host.actions[:] = 0
    host.step()
    assert not host.flags.any()
    host.step()
    assert (host.flags == L.TRUNCATED | L.STEP_ERROR).all()
    assert host.remakes == [1, 1]
    assert "game 0 raised in step" in capsys.readouterr().err


def test_a_non_finite_reward_ends_the_game_for_all_its_rows(capsys):
    host = attached(RACE, {"nan_every": 2}, 3, seed=0)
    host.reset()
    host.actions[:] = 0
    host.step()
    assert not host.flags.any()
    host.step()
    assert (host.flags == L.TRUNCATED | L.NON_FINITE).all()
    assert np.isfinite(host.rewards).all() and host.rewards[1] == 0
    assert (host.obs[:, 1] == 0).all()  # reset
    assert "game 0 gave a non-finite observation or reward" in capsys.readouterr().err


def test_a_parallel_game_against_random_moves_takes_one_row():
    host = attached("pz:classic/rps-v2", {"herd_opponent": "random"}, 2, seed=4)
    assert host.agents == 1
    host.reset()
    rewards, games = [], 0
    for _ in range(400):
        host.actions[:] = 0  # always rock
        host.step()
        rewards += host.rewards.tolist()
        games += int((host.flags != 0).sum())
    # Rock against uniform moves: won, lost and drawn about a third of the time each.
    counts = [rewards.count(r) for r in (1.0, -1.0, 0.0)]
    assert games >= 2 and all(180 < c < 360 for c in counts), counts


def test_rows_that_are_not_whole_games_are_refused():
    with pytest.raises(ValueError, match="multiple of 2"):
        attached(TTT, {}, 3, seed=0)
    with pytest.raises(ValueError, match="splits a game"):
        multiagent_host_with_groups(TTT, 4, [(0, 1), (1, 4)])


def test_row_groups_split_along_whole_games_as_the_worker_splits_them():
    from herd_env.host import Host, group_bounds

    # 3 games of 2 in 2 groups: the worker's split is 1 game and 2, not rows 0..<3 and 3..<6.
    host = Host(TTT, {}, 6, 0, 0, group_count=2)
    assert host.groups == [(0, 2), (2, 6)]
    assert group_bounds(7, 2) == [(0, 3), (3, 7)]  # one row per copy: as before
    with pytest.raises(ValueError, match="3 row groups for 2 games"):
        Host(TTT, {}, 4, 0, 0, group_count=3)


def multiagent_host_with_groups(env_id, count, groups):
    from herd_env.host import Host

    return Host(env_id, {}, count, 0, 0, groups=groups)


def test_env_wrappers_are_refused_for_pettingzoo():
    from herd_env.host import Host

    with pytest.raises(ValueError, match="pz:MODULE:FUNCTION"):
        Host(TTT, {}, 2, 0, 0, wrappers=["herd_env.wrappers:ActionMaskObservation"])


SIGNAL = "pz:herd_env.testing_envs:signal_game"


def test_agents_whose_spaces_differ_are_padded_and_told_their_role():
    game = multiagent.make_game(SIGNAL)
    # speaker: Box(3), Discrete(3); listener: Box(4), Discrete(4).
    assert game.padding.roles == ["speaker", "listener"]
    assert game.action_space.n == 4
    assert game.observation_space["observation"].shape == (6,)
    assert "padded with zeros to 4" in game.padding.describe()
    assert "masked to each agent's own (speaker_0 3, listener_0 4)" in game.padding.describe()
    speaker, listener = game.reset(seed=3)
    target = int(np.argmax(speaker["observation"][:3]))
    assert speaker["observation"].tolist() == [float(i == target) for i in range(3)] + [0, 1, 0]
    assert listener["observation"].tolist() == [0, 0, 0, 0, 0, 1]
    assert speaker["action_mask"].tolist() == [1, 1, 1, 0] and listener["action_mask"].tolist() == [1, 1, 1, 1]
    # The speaker says the target, the listener names it from the step after.
    (speaker, listener), rewards, over, _, infos = game.step([target, 3])
    assert rewards == [0.0, 0.0] and not over
    assert listener["observation"].tolist() == [float(i == target) for i in range(3)] + [1 / 8, 0, 1]
    (_, listener), rewards, _, _, _ = game.step([target, target])
    assert rewards == [1.0, 1.0]
    # An index past the speaker's own words (a waiting row may draw one) says word 0.
    game.step([3, 0])
    assert game.env.word == 0


def test_a_host_shows_the_padded_spaces_and_says_what_it_did():
    host = attached(SIGNAL, {}, 4, seed=2)
    assert host.agents == 2
    spec = host.spec("{}")
    assert spec["notes"] == [host.games[0].padding.describe()]
    assert spec["action"] == {"type": "discrete", "n": 4, "start": 0}
    host.reset()
    # Rows: the Dict's action_mask (4) then observation (6), per agent, two games.
    assert host.obs.shape == (4, 10)
    assert host.obs[0, :4].tolist() == [1, 1, 1, 0] and host.obs[1, :4].tolist() == [1, 1, 1, 1]
    assert host.obs[0, 8:].tolist() == [1, 0] and host.obs[3, 8:].tolist() == [0, 1]
    for _ in range(8):
        host.actions[:] = 3  # the speaker's 3 is not a word: it says 0
        host.step()
    assert (host.flags == L.TERMINATED).all()


def test_differences_that_padding_cannot_make_alike_are_refused():
    from gymnasium import spaces
    from pettingzoo.classic import tictactoe_v3

    env = tictactoe_v3.env()
    env.observation_space("player_1")
    env.unwrapped.observation_spaces["player_2"] = env.action_space("player_2")
    with pytest.raises(ValueError, match="'player_1'.*only Box observations are padded"):
        multiagent.AECGame(TTT, env, None)
    game = multiagent.make_game(SIGNAL)
    game.env.action_space = lambda a: spaces.Box(-1, 1, (2,)) if a == "speaker_0" else spaces.Discrete(4)
    with pytest.raises(ValueError, match="agent 'listener_0'.*only Discrete action spaces of different sizes"):
        multiagent.ParallelGame(SIGNAL, game.env, None)
    game.env.action_space = lambda a: spaces.Discrete(3, start=1) if a == "speaker_0" else spaces.Discrete(4)
    with pytest.raises(ValueError, match="'speaker_0'.*starts at 0"):
        multiagent.ParallelGame(SIGNAL, game.env, None)
    # Same kinds, one role name: each agent is its own role.
    game.env.possible_agents = ["agent_0", "agent_1"]
    game.env.observation_space = lambda a: spaces.Box(0, 1, (2 if a == "agent_0" else 3,))
    game.env.action_space = lambda a: spaces.Discrete(2)
    padded = multiagent.ParallelGame(SIGNAL, game.env, None)
    assert padded.padding.roles == ["agent_0", "agent_1"] and padded.observation_space.shape == (5,)


def test_registry_ids_and_module_paths_make_the_same_game():
    old = multiagent.make_game("pz:pettingzoo.classic.tictactoe_v3")
    new = multiagent.make_game(TTT)
    assert isinstance(old, multiagent.AECGame) and isinstance(new, multiagent.AECGame)
    assert old.observation_space == new.observation_space and old.rows == new.rows == 2
    assert isinstance(multiagent.make_game("pz:classic/rps-v2"), multiagent.ParallelGame)  # its parallel form
    with pytest.raises(ValueError, match=r"did you mean pz:classic/tictactoe-v3\?"):
        multiagent.make_game("pz:classic/tictactoe-v9")


def test_an_unknown_module_or_function_is_named():
    with pytest.raises(ValueError, match="cannot import 'no_such_module'"):
        multiagent.make_game("pz:no_such_module")
    with pytest.raises(ValueError, match="has no function 'nope'"):
        multiagent.make_game("pz:herd_env.testing_envs:nope")
    with pytest.raises(ValueError, match="neither parallel_env"):
        multiagent.make_game("pz:herd_env.layout")


def test_the_probe_describes_one_game_and_exits():
    out = subprocess.run(
        [sys.executable, "-m", "herd_env.host", "--env", RACE, "--count", "1", "--probe", "--shm-fd", "0"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert out.returncode == 0
    spec = json.loads(out.stdout.decode().splitlines()[0])
    assert spec["agents"] == 3 and spec["id"] == RACE
    assert spec["action"]["type"] == "discrete"


def test_game_zeros_first_game_is_recorded(tmp_path):
    pytest.importorskip("pygame")
    from PIL import Image

    from herd_env.host import Host

    path = str(tmp_path / "game.gif")
    host = Host(TTT, {}, 4, 0, 0, record=path)
    lay = L.Layout(4, host.flatten.size, host.mapper.dims, np.dtype(host.flatten.dtype).itemsize, 0)
    buf = bytearray(lay.size)
    buf[:64] = lay.header()
    host.attach(buf)
    host.reset()
    rng = np.random.default_rng(2)
    moves = 0
    while not host.flags[:2].any():
        legal_or_zero(host, rng)
        host.step()
        moves += 1
    with Image.open(path) as gif:
        assert gif.n_frames == moves + 1  # the empty board, then one frame per move
    assert host.recorder is None  # one game only


def test_mpe_games_of_several_roles_are_padded():
    pytest.importorskip("mpe2")
    game = multiagent.make_game("pz:mpe2.simple_adversary_v3")
    assert game.padding.roles == ["adversary", "agent"] and game.padding.actions is None
    adversary, agent, _ = game.reset(seed=0)
    assert game.observation_space.shape == (12,)
    assert (adversary[8:10] == 0).all() and adversary[10:].tolist() == [1, 0] and agent[10:].tolist() == [0, 1]
    game.step([0, 1, 2])
    listener = multiagent.make_game("pz:mpe2.simple_speaker_listener_v4")
    speaker, _ = listener.reset(seed=0)
    assert speaker["action_mask"].tolist() == [1, 1, 1, 0, 0]
