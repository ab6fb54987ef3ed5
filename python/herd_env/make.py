"""Making a Gymnasium environment from a Herd env id."""

import importlib

import gymnasium

from herd_env import atari

# Packages that register environments when imported; tried, when installed, for
# an id Gymnasium does not know yet (so "popgym-RepeatPreviousEasy-v0" works
# without naming its module).
KNOWN_PACKAGES = ["popgym", "minigrid", "ale_py", "miniworld"]


def _import_known():
    for name in KNOWN_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def resolve(env_id):
    """Imports what ``env_id`` needs and returns the id Gymnasium knows.

    ``module:Name-v0`` imports ``module`` first (Gymnasium's convention), so a
    user's package registers its environments.
    """
    if ":" in env_id:
        module, name = env_id.split(":", 1)
        importlib.import_module(module)
        env_id = name
    if env_id not in gymnasium.registry:
        _import_known()
    return env_id


def make_env(env_id, config=None, render_mode=None):
    """``gymnasium.make(id, **config)`` after :func:`resolve` (with ``render_mode`` when given).

    ``ALE/...`` ids get Herd's Atari preprocessing (:mod:`herd_env.atari`).
    """
    resolved = resolve(env_id)
    if atari.is_atari(resolved):
        return atari.make_atari(resolved, config, render_mode)
    kwargs = dict(config or {})
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    return gymnasium.make(resolved, **kwargs)
