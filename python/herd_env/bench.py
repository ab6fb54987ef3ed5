"""Reference rates for ``herd bench envhost``: the same K environments stepped in this
one Python process, with random actions, printed as one JSON line.

``--mode loop``: a plain loop over K ``gymnasium.make`` environments (what a host
process does, without the bridge); ``sync``: ``SyncVectorEnv``; ``async``:
``AsyncVectorEnv(shared_memory=True)`` (one process per environment).
"""

import argparse
import json
import time

import gymnasium
import numpy as np

from herd_env.make import make_env, resolve


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
        n = envs[0].action_space.n
        steps = 0
        start = time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            actions = rng.integers(0, n, size=k).tolist()
            for i, e in enumerate(envs):
                _, _, term, trunc, _ = e.step(actions[i])
                if term or trunc:
                    e.reset()
            steps += k
        elapsed = time.perf_counter() - start
    else:
        fns = [lambda: gymnasium.make(env_id) for _ in range(k)]
        if args.mode == "sync":
            venv = gymnasium.vector.SyncVectorEnv(fns)
        else:
            venv = gymnasium.vector.AsyncVectorEnv(fns, shared_memory=True)
        venv.reset(seed=0)
        n = venv.single_action_space.n
        steps = 0
        start = time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            venv.step(rng.integers(0, n, size=k))
            steps += k
        elapsed = time.perf_counter() - start
        venv.close()
    print(json.dumps({"mode": args.mode, "env": args.env, "count": k, "steps_per_second": steps / elapsed}))


if __name__ == "__main__":
    main()
