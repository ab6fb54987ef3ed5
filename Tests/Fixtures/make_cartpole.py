#!/usr/bin/env python3
"""Writes CartPole-v1 trajectories from Gymnasium for Herd's CartPole test.

Run by hand (not by `make test`), with gymnasium from PyPI:

    python3 -m venv /tmp/gymenv && /tmp/gymenv/bin/pip install gymnasium
    /tmp/gymenv/bin/python Tests/Fixtures/make_cartpole.py

For each seed it records the initial state after reset(seed=...), random actions
(from a separate seeded generator), and every observation, reward, terminated and
truncated flag until the episode ends (so episodes of 500 steps show the time-limit
truncation). Initial states are written as hex floats (exact). Herd's test starts its CartPole from the same initial state, replays
the actions and compares (1e-5).
"""
import json
import os

import gymnasium as gym
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference", "cartpole.json")


def episode(seed, policy):
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=seed)
    # Exact doubles as hex strings: a 1-ulp parse error grows over 500 steps.
    initial = [float(v).hex() for v in env.unwrapped.state]
    rng = np.random.default_rng(seed + 1000)
    steps = []
    while True:
        a = policy(obs, rng)
        obs, r, term, trunc, _ = env.step(a)
        steps.append({"action": int(a), "obs": [float(v) for v in obs], "reward": float(r),
                      "terminated": bool(term), "truncated": bool(trunc)})
        if term or trunc:
            break
    return {"seed": seed, "initial_state": initial, "steps": steps}


def random_policy(obs, rng):
    return int(rng.integers(2))


def balancing_policy(obs, rng):
    # A simple controller that keeps the pole up for the whole 500 steps, so the
    # fixture also covers truncation; a little noise keeps the trajectory varied.
    a = 1 if obs[2] + 0.5 * obs[3] + 0.01 * obs[1] > 0 else 0
    return a if rng.random() > 0.05 else 1 - a


if __name__ == "__main__":
    episodes = [episode(s, random_policy) for s in range(8)]
    episodes += [episode(100 + s, balancing_policy) for s in range(2)]
    with open(OUT, "w") as f:
        json.dump({"gymnasium_version": gym.__version__, "episodes": episodes}, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", OUT, [len(e["steps"]) for e in episodes],
          [e["steps"][-1]["truncated"] for e in episodes])
