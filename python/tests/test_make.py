"""make_env's handling of MuJoCo's warnings."""

import subprocess
import sys

import pytest

from herd_env import make


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(make, "_mujoco_warnings", set())


def test_each_distinct_warning_is_logged_once(fresh, capsys):
    for message in ["a deprecation", "a deprecation", "another", "a deprecation", "another"]:
        make.mujoco_warning(message)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].endswith("MuJoCo warning: a deprecation (shown once per process)")
    assert lines[1].endswith("MuJoCo warning: another (shown once per process)")
    assert all(line.startswith("herd_env[") for line in lines)


def test_past_the_cap_one_line_says_the_rest_are_held_back(fresh, monkeypatch, capsys):
    monkeypatch.setattr(make, "MAX_MUJOCO_WARNINGS", 2)
    for message in ["w1", "w2", "w3", "w4", "w1", "w5"]:
        make.mujoco_warning(message)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("MuJoCo warning: ")[1] for line in lines] == [
        "w1 (shown once per process)",
        "w2 (shown once per process)",
        "more than 2 different warnings; the rest are not shown",
    ]


MAKE_THREE = """
import mujoco
from herd_env import make
envs = [make.make_env("HalfCheetah-v5") for _ in range(3)]
assert mujoco.get_mju_user_warning() is make.mujoco_warning, mujoco.get_mju_user_warning()
"""


def test_a_mujoco_host_neither_repeats_warnings_nor_writes_a_log_file(tmp_path):
    """Three HalfCheetahs in a fresh process, run in an empty folder: Herd's handler
    is MuJoCo's, each warning MuJoCo gives comes once in Herd's format, none in
    MuJoCo's own ("WARNING: ..."), and no MUJOCO_LOG.TXT appears."""
    pytest.importorskip("mujoco")
    r = subprocess.run([sys.executable, "-c", MAKE_THREE], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ours = [line for line in r.stderr.splitlines() if "MuJoCo warning: " in line]
    assert len(ours) == len(set(ours)), r.stderr
    assert "WARNING:" not in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []
