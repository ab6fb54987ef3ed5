"""Run an exported policy over recorded input sequences, with PyTorch or onnxruntime.

    python -m herd_policy.check --export DIR --inputs inputs.json --backend onnx --output out.json

``inputs.json`` holds ``obs [T][N][F]``, ``prev_action [T][N]`` (a Gaussian policy's:
``[T][N][D]`` floats), ``prev_reward [T][N]``
and ``reset [T][N]`` (1: row n starts an episode at step t, so its state is zeros
before that step). The output holds, per step, ``logits [T][N][A]``, ``value [T][N]``
and the new state ``h`` (and ``c``) ``[T][N][H]``. Herd's tests compare these with
Herd's own steps; this is also a worked example of carrying the state.
"""

import argparse
import json
import os
import sys

import numpy as np

from herd_policy import read_sidecar


def _reset(state, starts):
    """The state with rows where ``starts`` is set zeroed."""
    keep = (1 - starts.astype(np.float32))[:, None]
    return tuple(s * keep for s in state)


def run_onnx(export_dir, inputs):
    """Steps the ONNX graph over ``inputs``; returns the per-step outputs."""
    import onnxruntime as ort

    meta = read_sidecar(export_dir)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        os.path.join(export_dir, meta["onnx"]["file"]), options, providers=["CPUExecutionProvider"])
    names = meta["onnx"]["inputs"]
    obs = np.asarray(inputs["obs"], dtype=np.float32)
    steps, n = obs.shape[0], obs.shape[1]
    hidden = meta["core"].get("state_width", meta["core"].get("hidden_size", 0))
    state = tuple(np.zeros((n, hidden), np.float32) for _ in meta["core"].get("state", []))
    out = {"logits": [], "value": [], "h": [], "c": []}
    for t in range(steps):
        state = _reset(state, np.asarray(inputs["reset"][t]))
        feed = {"obs": obs[t]}
        if "prev_action" in names:
            dtype = np.float32 if meta["onnx"].get("prev_action_dtype") == "float32" else np.int64
            feed["prev_action"] = np.asarray(inputs["prev_action"][t], dtype=dtype)
        if "prev_reward" in names:
            feed["prev_reward"] = np.asarray(inputs["prev_reward"][t], dtype=np.float32)
        for name, s in zip(["h", "c"], state):
            feed[name] = s
        result = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
        state = tuple(result[k] for k in ["h_out", "c_out"] if k in result)
        out["logits"].append(result["logits"].tolist())
        out["value"].append(result["value"].tolist())
        for name, s in zip(["h", "c"], state):
            out[name].append(s.tolist())
    return {k: v for k, v in out.items() if v}


def run_torch(export_dir, inputs):
    """Steps the PyTorch module built by ``herd_policy.load`` over ``inputs``."""
    import torch

    from herd_policy import load

    policy = load(export_dir)
    torch.set_num_threads(1)
    obs = np.asarray(inputs["obs"], dtype=np.float32)
    steps, n = obs.shape[0], obs.shape[1]
    state = policy.initial_state(n)
    out = {"logits": [], "value": [], "h": [], "c": []}
    with torch.no_grad():
        for t in range(steps):
            keep = torch.from_numpy(1 - np.asarray(inputs["reset"][t], dtype=np.float32))[:, None]
            state = tuple(s * keep for s in state)
            logits, value, state = policy(
                torch.from_numpy(obs[t]),
                state,
                torch.as_tensor(inputs["prev_action"][t], dtype=torch.float32 if policy.gaussian else torch.int64),
                torch.as_tensor(inputs["prev_reward"][t], dtype=torch.float32),
            )
            out["logits"].append(logits.tolist())
            out["value"].append(value.tolist())
            for name, s in zip(["h", "c"], state):
                out[name].append(s.tolist())
    return {k: v for k, v in out.items() if v}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", required=True, help="the folder `herd export` wrote")
    parser.add_argument("--inputs", required=True, help="input sequences (JSON, see above)")
    parser.add_argument("--backend", choices=["onnx", "torch"], default="onnx", help="onnxruntime or the PyTorch module")
    parser.add_argument("--output", help="write the outputs here (default: stdout)")
    args = parser.parse_args(argv)
    with open(args.inputs) as f:
        inputs = json.load(f)
    result = (run_onnx if args.backend == "onnx" else run_torch)(args.export, inputs)
    text = json.dumps(result)
    if args.output:
        tmp = args.output + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, args.output)
    else:
        sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
