"""A user's own module: importing it registers Chatty-v0, which prints as it goes."""

import gymnasium
import numpy as np


class Chatty(gymnasium.Env):
    def __init__(self):
        print("hello from Chatty")
        self.observation_space = gymnasium.spaces.Box(0, 1, (1,), np.float32)
        self.action_space = gymnasium.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.zeros(1, np.float32), 0.0, True, False, {}


gymnasium.register("Chatty-v0", entry_point=Chatty)
