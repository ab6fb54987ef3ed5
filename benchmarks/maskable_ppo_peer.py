"""sb3-contrib's MaskablePPO on Herd's masked TicTacToe (herd_env.games).

Writes one JSON file per run: the hyperparameters used and the learning curve as
(env steps, wall seconds, mean return over the last 100 episodes, win rate and
illegal-move rate over those episodes) after every finished episode, so the run
can be set beside `herd train` on the same environment. Not part of `make test`:
it needs PyTorch.

    pip install sb3-contrib    # into a virtualenv of its own, with herd_env importable
    PYTHONPATH=python python benchmarks/maskable_ppo_peer.py --seed 1 --seconds 60 \\
        --out /tmp/maskable-1.json

MaskablePPO reads the mask from the environment's `action_masks()` method, which
TicTacToe has; its observation is the Dict (board and mask) through
`MultiInputPolicy`. Hyperparameters: MaskablePPO's defaults (n_steps 2048 per
environment, batch 64, 10 epochs, lr 3e-4, MLP [64, 64]) with 8 environments,
RL Zoo's default count for cheap environments. No recurrent core: the board is the
whole state.
"""

import argparse
import json
import time
from collections import deque

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=60, help="wall-clock budget")
    ap.add_argument("--envs", type=int, default=8)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import torch
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    import herd_env.games  # noqa: F401  (registers Herd/TicTacToe-v0)

    torch.set_num_threads(1)
    env = make_vec_env("Herd/TicTacToe-v0", n_envs=args.envs, seed=args.seed)
    kwargs = dict(n_steps=2048, batch_size=64, n_epochs=10, learning_rate=3e-4)
    model = MaskablePPO("MultiInputPolicy", env, seed=args.seed, verbose=0, **kwargs)

    start = time.perf_counter()
    window = deque(maxlen=100)
    curve = []

    class Curve(BaseCallback):
        def _on_step(self):
            for info, done, reward in zip(self.locals["infos"], self.locals["dones"], self.locals["rewards"]):
                if done:
                    window.append((float(reward), info.get("win", 0), info.get("illegal", 0)))
                    if len(window) == 100:
                        r = np.array(window)
                        curve.append(
                            [self.num_timesteps, time.perf_counter() - start, float(r[:, 0].mean()),
                             float(r[:, 1].mean()), float(r[:, 2].mean())])
            return time.perf_counter() - start < args.seconds

    model.learn(total_timesteps=10**9, callback=Curve())
    result = {
        "peer": "sb3-contrib MaskablePPO " + __import__("sb3_contrib").__version__,
        "torch": torch.__version__,
        "env": "Herd/TicTacToe-v0",
        "seed": args.seed,
        "envs": args.envs,
        "hyperparameters": kwargs | {"policy": "MultiInputPolicy", "torch_threads": 1},
        "curve_columns": ["env_steps", "seconds", "mean_return", "win", "illegal"],
        "curve": curve,
    }
    with open(args.out, "w") as f:
        json.dump(result, f)
    # The budget is checked as steps are taken: the update after the last
    # rollout still runs, so the run ends a little after it.
    elapsed = time.perf_counter() - start
    steps = curve[-1][0] if curve else 0
    first = next((c for c in curve if c[3] >= 0.9), None)
    reached = f"win >= 0.9 first at {first[0]} steps ({first[1]:.1f} s)" if first else "win never >= 0.9"
    final = f"final win {curve[-1][3]:.2f}, illegal {curve[-1][4]:.2f}" if curve else "no 100 episodes"
    print(f"seed {args.seed}: {steps} steps in {elapsed:.1f} s; {reached}; {final}")


if __name__ == "__main__":
    main()
