"""Run a policy exported by ``herd export`` without Herd.

An export is a folder of three files: ``policy.safetensors`` (the weights under
PyTorch names), ``policy.json`` (how they fit together) and ``policy.onnx``.

With PyTorch::

    import herd_policy
    policy = herd_policy.load("runs/demo/export")        # a torch.nn.Module
    state = policy.initial_state(batch=1)                 # zeros, at every episode start
    logits, value, state = policy(obs, state, prev_action, prev_reward)
    action = policy.sample(logits)                        # or policy.greedy(logits)

``obs`` is ``[N, F]`` float32 flattened as Herd flattens the space (see
``policy.json``: ``observation.flattening``); ``prev_action`` ``[N]`` int64 (a
Gaussian policy's: ``[N, D]`` float32, the actions the environment took) and
``prev_reward`` ``[N]`` float32 are 0 at episode starts and ignored when the policy
does not use them. The state is a tuple: ``(h, c)`` for an LSTM, ``(h,)`` for a GRU,
``()`` without a core; each is ``[N, W]``, W the core's size, or both cores' when the
value has its own (``policy.json``: ``value_tower``, the policy core's columns first).

With onnxruntime, see :mod:`herd_policy.check` (``run_onnx``) or the ONNX
signature in ``policy.json`` (``onnx.inputs`` / ``onnx.outputs``).

Only ``read_safetensors`` and ``read_sidecar`` work without PyTorch (NumPy only).
"""

import json
import os
import struct

import numpy as np

FORMAT = "herd-policy"
FORMAT_VERSION = 1

__all__ = ["ExportError", "load", "read_safetensors", "read_sidecar", "FORMAT", "FORMAT_VERSION"]


class ExportError(ValueError):
    """An export folder or file that cannot be read, with the reason."""


def _files(path):
    """(weights, sidecar) paths of an export folder, or of a policy.json given directly."""
    if os.path.isdir(path):
        return os.path.join(path, "policy.safetensors"), os.path.join(path, "policy.json")
    if path.endswith(".json"):
        return os.path.join(os.path.dirname(path), "policy.safetensors"), path
    raise ExportError(f"{path}: give an export folder (from `herd export`) or its policy.json")


def read_safetensors(path):
    """The float32 tensors of a safetensors file as a dict of NumPy arrays (in file order)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ExportError(f"{path}: {len(blob)} bytes, not a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ExportError(f"{path}: header length {n} runs past the end ({len(blob)} bytes)")
    try:
        header = json.loads(blob[8:8 + n])
    except ValueError as e:
        raise ExportError(f"{path}: the header is not JSON ({e})") from None
    data = memoryview(blob)[8 + n:]
    out = {}
    entries = sorted(((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"][0])
    for name, entry in entries:
        if entry.get("dtype") != "F32":
            raise ExportError(f"{path}: tensor {name} is {entry.get('dtype')}; only F32 is read")
        begin, end = entry["data_offsets"]
        shape = tuple(entry["shape"])
        if end - begin != 4 * int(np.prod(shape, dtype=np.int64)) or end > len(data):
            raise ExportError(f"{path}: tensor {name} of shape {list(shape)} has data_offsets {[begin, end]}")
        out[name] = np.frombuffer(data[begin:end], dtype="<f4").reshape(shape).copy()
    return out


def read_sidecar(path):
    """policy.json as a dict, checked to be a Herd policy this loader knows."""
    weights, sidecar = _files(path)
    try:
        with open(sidecar) as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise ExportError(f"{sidecar} does not exist: run `herd export --checkpoint RUN_DIR --output DIR` first") from None
    if meta.get("format") != FORMAT:
        raise ExportError(f"{sidecar} is not a Herd policy (format {meta.get('format')!r}, expected {FORMAT!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ExportError(f"{sidecar} has format_version {meta.get('format_version')}; this loader reads {FORMAT_VERSION}")
    return meta


def load(path):
    """The exported policy at ``path`` (a folder or its policy.json) as a ``torch.nn.Module``."""
    weights, _ = _files(path)
    meta = read_sidecar(path)
    from herd_policy.torch_policy import HerdPolicy  # torch is only needed here

    return HerdPolicy.from_export(meta, read_safetensors(weights))
