#!/usr/bin/env bash
# Herd beside sb3-contrib's RecurrentPPO on the same task, seed by seed in one
# session (Herd's defaults, Herd's sample-efficient preset, then RecurrentPPO), and
# one figure of their return-vs-steps and return-vs-seconds curves. Prints each run's
# steps and seconds to the target and its best mean return over 100 episodes.
# Not part of `make test`.
#
# usage: benchmarks/sample-reuse.sh TASK [SEEDS...]     (default seed: 1)
#   TASK: stateless-cartpole (target 475, 300k steps)
#         repeat-previous    (popgym-RepeatPreviousEasy-v0 through the env host,
#                             target 0.9, 1.5M steps)
# Environment: PEER_PYTHON, a Python with sb3-contrib, popgym and matplotlib
# (pip install sb3-contrib popgym matplotlib; it pulls in PyTorch); STEPS overrides
# the budget; OUT the output folder (default a new temporary one); KEEP_PEER=1 keeps
# RecurrentPPO curves already in OUT instead of running them again (they are slow).
# Needs `make build venv`; runs from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
herd=.build/release/herd
peer=${PEER_PYTHON:?set PEER_PYTHON to a Python with sb3-contrib, popgym and matplotlib}
export HERD_PYTHON=${HERD_PYTHON:-$PWD/.venv/bin/python}
task=${1:?usage: $0 stateless-cartpole|repeat-previous [SEEDS...]}
shift
seeds=("${@:-1}")
case $task in
  stateless-cartpole) env=StatelessCartPole-v1 peer_env=StatelessCartPole-v1 target=475 steps=${STEPS:-300000} ;;
  repeat-previous) env=gym:popgym-RepeatPreviousEasy-v0 peer_env=popgym-RepeatPreviousEasy-v0 target=0.9
    steps=${STEPS:-1500000} ;;
  *) echo "unknown TASK $task: stateless-cartpole or repeat-previous" >&2; exit 2 ;;
esac
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
echo "$task: $env, target $target, $steps steps, seeds ${seeds[*]}; output in $out"

herd_run() {  # name seed args...
  local name=$1 seed=$2; shift 2
  local dir="$out/herd-$name-$seed"
  rm -rf "$dir"
  "$herd" train --env "$env" --run-dir "$dir" --seed "$seed" --stop-steps "$steps" --no-stats --quiet \
    --set progress_interval_seconds=0.5 "$@" >/dev/null 2>"$dir.log" || { cat "$dir.log" >&2; return 1; }
  python3 - "$dir" "$name" "$seed" "$target" <<'PY'
import json, sys
run, name, seed, target = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
s = json.load(open(f"{run}/summary.json"))
hit = None
for line in open(f"{run}/progress.jsonl"):
    d = json.loads(line)
    if hit is None and d.get("episodes/window", 0) >= 100 and (d.get("episode_return/mean") or -1e9) >= target:
        hit = (d["env_steps/sampled"], d["run/wall_seconds"])
reach = f"reached at {hit[0]:>9,} steps {hit[1]:7.1f} s" if hit else f"not reached in {s['env_steps']:,} steps"
print(f"herd {name:8s} seed {seed}: {reach}; best {s['best_mean_return']}, {s['wall_seconds']:.1f} s in all")
PY
}

peer_run() {  # seed
  local seed=$1
  if [ -n "${KEEP_PEER:-}" ] && [ -f "$out/ppo-$seed.json" ]; then
    echo "RecurrentPPO     seed $seed: kept from $out/ppo-$seed.json (KEEP_PEER)"
    return
  fi
  "$peer" benchmarks/recurrent_ppo_peer.py --env "$peer_env" --seed "$seed" --steps "$steps" \
    --out "$out/ppo-$seed.json" >/dev/null
  python3 - "$out/ppo-$seed.json" "$seed" "$target" <<'PY'
import json, sys
d, seed, target = json.load(open(sys.argv[1])), sys.argv[2], float(sys.argv[3])
c = [p for p in d["curve"] if p["episodes"] >= 100]
hit = next((p for p in c if p["mean_return"] >= target), None)
reach = (f"reached at {hit['env_steps']:>9,} steps {hit['wall_seconds']:7.1f} s" if hit
         else f"not reached in {c[-1]['env_steps'] if c else 0:,} steps")
best = max((p["mean_return"] for p in c), default=None)
print(f"RecurrentPPO     seed {seed}: {reach}; best {best}, {d['wall_seconds']:.1f} s in all ({d['hyperparameters']})")
PY
}

for seed in "${seeds[@]}"; do
  herd_run defaults "$seed"
  herd_run preset "$seed" --config configs/sample-efficient.json
  peer_run "$seed"
done
"$peer" benchmarks/plot_curves.py --title "$env: Herd and RecurrentPPO (seeds ${seeds[*]})" --target "$target" \
  --out "$out/$task.png" \
  "Herd defaults=$(ls "$out"/herd-defaults-*/progress.jsonl | paste -sd,)" \
  "Herd sample-efficient=$(ls "$out"/herd-preset-*/progress.jsonl | paste -sd,)" \
  "RecurrentPPO=$(ls "$out"/ppo-*.json | paste -sd,)"
