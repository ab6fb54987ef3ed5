"""Reference rates for ``herd bench envhost``: the same K environments stepped in this
one Python process, with random actions, printed as one JSON line.

``--mode loop``: a plain loop over K environments (what a host process does,
without the bridge); ``sync``: ``SyncVectorEnv``; ``async``:
``AsyncVectorEnv(shared_memory=True)`` (one process per environment). Every mode
makes its environments as the host does (``make_env``: Herd's Atari preprocessing,
MuJoCo's warnings once).
"""

import argparse
import json
import time

import gymnasium
import numpy as np

from herd_env.make import make_env, resolve


def random_actions(space, rng, k):
    """K random actions of ``space`` stacked on a leading axis: uniform over a
    Discrete's or MultiDiscrete's values, uniform within a Box's bounds (a standard
    normal where a bound is infinite); other spaces through their own ``sample``."""
    if isinstance(space, gymnasium.spaces.Discrete):
        return rng.integers(space.start, space.start + space.n, size=k)
    if isinstance(space, gymnasium.spaces.MultiDiscrete):
        return space.start + rng.integers(0, space.nvec, size=(k,) + space.nvec.shape)
    if isinstance(space, gymnasium.spaces.Box):
        shape = (k,) + space.shape
        finite = np.isfinite(space.low) & np.isfinite(space.high)
        low, high = np.where(finite, space.low, 0), np.where(finite, space.high, 1)
        return np.where(finite, rng.uniform(low, high, size=shape), rng.standard_normal(shape)).astype(space.dtype)
    return np.stack([space.sample() for _ in range(k)])


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m herd_env.bench")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--count", type=int, default=32)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--mode", choices=["loop", "sync", "async"], default="sync")
    args = p.parse_args(argv)
    env_id = resolve(args.env)
    k = args.count
    rng = np.random.default_rng(0)
    if args.mode == "loop":
        envs = [make_env(env_id) for _ in range(k)]
        for i, e in enumerate(envs):
            e.reset(seed=i)
        space = envs[0].action_space
        steps = 0
        start = time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            actions = random_actions(space, rng, k)
            for i, e in enumerate(envs):
                _, _, term, trunc, _ = e.step(actions[i])
                if term or trunc:
                    e.reset()
            steps += k
        elapsed = time.perf_counter() - start
    else:
        fns = [lambda: make_env(env_id) for _ in range(k)]
        if args.mode == "sync":
            venv = gymnasium.vector.SyncVectorEnv(fns)
        else:
            venv = gymnasium.vector.AsyncVectorEnv(fns, shared_memory=True)
        venv.reset(seed=0)
        space = venv.single_action_space
        steps = 0
        start = time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            venv.step(random_actions(space, rng, k))
            steps += k
        elapsed = time.perf_counter() - start
        venv.close()
    print(json.dumps({"mode": args.mode, "env": args.env, "count": k, "steps_per_second": steps / elapsed}))


if __name__ == "__main__":
    main()
