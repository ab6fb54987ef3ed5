"""Spaces as Herd sees them: a JSON description, and flattening to one vector.

The flat order (the same as Herd's Swift ``Space``):

- ``Box``: its elements in C order;
- ``Discrete(n, start)``: one-hot of ``x - start``;
- ``MultiBinary``: its 0/1 entries in C order;
- ``MultiDiscrete(nvec)``: one one-hot per component (C order), concatenated;
- ``Dict``: entries in the space's key order (Gymnasium sorts keys);
- ``Tuple``: entries in order;
- anything else (``Text``, MiniGrid's ``MissionSpace``): dropped.

The vector is uint8 when every kept leaf is a uint8 Box, float32 otherwise.
"""

import math

import numpy as np
from gymnasium import spaces


def _bound(x):
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _bounds(a):
    a = np.asarray(a).reshape(-1)
    if a.size == 0:
        return []
    if np.all(a == a[0]) or (np.isnan(a).all()):
        return [_bound(a[0])]
    return [_bound(v) for v in a]


def describe(space):
    """The space as Herd's JSON spec (``Space`` in Sources/HerdEnvs/Space.swift)."""
    if isinstance(space, spaces.Box):
        return {
            "type": "box",
            "shape": [int(d) for d in space.shape],
            "dtype": str(space.dtype),
            "low": _bounds(space.low),
            "high": _bounds(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiBinary):
        shape = space.shape if isinstance(space.shape, tuple) else (space.n,)
        return {"type": "multi_binary", "shape": [int(d) for d in shape]}
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "type": "multi_discrete",
            "nvec": [int(v) for v in np.asarray(space.nvec).reshape(-1)],
            "start": [int(v) for v in np.asarray(space.start).reshape(-1)],
        }
    if isinstance(space, spaces.Dict):
        return {"type": "dict", "spaces": [{"key": str(k), "space": describe(s)} for k, s in space.spaces.items()]}
    if isinstance(space, spaces.Tuple):
        return {"type": "tuple", "spaces": [describe(s) for s in space.spaces]}
    # The class name only: reprs may hold addresses that differ between processes.
    return {"type": "other", "name": type(space).__name__}


def _leaves(space):
    if isinstance(space, spaces.Dict):
        return [leaf for s in space.spaces.values() for leaf in _leaves(s)]
    if isinstance(space, spaces.Tuple):
        return [leaf for s in space.spaces for leaf in _leaves(s)]
    return [space]


def _kept(space):
    return isinstance(space, (spaces.Box, spaces.Discrete, spaces.MultiBinary, spaces.MultiDiscrete))


def flat_size(space):
    """Entries of the flat vector."""
    if isinstance(space, (spaces.Box, spaces.MultiBinary)):
        return int(np.prod(space.shape, dtype=np.int64))
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.MultiDiscrete):
        return int(np.asarray(space.nvec).sum())
    if isinstance(space, spaces.Dict):
        return sum(flat_size(s) for s in space.spaces.values())
    if isinstance(space, spaces.Tuple):
        return sum(flat_size(s) for s in space.spaces)
    return 0


def flat_dtype(space):
    """``np.uint8`` when every kept leaf is a uint8 Box, else ``np.float32``."""
    kept = [s for s in _leaves(space) if _kept(s)]
    if kept and all(isinstance(s, spaces.Box) and s.dtype == np.uint8 for s in kept):
        return np.uint8
    return np.float32


def dropped(space, path=""):
    """Paths and class names of the parts flattening drops."""
    if isinstance(space, spaces.Dict):
        return [d for k, s in space.spaces.items() for d in dropped(s, f"{path}.{k}" if path else str(k))]
    if isinstance(space, spaces.Tuple):
        return [d for i, s in enumerate(space.spaces) for d in dropped(s, f"{path}[{i}]")]
    if _kept(space):
        return []
    return [f"{path or 'observation'} ({type(space).__name__})"]


class Flattener:
    """Writes observations of ``space`` into rows of a flat array, in place."""

    def __init__(self, space):
        self.space = space
        self.size = flat_size(space)
        self.dtype = flat_dtype(space)
        self._write = self._compile(space)

    def __call__(self, value, row):
        """Writes ``value`` into ``row`` (a 1-D array of ``size`` entries)."""
        self._write(value, row)

    def _compile(self, space):
        if isinstance(space, spaces.Box) or isinstance(space, spaces.MultiBinary):
            def write_array(value, row):
                row[:] = np.asarray(value).reshape(-1)
            return write_array
        if isinstance(space, spaces.Discrete):
            start = int(space.start)

            def write_one_hot(value, row):
                row[:] = 0
                row[int(value) - start] = 1
            return write_one_hot
        if isinstance(space, spaces.MultiDiscrete):
            nvec = np.asarray(space.nvec).reshape(-1)
            start = np.asarray(space.start).reshape(-1)
            offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]]).astype(np.int64)

            def write_one_hots(value, row):
                row[:] = 0
                row[offsets + (np.asarray(value).reshape(-1) - start)] = 1
            return write_one_hots
        if isinstance(space, (spaces.Dict, spaces.Tuple)):
            items = list(space.spaces.items()) if isinstance(space, spaces.Dict) else list(enumerate(space.spaces))
            parts = []
            offset = 0
            for key, sub in items:
                n = flat_size(sub)
                if n > 0:
                    parts.append((key, offset, offset + n, self._compile(sub)))
                offset += n

            def write_parts(value, row):
                for key, lo, hi, write in parts:
                    write(value[key], row[lo:hi])
            return write_parts

        def write_nothing(value, row):
            pass
        return write_nothing


class ActionMapper:
    """Turns Herd's actions into the space's: integers (0-based per head) for
    Discrete and MultiDiscrete spaces, float32 vectors for a Box (already clipped to
    its bounds by the worker, reshaped and cast to the Box's dtype here)."""

    def __init__(self, space):
        self.box = False
        if isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.floating) and space.shape:
            self.dims = int(np.prod(space.shape))
            self.shape = tuple(space.shape)
            self.dtype = space.dtype
            self.box = True
            self.discrete = False
        elif isinstance(space, spaces.Discrete):
            self.dims = 1
            self.start = int(space.start)
            self.discrete = True
        elif isinstance(space, spaces.MultiDiscrete) and len(space.nvec.shape) == 1:
            self.dims = int(space.nvec.shape[0])
            self.start = np.asarray(space.start, dtype=np.int64)
            self.dtype = space.dtype
            self.discrete = False
        else:
            raise ValueError(
                f"action space {space} is not supported: Herd acts in Discrete, one-dimensional MultiDiscrete "
                "and float Box spaces"
            )

    def actions(self, block):
        """One action per row of ``block`` ([K, dims] int32, or float32 bits for a Box)."""
        if self.box:
            rows = block.view(np.float32).reshape((block.shape[0],) + self.shape)
            return list(rows.astype(self.dtype))
        if self.discrete:
            column = block[:, 0].tolist()
            if self.start:
                return [a + self.start for a in column]
            return column
        return list((block.astype(np.int64) + self.start).astype(self.dtype))
