#!/usr/bin/env python3
"""Writes Pendulum-v1 trajectories from Gymnasium for Herd's Pendulum test.

Run by hand (not by `make test`), with gymnasium from PyPI (the project's
virtualenv has it):

    .venv/bin/python Tests/Fixtures/make_pendulum.py

For each seed it records the state after reset(seed=...) as hex floats (exact),
then torques drawn uniformly from [-3, 3] (beyond the [-2, 2] bounds half the
time, so the environment's own clipping is covered) and every observation,
reward and truncation flag until the 200-step time limit. Herd's test starts its
Pendulum from the same state, replays the torques and compares.
"""
import json
import os

import gymnasium as gym
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference", "pendulum.json")


def episode(seed):
    env = gym.make("Pendulum-v1")
    env.reset(seed=seed)
    initial = [float(v).hex() for v in env.unwrapped.state]
    rng = np.random.default_rng(seed + 1000)
    steps = []
    while True:
        u = float(rng.uniform(-3, 3))
        obs, r, term, trunc, _ = env.step(np.array([u], dtype=np.float32))
        steps.append({"action": float(np.float32(u)), "obs": [float(v) for v in obs], "reward": float(r),
                      "terminated": bool(term), "truncated": bool(trunc)})
        if term or trunc:
            break
    return {"seed": seed, "initial_state": initial, "steps": steps}


if __name__ == "__main__":
    episodes = [episode(s) for s in range(4)]
    with open(OUT, "w") as f:
        json.dump({"gymnasium_version": gym.__version__, "episodes": episodes}, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", OUT, [len(e["steps"]) for e in episodes])
