"""Making a Gymnasium environment from a Herd env id."""

import importlib
import os
import sys

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


def log(message):
    """One line on stderr, as the env host writes them: ``herd_env[PID]: message``."""
    print(f"herd_env[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


# MuJoCo's own warning handler prints each warning with a blank line and appends
# it to MUJOCO_LOG.TXT in the working directory: a host making 16 HalfCheetahs
# printed the same deprecation 16 times and left the file wherever herd ran.
# Herd's handler logs each distinct warning once per process, to stderr only.
MAX_MUJOCO_WARNINGS = 20
_mujoco_warnings = set()
_mujoco_handled = False


def mujoco_warning(message):
    """Logs a MuJoCo warning the first time this process sees it (at most
    ``MAX_MUJOCO_WARNINGS`` distinct ones, then a line that says more are held back)."""
    if message in _mujoco_warnings:
        return
    _mujoco_warnings.add(message)
    distinct = len(_mujoco_warnings)
    if distinct <= MAX_MUJOCO_WARNINGS:
        line = f"MuJoCo warning: {message} (shown once per process)"
    elif distinct == MAX_MUJOCO_WARNINGS + 1:
        line = f"MuJoCo warning: more than {MAX_MUJOCO_WARNINGS} different warnings; the rest are not shown"
    else:
        return
    log(line)


def _handle_mujoco_warnings(entry_point):
    """Installs :func:`mujoco_warning` as MuJoCo's warning handler when the
    environment is a MuJoCo one (its entry point names mujoco) or MuJoCo is loaded."""
    global _mujoco_handled
    if _mujoco_handled or ("mujoco" not in str(entry_point).lower() and "mujoco" not in sys.modules):
        return
    try:
        import mujoco
    except ImportError:
        return
    mujoco.set_mju_user_warning(mujoco_warning)
    _mujoco_handled = True


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
    _handle_mujoco_warnings(gymnasium.spec(resolved).entry_point)
    env = gymnasium.make(resolved, **kwargs)
    _handle_mujoco_warnings("")  # an environment that loaded MuJoCo itself
    return env
