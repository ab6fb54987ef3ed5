#!/usr/bin/env bash
# Learning through the env host, beside the built-in environment, recurrent beside
# feed-forward on POPGym memory tasks and on MiniGrid-MemoryS7 (raw and with its one-hot
# view through env_wrappers). Prints one line
# per run: env, policy, seed, whether the target was reached, env steps, wall seconds,
# best mean return over 100 episodes. Not part of `make test`.
#
# usage: benchmarks/gym-learning.sh [SEEDS...]      (default: 1)
# Needs `make build venv`; runs from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
herd=.build/release/herd
export HERD_PYTHON=${HERD_PYTHON:-$PWD/.venv/bin/python}
out=$(mktemp -d)
seeds=("${@:-1}")

run() {  # name target seconds args...
  local name=$1 target=$2 seconds=$3 seed=$4; shift 4
  local dir="$out/$name-$seed"
  "$herd" train --run-dir "$dir" --seed "$seed" --stop-reward "$target" --stop-seconds "$seconds" \
    --log-level warning "$@" >/dev/null 2>"$dir.log" || true
  python3 - "$dir/summary.json" "$name" "$seed" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:44s} seed {sys.argv[3]}  reached {str(s['stop_reward_reached']):5s}  "
      f"steps {s['env_steps_to_stop_reward'] or s['env_steps']:>10,}  "
      f"seconds {s['seconds_to_stop_reward'] or s['wall_seconds']:6.1f}  best {s['best_mean_return']}")
PY
}

for seed in "${seeds[@]}"; do
  run "CartPole-v1 (built-in)"                    475 90  "$seed" --env CartPole-v1
  run "gym:CartPole-v1"                           475 90  "$seed" --env gym:CartPole-v1
  run "gym:CartPole-v1, built-in's tuned keys"    475 90  "$seed" --env gym:CartPole-v1 --set lr=0.002 --set lstm_use_prev_reward=false
  run "gym:popgym-RepeatPreviousEasy-v0 LSTM"     0.9 90  "$seed" --env gym:popgym-RepeatPreviousEasy-v0
  run "gym:popgym-RepeatPreviousEasy-v0 FF"       0.9 90  "$seed" --env gym:popgym-RepeatPreviousEasy-v0 --set use_lstm=false
  run "gym:popgym-PositionOnlyCartPoleEasy-v0 LSTM" 0.95 90 "$seed" --env gym:popgym-PositionOnlyCartPoleEasy-v0
  run "gym:popgym-PositionOnlyCartPoleEasy-v0 FF"   0.95 90 "$seed" --env gym:popgym-PositionOnlyCartPoleEasy-v0 --set use_lstm=false
  run "gym:MiniGrid-MemoryS7-v0 LSTM"             0.9 120 "$seed" --env gym:MiniGrid-MemoryS7-v0
  run "MiniGrid-MemoryS7, one-hot view, LSTM"     0.9 600 "$seed" --config configs/minigrid-memory.json
  run "MiniGrid-MemoryS7, one-hot view, FF"       0.9 300 "$seed" --config configs/minigrid-memory.json --set use_lstm=false
  run "MiniGrid-MemoryS11, one-hot view, LSTM"    0.9 600 "$seed" --config configs/minigrid-memory.json --env gym:MiniGrid-MemoryS11-v0
  run "MiniGrid-MemoryS11, one-hot view, FF"      0.9 600 "$seed" --config configs/minigrid-memory.json --env gym:MiniGrid-MemoryS11-v0 --set use_lstm=false
done
echo "run directories: $out"
