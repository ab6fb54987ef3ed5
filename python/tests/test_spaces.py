import json

import numpy as np
import pytest
from gymnasium import spaces

from herd_env.spaces import ActionMapper, Flattener, describe, dropped, flat_dtype, flat_size


def test_box_describe_and_flatten_keeps_c_order():
    s = spaces.Box(-1.0, 1.0, (2, 3), np.float32)
    d = describe(s)
    assert d == {"type": "box", "shape": [2, 3], "dtype": "float32", "low": [-1.0], "high": [1.0]}
    f = Flattener(s)
    row = np.zeros(6, np.float32)
    f(np.arange(6, dtype=np.float32).reshape(2, 3), row)
    assert row.tolist() == [0, 1, 2, 3, 4, 5]


def test_infinite_bounds_are_strings_and_per_element_bounds_are_kept():
    s = spaces.Box(np.array([-np.inf, 0], np.float32), np.array([np.inf, 2], np.float32))
    d = describe(s)
    assert d["low"] == ["-inf", 0.0] and d["high"] == ["inf", 2.0]
    json.dumps(d, allow_nan=False)  # valid JSON: no bare Infinity


def test_discrete_is_one_hot_from_start():
    f = Flattener(spaces.Discrete(4, start=2))
    row = np.full(4, 9, np.float32)
    f(3, row)
    assert row.tolist() == [0, 1, 0, 0]


def test_multi_discrete_is_one_one_hot_per_component():
    f = Flattener(spaces.MultiDiscrete([2, 3]))
    row = np.zeros(5, np.float32)
    f(np.array([1, 2]), row)
    assert row.tolist() == [0, 1, 0, 0, 1]


def test_dict_flattens_in_key_order_and_drops_text():
    import herd_env.testing_envs  # noqa: F401  (registers HerdTest/Spaces-v0)
    import gymnasium

    env = gymnasium.make("HerdTest/Spaces-v0")
    s = env.observation_space
    # Gymnasium sorts the keys: bits, box, cat, multi, pair, text.
    assert [e["key"] for e in describe(s)["spaces"]] == ["bits", "box", "cat", "multi", "pair", "text"]
    assert flat_size(s) == 3 + 4 + 3 + 5 + (2 + 2)
    assert flat_dtype(s) == np.float32
    assert dropped(s) == ["text (Text)"]
    obs = {
        "bits": np.array([1, 0, 1], np.int8),
        "box": np.array([[0.5, -0.5], [0.25, 1.0]], np.float32),
        "cat": 2,
        "multi": np.array([0, 2]),
        "pair": (1, np.array([7, 255], np.uint8)),
        "text": "abc",
    }
    row = np.zeros(flat_size(s), np.float32)
    Flattener(s)(obs, row)
    assert row.tolist() == [1, 0, 1, 0.5, -0.5, 0.25, 1.0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 1, 7, 255]


def test_uint8_box_stays_bytes():
    s = spaces.Box(0, 255, (7, 7, 3), np.uint8)
    assert flat_dtype(s) == np.uint8
    assert flat_dtype(spaces.Dict({"image": s, "mission": spaces.Text(5)})) == np.uint8
    assert flat_dtype(spaces.Dict({"image": s, "direction": spaces.Discrete(4)})) == np.float32


def test_actions_map_from_zero_based_heads():
    block = np.array([[0], [2]], np.int32)
    assert ActionMapper(spaces.Discrete(3, start=-1)).actions(block) == [-1, 1]
    m = ActionMapper(spaces.MultiDiscrete([3, 2], start=[1, 0]))
    acts = m.actions(np.array([[0, 1], [2, 0]], np.int32))
    assert [a.tolist() for a in acts] == [[1, 1], [3, 0]]


def test_box_actions_are_float32_bits_reshaped_and_cast():
    m = ActionMapper(spaces.Box(-2.0, 2.0, (2, 2), np.float64))
    assert m.dims == 4 and m.box
    floats = np.array([[0.5, -1.0, 2.0, 1.5], [0.0, 0.25, -2.0, 1.0]], np.float32)
    acts = m.actions(floats.view(np.int32))  # the shared memory holds them as 4-byte words
    assert len(acts) == 2
    assert acts[0].shape == (2, 2) and acts[0].dtype == np.float64
    assert acts[0].tolist() == [[0.5, -1.0], [2.0, 1.5]] and acts[1].tolist() == [[0.0, 0.25], [-2.0, 1.0]]


def test_unsupported_action_space_names_itself():
    with pytest.raises(ValueError, match="Box.*Discrete, one-dimensional MultiDiscrete and float Box"):
        ActionMapper(spaces.Box(0, 5, (2,), np.int64))
    with pytest.raises(ValueError, match="not supported"):
        ActionMapper(spaces.MultiBinary(3))
