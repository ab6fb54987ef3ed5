#!/usr/bin/env python3
"""Writes the fixtures of Herd's export tests: small trained policies and what
PyTorch computes from their export.

Run by hand (not by `make test`), after `make venv` and a release build, with torch
(PyPI) in the interpreter that runs it (arguments: the variants to write, all by
default):

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy
    /tmp/torchenv/bin/python Tests/Fixtures/make_export_fixtures.py

For each variant below it trains a small policy for a few seconds with
`.build/release/herd train`, exports it with `herd export`, draws random input
sequences that cross episode boundaries, and runs them through the PyTorch module
`herd_policy.load` builds. It writes Tests/Fixtures/export/VARIANT/:

- checkpoint.herd, env_spec.json: the trained policy (what `herd export` reads);
- policy.safetensors, policy.json, policy.onnx: its export (the Swift test checks a
  fresh export gives these weights' bytes; pytest runs onnxruntime on policy.onnx);
- inputs.json: obs [T][N][F], prev_action [T][N] (Box actions: [T][N][D] floats),
  prev_reward [T][N], reset [T][N];
- torch.json: PyTorch's logits, values and states per step, and torch's version.

The Swift tests (HerdExportTests) check that Herd's own steps give torch.json's
numbers to 1e-5, and run onnxruntime on a fresh ONNX export against Herd live;
python/tests/test_policy.py checks the committed ONNX against torch.json, and the
PyTorch module against it where torch is installed.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "export")
HERD = os.path.join(ROOT, ".build", "release", "herd")
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
sys.path.insert(0, os.path.join(ROOT, "python"))

from herd_policy import read_sidecar  # noqa: E402
from herd_policy.check import run_torch  # noqa: E402

# name -> (env, config overrides): an LSTM with the previous action, a GRU with both
# previous action and reward over a Dict observation and two action heads, and a
# feed-forward ReLU policy without the filter.
VARIANTS = {
    "lstm": ("StatelessCartPole-v1", ["lstm_cell_size=16", "fcnet_hiddens=[16]"]),
    "gru": (
        "gym:herd_env.testing_envs:HerdTest/Spaces-v0",
        ["rnn_type=\"gru\"", "lstm_cell_size=12", "fcnet_hiddens=[16,8]", "lstm_use_prev_reward=true"],
    ),
    "ff": (
        "CartPole-v1",
        ["use_lstm=false", "fcnet_hiddens=[16,16]", "fcnet_activation=\"relu\"", "observation_filter=\"NoFilter\"",
         "lstm_use_prev_action=false"],
    ),
    # impala_deep over PixelMemory's 16x16 frames: convs, max-pools, residual blocks
    # and activations, the 1/255 scale, then FC and a GRU with the previous action.
    "conv": (
        "PixelMemory-v0",
        ["conv_encoder=\"impala_deep\"", "conv_filters=[]", "conv_fc_hiddens=[16]", "lstm_cell_size=8", "lstm_use_prev_action=true"],
    ),
    # A Gaussian policy (Box actions) with its learned log std vector, over
    # StatelessPendulum with an LSTM and the previous reward.
    "gaussian": (
        "StatelessPendulum-v1",
        ["lstm_cell_size=8", "fcnet_hiddens=[16]", "lstm_use_prev_reward=true"],
    ),
    # A Gaussian policy with the previous action as an input (its float clipped to
    # the bounds) and the previous reward, an LSTM over StatelessPendulum.
    "gaussian_prev_action": (
        "StatelessPendulum-v1",
        ["lstm_cell_size=8", "fcnet_hiddens=[16]", "lstm_use_prev_action=true", "lstm_use_prev_reward=true"],
    ),
    # The log std from the state (free_log_std off), feed-forward, on Pendulum.
    "gaussian_state_std": (
        "Pendulum-v1",
        ["use_lstm=false", "fcnet_hiddens=[8]", "free_log_std=false"],
    ),
    # The value's own encoder and LSTM (vf_share_layers = false): the state tensors
    # hold both cores, the policy's columns first.
    "own_value": (
        "StatelessCartPole-v1",
        ["lstm_cell_size=8", "fcnet_hiddens=[16]", "vf_share_layers=false", "lstm_use_prev_reward=true"],
    ),
    # Post layers (post_fcnet_hiddens) between the LSTM and the heads, read by both
    # heads (ReLU, RLlib's default).
    "post": (
        "StatelessCartPole-v1",
        ["lstm_cell_size=8", "fcnet_hiddens=[16]", "post_fcnet_hiddens=[12,6]"],
    ),
    # Action masking: TicTacToe's Dict observation carries action_mask; the logits
    # where it is below 0.5 are masked (the inputs draw it at random, both sides).
    "masked": (
        "gym:herd_env.games:Herd/TicTacToe-v0",
        ["lstm_cell_size=8", "fcnet_hiddens=[16]"],
    ),
    # The value's own tower with its own post layers (vf_post), after a GRU, tanh.
    "post_own_value": (
        "StatelessCartPole-v1",
        ["rnn_type=\"gru\"", "lstm_cell_size=8", "fcnet_hiddens=[16]", "post_fcnet_hiddens=[10]",
         "post_fcnet_activation=\"tanh\"", "vf_share_layers=false", "lstm_use_prev_reward=true"],
    ),
}
STEPS, ROWS = 12, 3


def inputs_for(meta, rng):
    """Random inputs across episode boundaries: each row starts an episode at t=0 and
    then with probability 0.2 per step; prev_action and prev_reward are 0 there."""
    size = meta["observation"]["size"]
    if meta.get("conv") and meta["conv"]["input_scale"] != 1:
        obs = rng.integers(0, 256, size=(STEPS, ROWS, size)).astype(np.float32)  # uint8 frames
        return _with_episode_inputs(meta, rng, obs)
    filt = meta.get("obs_filter")
    mean = np.array(filt["mean"]) if filt else np.zeros(size)
    std = np.array(filt["std"]) if filt else np.ones(size)
    obs = mean + std * rng.normal(0, 1.5, size=(STEPS, ROWS, size))
    return _with_episode_inputs(meta, rng, obs)


def _with_episode_inputs(meta, rng, obs):
    reset = (rng.random((STEPS, ROWS)) < 0.2).astype(int)
    reset[0] = 1
    if meta["action"].get("distribution") == "gaussian":
        # Floats, some beyond the bounds (the policy clips them as inputs).
        dims = meta["action"]["dims"]
        high = np.abs(np.array(meta["action"]["high"]))
        prev_action = rng.normal(0, 1, size=(STEPS, ROWS, dims)) * 1.5 * high * (1 - reset)[:, :, None]
        prev_action = prev_action.astype(np.float32)
    else:
        actions = int(np.prod(meta["action"].get("heads", [1])))
        prev_action = rng.integers(0, actions, size=(STEPS, ROWS)) * (1 - reset)
    prev_reward = rng.normal(0, 1, size=(STEPS, ROWS)) * (1 - reset)
    return {
        "obs": obs.astype(np.float32).tolist(),
        "prev_action": prev_action.tolist(),
        "prev_reward": prev_reward.astype(np.float32).tolist(),
        "reset": reset.tolist(),
    }


def main():
    import torch

    only = sys.argv[1:]  # variant names; all without
    for index, (name, (env, sets)) in enumerate(VARIANTS.items()):
        if only and name not in only:
            continue
        rng = np.random.default_rng([20261202, index])
        with tempfile.TemporaryDirectory() as tmp:
            run = os.path.join(tmp, "run")
            cmd = [HERD, "train", "--env", env, "--stop-seconds", "4", "--no-stats", "--run-dir", run, "--quiet",
                   "--seed", "1", "--python", VENV_PYTHON]
            for s in sets:
                cmd += ["--set", s]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            out = os.path.join(OUT, name)
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            for f in ["checkpoint.herd", "env_spec.json"]:
                shutil.copy(os.path.join(run, f), out)
            export = out
            subprocess.run([HERD, "export", "--checkpoint", out, "--output", export], check=True, stdout=subprocess.DEVNULL)
            meta = read_sidecar(export)
            inputs = inputs_for(meta, rng)
            result = run_torch(export, inputs)
            result["torch_version"] = torch.__version__
            for fname, obj in [("inputs.json", inputs), ("torch.json", result)]:
                with open(os.path.join(out, fname), "w") as f:
                    json.dump(obj, f, separators=(",", ":"))
                    f.write("\n")
            print(f"{name}: {env}, {meta['core']['type']}, {sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))} bytes")


if __name__ == "__main__":
    main()
