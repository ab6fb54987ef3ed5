"""Making a Gymnasium environment from a Herd env id."""

import difflib
import importlib
import json
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


def make_env(env_id, config=None, render_mode=None, wrappers=()):
    """``gymnasium.make(id, **config)`` after :func:`resolve` (with ``render_mode`` when given),
    wrapped in ``wrappers`` (:func:`wrap`).

    ``ALE/...`` ids get Herd's Atari preprocessing (:mod:`herd_env.atari`) first.
    """
    resolved = resolve(env_id)
    if atari.is_atari(resolved):
        return wrap(atari.make_atari(resolved, config, render_mode), wrappers)
    kwargs = dict(config or {})
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    _handle_mujoco_warnings(gymnasium.spec(resolved).entry_point)
    env = gymnasium.make(resolved, **kwargs)
    _handle_mujoco_warnings("")  # an environment that loaded MuJoCo itself
    return wrap(env, wrappers)


def parse_wrappers(text):
    """The env host's ``--wrappers`` (Herd's ``env_wrappers`` as JSON), as a list of
    ``(path, kwargs)``."""
    value = json.loads(text)
    if not isinstance(value, list):
        raise ValueError(f"--wrappers must be a JSON list, not {text}")
    return [wrapper_entry(w) for w in value]


def load_wrapper(path):
    """The object ``path`` names: ``module:Name`` (the name may be dotted) or
    ``module.Name``. Errors name the path and what is missing."""
    module_name, sep, attribute = path.partition(":")
    if not sep:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(f"env_wrappers: {path!r} is not module:Class (e.g. minigrid.wrappers:ImgObsWrapper)")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"env_wrappers: cannot import {module_name!r} for {path!r}: {e}") from e
    for part in attribute.split("."):
        if not hasattr(obj, part):
            close = difflib.get_close_matches(part, [n for n in dir(obj) if not n.startswith("_")], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"env_wrappers: {module_name!r} has no {attribute!r}{hint}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"env_wrappers: {path!r} is not a class or function that takes an environment")
    return obj


def wrapper_entry(entry):
    """One ``env_wrappers`` entry as ``(path, kwargs)``: a config's ``"module:Class"``
    or ``{"module:Class": {kwargs}}`` (an export's sidecar holds them so), or a pair."""
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, dict) and len(entry) == 1:
        (path, kwargs), = entry.items()
        if isinstance(path, str) and isinstance(kwargs, dict):
            return path, kwargs
    if isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str) and isinstance(entry[1], dict):
        return entry[0], entry[1]
    raise ValueError(f'env_wrappers: {entry!r} is not "module:Class" or {{"module:Class": {{keyword arguments}}}}')


def wrap(env, wrappers):
    """``env`` inside each of ``wrappers``, innermost first: ``Class(env, **kwargs)``.
    Entries as :func:`wrapper_entry` reads them."""
    for path, kwargs in map(wrapper_entry, wrappers):
        cls = load_wrapper(path)
        try:
            env = cls(env, **kwargs)
        except TypeError as e:
            raise ValueError(f"env_wrappers: {path}(env, **{json.dumps(kwargs)}) failed: {e}") from e
        if not isinstance(env, gymnasium.Env):
            raise ValueError(f"env_wrappers: {path} returned {type(env).__name__}, not a Gymnasium environment")
    return env
