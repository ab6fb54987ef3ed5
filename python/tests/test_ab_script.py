"""benchmarks/ab.py: alternating pairs, the ratio B/A per rate, and its errors."""

import os
import subprocess
import sys

AB = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "ab.py")

# A stand-in for `herd bench`: its rates depend on SPEED, and it logs the order it ran in.
FAKE_BENCH = """
import os, sys
speed = float(os.environ.get("SPEED", "1"))
with open(sys.argv[1], "a") as log:
    log.write(os.environ.get("SPEED", "-") + "\\n")
print("round 1/1: 999 vs floor 1 timesteps/s")
print(f"LSTM forward+backward: {1000 * speed:.0f} timesteps/s, 2.0 GFLOP/s (median of 1 rounds)")
print(f"K=32: {500 * speed * speed:.0f} steps/s (median of 1 rounds)")
"""


def run_ab(tmp_path, *args):
    bench = tmp_path / "bench.py"
    bench.write_text(FAKE_BENCH)
    log = tmp_path / "order.log"
    done = subprocess.run([sys.executable, AB, *args, "--", sys.executable, str(bench), str(log)],
                          capture_output=True, text=True)
    order = log.read_text().split() if log.exists() else []
    return done, order


def test_the_ratio_of_each_rate_and_the_alternating_order(tmp_path):
    done, order = run_ab(tmp_path, "--a", "SPEED=1", "--b", "SPEED=1.5", "--pairs", "3")
    assert done.returncode == 0, done.stderr
    assert order == ["1", "1.5", "1.5", "1", "1", "1.5"]
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("| ")}
    assert "| 1.500 | 1.500-1.500 |" in rows["LSTM forward+backward (timesteps/s)"]
    assert "| 2.250 | 2.250-2.250 |" in rows["K=32 (steps/s)"]
    assert not any(key.startswith("round") for key in rows)


def test_the_same_sides_and_a_bad_setting_are_refused(tmp_path):
    done, order = run_ab(tmp_path, "--a", "SPEED=1", "--b", "SPEED=1")
    assert done.returncode == 2 and "A and B are the same" in done.stderr and order == []
    done, _ = run_ab(tmp_path, "--a", "SPEED", "--b", "SPEED=2")
    assert done.returncode == 2 and "'SPEED' is not VAR=VALUE" in done.stderr
