"""Draws learning curves of Herd runs and RecurrentPPO runs in one figure.

Return (mean over the last 100 episodes) against environment steps on the left and
against wall seconds on the right, one line per run, one colour per system.

    python benchmarks/plot_curves.py --title "StatelessCartPole-v1" --out curves.png \
        herd-preset=/tmp/cmp/herd-preset-*/progress.jsonl ppo=/tmp/cmp/ppo-*.json

Each argument is LABEL=FILE[,FILE...] (shell globs already expanded are fine: every
following FILE without a `=` joins the last label). Herd files are a run's
progress.jsonl; RecurrentPPO files are what recurrent_ppo_peer.py writes. Needs
matplotlib.
"""

import argparse
import json
import sys


def herd_curve(path):
    out = []
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            if d.get("episodes/window", 0) >= 100 and d.get("episode_return/mean") is not None:
                out.append((d["env_steps/sampled"], d["run/wall_seconds"], d["episode_return/mean"]))
    return out


def peer_curve(path):
    d = json.load(open(path))
    return [(p["env_steps"], p["wall_seconds"], p["mean_return"]) for p in d["curve"] if p["episodes"] >= 100]


def load(path):
    if path.endswith(".jsonl"):
        return herd_curve(path)
    if path.endswith(".json"):
        return peer_curve(path)
    sys.exit(f"{path}: expected a Herd progress.jsonl or a recurrent_ppo_peer.py .json")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--title", default="")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--target", type=float, help="draw the target return as a dashed line")
    parser.add_argument("series", nargs="+", help="LABEL=FILE [FILE ...]")
    args = parser.parse_args()

    groups = {}
    label = None
    for item in args.series:
        if "=" in item:
            label, item = item.split("=", 1)
        if label is None:
            sys.exit(f"{item}: give a label first, as LABEL=FILE")
        groups.setdefault(label, []).extend(p for p in item.split(",") if p)

    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_steps, by_time) = plt.subplots(1, 2, figsize=(11, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, paths) in enumerate(groups.items()):
        for j, path in enumerate(paths):
            curve = load(path)
            if not curve:
                print(f"{path}: no point with 100 episodes yet", file=sys.stderr)
                continue
            steps, seconds, returns = zip(*curve)
            kw = dict(color=colours[k % len(colours)], alpha=0.85, linewidth=1.2, label=name if j == 0 else None,
                      marker="o" if len(steps) == 1 else None)
            by_steps.plot(steps, returns, **kw)
            by_time.plot(seconds, returns, **kw)
    for ax, xlabel in ((by_steps, "environment steps"), (by_time, "wall seconds")):
        if args.target is not None:
            ax.axhline(args.target, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("mean return, last 100 episodes")
        ax.grid(alpha=0.3)
    by_time.set_xscale("log")
    # Steps as 100k, 1.5M: full numbers run into each other.
    by_steps.xaxis.set_major_formatter(
        matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1e6:g}M" if x >= 1e6 else f"{x / 1e3:g}k" if x else "0"))
    by_steps.legend()
    fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
