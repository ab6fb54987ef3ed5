"""Small games whose moves are not all legal at every step: action masking.

Importing this module registers them (``gym:herd_env.games:Herd/TicTacToe-v0``):

- ``Herd/TicTacToe-v0``: noughts and crosses against an opponent who plays a
  random legal move. The observation is a Dict: ``board`` (9 x 3 one-hot of each
  square: empty, the agent's, the opponent's) and ``action_mask`` (9 entries, 1
  where the square is empty), the entry Herd's ``action_mask_key`` reads, as
  PettingZoo's classic games and RLlib's masked models name it. Either side
  opens, at random. Reward +1 for a win, -1 for a loss, 0 for a draw; a move on a
  taken square (possible only when the mask is ignored) loses at once with -1.
  The info of the last step has ``win``, ``draw`` and ``illegal`` (0 or 1).
  ``action_masks()`` gives the mask too (sb3-contrib's MaskablePPO calls it).
"""

import gymnasium
import numpy as np
from gymnasium import spaces

_LINES = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)]


class TicTacToe(gymnasium.Env):
    """Noughts and crosses against a random legal opponent (see the module)."""

    metadata = {"render_modes": ["ansi"]}

    def __init__(self, render_mode=None):
        self.observation_space = spaces.Dict(
            {
                "action_mask": spaces.Box(0, 1, (9,), np.int8),
                "board": spaces.Box(0.0, 1.0, (9, 3), np.float32),
            }
        )
        self.action_space = spaces.Discrete(9)
        self.render_mode = render_mode
        self.board = np.zeros(9, np.int8)  # 0 empty, 1 the agent, 2 the opponent

    def action_masks(self):
        return (self.board == 0).astype(np.int8)

    def _obs(self):
        board = np.zeros((9, 3), np.float32)
        board[np.arange(9), self.board] = 1
        return {"action_mask": self.action_masks(), "board": board}

    def _won(self, player):
        return any(all(self.board[i] == player for i in line) for line in _LINES)

    def _opponent(self):
        empty = np.flatnonzero(self.board == 0)
        self.board[self.np_random.choice(empty)] = 2

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.board[:] = 0
        if self.np_random.random() < 0.5:
            self._opponent()
        return self._obs(), {}

    def _end(self, reward, win=0, draw=0, illegal=0):
        info = {"win": win, "draw": draw, "illegal": illegal}
        return self._obs(), float(reward), True, False, info

    def step(self, action):
        a = int(action)
        if not 0 <= a < 9:
            raise ValueError(f"TicTacToe: action {action} is not a square 0..8")
        if self.board[a] != 0:
            return self._end(-1, illegal=1)
        self.board[a] = 1
        if self._won(1):
            return self._end(1, win=1)
        if not (self.board == 0).any():
            return self._end(0, draw=1)
        self._opponent()
        if self._won(2):
            return self._end(-1)
        if not (self.board == 0).any():
            return self._end(0, draw=1)
        return self._obs(), 0.0, False, False, {}

    def render(self):
        marks = ".XO"
        rows = ["".join(marks[v] for v in self.board[r * 3:r * 3 + 3]) for r in range(3)]
        return "\n".join(rows) + "\n"


gymnasium.register("Herd/TicTacToe-v0", entry_point=TicTacToe)
