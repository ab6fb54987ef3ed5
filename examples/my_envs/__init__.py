"""A user's own Gymnasium environment, in the user's own module, for Herd's README.

Importing this module registers ``Recall-v0``; Herd makes it with
``--env gym:my_envs:Recall-v0`` (the module is imported first, Gymnasium's
convention), given ``examples/`` on PYTHONPATH.
"""

import gymnasium
import numpy as np
from gymnasium import spaces


class Recall(gymnasium.Env):
    """Shows one of ``n`` symbols on the first step, then ``delay`` blank steps; on
    the last step the agent must name the symbol. Reward +1 when right, 0 otherwise.
    A memoryless policy is right 1/n of the time.

    Observation: ``Dict(symbol: Discrete(n + 1), clock: Box(1))``: symbol 0 is the
    blank, the clock counts down to 0 at the question. Action: ``Discrete(n)``.
    """

    def __init__(self, n=4, delay=8):
        self.n, self.delay = n, delay
        self.observation_space = spaces.Dict(
            {"symbol": spaces.Discrete(n + 1), "clock": spaces.Box(0.0, 1.0, (1,), np.float32)}
        )
        self.action_space = spaces.Discrete(n)

    def _obs(self):
        symbol = self.symbol + 1 if self.t == 0 else 0
        return {"symbol": symbol, "clock": np.array([1 - self.t / self.delay], np.float32)}

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.symbol = int(self.np_random.integers(self.n))
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        if self.t == self.delay:
            return self._obs(), float(action == self.symbol), True, False, {}
        self.t += 1
        return self._obs(), 0.0, False, False, {}


gymnasium.register("Recall-v0", entry_point=Recall)
