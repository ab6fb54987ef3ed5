"""Gymnasium wrappers for Herd's env host (``env_wrappers``).

- ``herd_env.wrappers:ActionMaskObservation``: for an environment that gives its
  action mask through an ``action_masks()`` method (sb3-contrib's MaskablePPO
  convention), puts the mask into the observation as the Dict entry Herd reads
  (``action_mask``, or the ``key`` keyword argument, the run's
  ``action_mask_key``): a Dict observation gains the entry, any other becomes
  ``{"action_mask": ..., "observation": ...}``.
"""

import gymnasium
import numpy as np
from gymnasium import spaces


class ActionMaskObservation(gymnasium.ObservationWrapper):
    """Adds ``action_masks()`` to the observation as a Dict entry (see the module)."""

    def __init__(self, env, key="action_mask"):
        super().__init__(env)
        try:
            masks = env.get_wrapper_attr("action_masks")
        except AttributeError:
            raise ValueError(
                f"ActionMaskObservation: {env.unwrapped.__class__.__name__} has no action_masks() method "
                "(sb3-contrib's convention); an environment whose observation already holds its mask needs no wrapper"
            ) from None
        self._masks = masks
        action = env.action_space
        if isinstance(action, spaces.Discrete):
            n = int(action.n)
        elif isinstance(action, spaces.MultiDiscrete):
            n = int(np.asarray(action.nvec).sum())
        else:
            raise ValueError(f"ActionMaskObservation: action space {action} is not Discrete or MultiDiscrete")
        self._size = n
        self._key = key
        mask_space = spaces.Box(0, 1, (n,), np.int8)
        inner = env.observation_space
        if isinstance(inner, spaces.Dict):
            if key in inner.spaces:
                raise ValueError(f"ActionMaskObservation: the observation already has a {key!r} entry")
            self._dict = True
            self.observation_space = spaces.Dict({**inner.spaces, key: mask_space})
        else:
            self._dict = False
            self.observation_space = spaces.Dict({key: mask_space, "observation": inner})

    def observation(self, observation):
        mask = np.asarray(self._masks(), dtype=np.int8).reshape(-1)
        if mask.size != self._size:
            raise ValueError(f"ActionMaskObservation: action_masks() gave {mask.size} entries, not {self._size}")
        if self._dict:
            return {**observation, self._key: mask}
        return {self._key: mask, "observation": observation}
