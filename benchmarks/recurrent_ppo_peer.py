"""sb3-contrib's RecurrentPPO on the tasks Herd's sample-reuse preset is measured on.

Writes one JSON file per run: the hyperparameters used and the learning curve as
(env steps, wall seconds, mean return over the last 100 episodes) after every
finished episode. `benchmarks/sample-reuse.sh` runs it beside Herd and
`benchmarks/plot_curves.py` draws both. Not part of `make test`: it needs PyTorch.

    pip install sb3-contrib popgym    # into a virtualenv of its own
    python benchmarks/recurrent_ppo_peer.py --env StatelessCartPole-v1 --seed 1 \
        --steps 300000 --out /tmp/ppo-scp-1.json

Hyperparameters:
- StatelessCartPole-v1: RL Zoo's `ppo_lstm` entry for CartPoleNoVel-v1 (the same
  task: CartPole-v1 showing only the cart position and pole angle), including its
  VecNormalize of observations and rewards and its linear schedules.
- popgym-RepeatPreviousEasy-v0: RL Zoo has no entry, so RecurrentPPO's defaults with
  8 environments (n_steps 128, batch 128, 10 epochs, lr 3e-4, LSTM 256).
"""

import argparse
import json
import os
import sys
import time

import gymnasium as gym
import numpy as np


class PositionsOnly(gym.ObservationWrapper):
    """CartPole-v1 without the velocities: what Herd's StatelessCartPole-v1 shows."""

    def __init__(self, env):
        super().__init__(env)
        low, high = env.observation_space.low, env.observation_space.high
        self.observation_space = gym.spaces.Box(low[[0, 2]], high[[0, 2]], dtype=np.float32)

    def observation(self, observation):
        return observation[[0, 2]].astype(np.float32)


def linear(start):
    # SB3 passes the remaining progress, 1 -> 0.
    return lambda remaining: remaining * start


def setup(env_id):
    import torch.nn as nn

    if env_id == "StatelessCartPole-v1":
        make = lambda: PositionsOnly(gym.make("CartPole-v1"))
        kwargs = dict(
            n_steps=32, batch_size=256, n_epochs=20, gamma=0.98, gae_lambda=0.8, ent_coef=0.0,
            learning_rate=linear(1e-3), clip_range=linear(0.2),
            policy_kwargs=dict(
                ortho_init=False, activation_fn=nn.ReLU, lstm_hidden_size=64, enable_critic_lstm=True,
                net_arch=dict(pi=[64], vf=[64])))
        return make, 8, kwargs, True, "RL Zoo ppo_lstm CartPoleNoVel-v1"
    if env_id.startswith("popgym-"):
        import popgym  # noqa: F401  (registers the popgym-* ids)

        make = lambda: gym.make(env_id)
        return make, 8, {}, False, "RecurrentPPO defaults, 8 envs"
    sys.exit(f"unknown --env {env_id!r}: choose StatelessCartPole-v1 or a popgym-* id")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", required=True, help="StatelessCartPole-v1 or popgym-RepeatPreviousEasy-v0")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", type=int, required=True, help="environment steps to train for")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", required=True, help="JSON file for the curve")
    args = parser.parse_args()

    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    torch.set_num_threads(args.threads)
    make, n_envs, kwargs, normalize, source = setup(args.env)
    venv = DummyVecEnv([lambda: Monitor(make()) for _ in range(n_envs)])
    venv.seed(args.seed)
    if normalize:
        venv = VecNormalize(venv, gamma=kwargs["gamma"])

    curve, returns = [], []
    start = time.perf_counter()

    last_report = [start]

    def dump(finished):
        # Written at each progress report too, so a run cut short keeps its curve.
        shown = {k: (v if isinstance(v, (int, float)) else repr(v)) for k, v in kwargs.items()}
        with open(args.out + ".tmp", "w") as f:
            json.dump(dict(system="sb3-contrib RecurrentPPO", env=args.env, seed=args.seed, hyperparameters=source,
                           n_envs=n_envs, vec_normalize=normalize, settings=shown, torch_threads=args.threads,
                           finished=finished, wall_seconds=time.perf_counter() - start,
                           curve=[dict(env_steps=s, wall_seconds=round(t, 3), mean_return=m, episodes=n)
                                  for s, t, m, n in curve]), f)
        os.replace(args.out + ".tmp", args.out)

    class Curve(BaseCallback):
        def _on_step(self):
            now = time.perf_counter()
            if now - last_report[0] >= 30:
                last_report[0] = now
                mean = f"{np.mean(returns[-100:]):.3f}" if returns else "-"
                print(f"{args.env} seed {args.seed}: {self.num_timesteps:,} / {args.steps:,} steps, "
                      f"{now - start:.0f} s, mean return {mean}", file=sys.stderr, flush=True)
                dump(False)
            for info in self.locals["infos"]:
                if "episode" in info:
                    returns.append(info["episode"]["r"])
                    window = returns[-100:]
                    curve.append((self.num_timesteps, time.perf_counter() - start, float(np.mean(window)), len(window)))
            return True

    model = RecurrentPPO("MlpLstmPolicy", venv, seed=args.seed, device="cpu", **kwargs)
    model.learn(total_timesteps=args.steps, callback=Curve())
    dump(True)
    best = max((m for _, _, m, n in curve if n >= 100), default=None)
    print(f"{args.env} seed {args.seed}: {args.steps} steps in {time.perf_counter() - start:.1f} s, "
          f"best mean return over 100 episodes {best}")


if __name__ == "__main__":
    main()
