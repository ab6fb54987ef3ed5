"""Herd's environment host.

A Herd rollout worker (Swift) starts ``python -m herd_env.host`` processes; each
hosts K Gymnasium environments and steps them when the worker asks, exchanging
observations, actions, rewards and flags through shared memory (see ``layout``).
"""

from herd_env.spaces import Flattener, describe, flat_dtype, flat_size
from herd_env.layout import Layout
from herd_env.make import make_env

__all__ = ["Flattener", "Layout", "describe", "flat_dtype", "flat_size", "make_env"]
