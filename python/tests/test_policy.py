"""herd_policy: reading an export, onnxruntime and (where installed) PyTorch against
the fixtures of Tests/Fixtures/export (written by Tests/Fixtures/make_export_fixtures.py)."""
import importlib.util
import json
import os
import shutil

import numpy as np
import pytest

import herd_policy
from herd_policy import ExportError, read_safetensors, read_sidecar
from herd_policy.check import main as check_main

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "export")
VARIANTS = ["lstm", "gru", "ff", "conv", "gaussian", "gaussian_state_std", "own_value", "post", "post_own_value",
            "gaussian_prev_action", "masked"]


def fixture(variant, name=""):
    return os.path.join(FIXTURES, variant, name)


def load_json(path):
    with open(path) as f:
        return json.load(f)


def worst(a, b):
    """Largest |a - b| / max(1, |b|) over the outputs both hold (they must hold the same)."""
    keys = {k for k in b if k != "torch_version"}
    assert set(a) == keys
    return max(float(np.max(np.abs(np.array(a[k]) - np.array(b[k])) / np.maximum(1, np.abs(np.array(b[k]))))) for k in keys)


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_weights_have_the_sidecars_names_and_shapes(variant):
    tensors = read_safetensors(fixture(variant, "policy.safetensors"))
    meta = read_sidecar(fixture(variant))
    assert {k: list(v.shape) for k, v in tensors.items()} == meta["tensors"]
    assert all(v.dtype == np.float32 for v in tensors.values())
    if meta["obs_filter"]:
        np.testing.assert_allclose(tensors["obs_filter.scale"], meta["obs_filter"]["scale"], rtol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_onnxruntime_gives_pytorchs_numbers(variant, tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "onnx.json"
    check_main(["--export", fixture(variant), "--inputs", fixture(variant, "inputs.json"), "--backend", "onnx",
                "--output", str(out)])
    result = load_json(out)
    assert worst(result, load_json(fixture(variant, "torch.json"))) <= 1e-5


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed (fixture generation only)")
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_pytorch_module_gives_the_fixtures_numbers(variant):
    from herd_policy.check import run_torch

    result = run_torch(fixture(variant), load_json(fixture(variant, "inputs.json")))
    assert worst(result, load_json(fixture(variant, "torch.json"))) <= 1e-6


def test_the_masked_policys_logits_are_masked_where_its_observation_says():
    meta = read_sidecar(fixture("masked"))
    mask = meta["action"]["mask"]
    assert (mask["key"], mask["obs_start"], mask["obs_end"]) == ("action_mask", 0, 9)
    inputs = load_json(fixture("masked", "inputs.json"))
    logits = np.array(load_json(fixture("masked", "torch.json"))["logits"])
    entries = np.array(inputs["obs"])[:, :, 0:9]
    masked = entries < 0.5
    assert masked.any() and (~masked).any()
    assert np.all(logits[masked] == mask["masked_logit"])
    assert np.all(logits[~masked] > -1e6)


def test_damaged_exports_are_clear_errors(tmp_path):
    with pytest.raises(ExportError, match="run `herd export"):
        read_sidecar(str(tmp_path))
    (tmp_path / "policy.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ExportError, match="not a Herd policy"):
        read_sidecar(str(tmp_path))
    meta = load_json(fixture("lstm", "policy.json"))
    meta["format_version"] = 99
    (tmp_path / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(ExportError, match="format_version 99"):
        read_sidecar(str(tmp_path))
    blob = open(fixture("lstm", "policy.safetensors"), "rb").read()
    (tmp_path / "short.safetensors").write_bytes(blob[:100])
    with pytest.raises(ExportError, match="runs past the end"):
        read_safetensors(str(tmp_path / "short.safetensors"))
    (tmp_path / "cut.safetensors").write_bytes(blob[:-4])
    with pytest.raises(ExportError, match="data_offsets"):
        read_safetensors(str(tmp_path / "cut.safetensors"))
    with pytest.raises(ExportError, match="export folder"):
        herd_policy.load(str(tmp_path / "cut.safetensors"))


def test_a_reset_zeroes_the_state(tmp_path):
    """The runner's episode starts matter: without resets the LSTM's outputs change."""
    pytest.importorskip("onnxruntime")
    from herd_policy.check import run_onnx

    inputs = load_json(fixture("lstm", "inputs.json"))
    with_resets = run_onnx(fixture("lstm"), inputs)
    never = dict(inputs, reset=[[1 if t == 0 else 0 for _ in row] for t, row in enumerate(inputs["reset"])])
    assert worst(run_onnx(fixture("lstm"), never), with_resets) > 1e-3
    shutil.copytree(fixture("lstm"), tmp_path / "copy")
    assert worst(run_onnx(str(tmp_path / "copy"), inputs), with_resets) == 0
