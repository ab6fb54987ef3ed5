#!/usr/bin/env bash
# Gaussian policies on Pendulum, seed after seed in one session: the memory test
# for continuous control. Prints each run's env steps and seconds to the target
# mean return (over 100 episodes) or its best, and the summary lines.
# Not part of `make test`.
#
# usage: benchmarks/continuous.sh TASK [SEEDS...]     (default seeds: 1 2 3)
#   TASK: pendulum   gym:Pendulum-v1 through the env host with configs/Pendulum-v1.json,
#                    feed-forward, then an LSTM(64); target -200, 600k steps
#         stateless  StatelessPendulum-v1 (angle only, no velocity) with its defaults,
#                    LSTM(64) then feed-forward; target -300, 1.2M steps
#         stateless-prev the same LSTM(64) without, then with, the previous action
#                    (its float, clipped) as an input; target -300, 1.2M steps
# Environment: STEPS overrides the budget, OUT the output folder (default a new
# temporary one), EXTRA more train options for every run (EXTRA="--set
# log_std_init=-2"). Needs `make build venv`; runs from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
herd=.build/release/herd
export HERD_PYTHON=${HERD_PYTHON:-$PWD/.venv/bin/python}
task=${1:?usage: $0 pendulum|stateless|stateless-prev [SEEDS...]}
shift
seeds=("${@:-1 2 3}")
read -r -a seeds <<<"${seeds[*]}"
case $task in
  pendulum) env=gym:Pendulum-v1 target=-200 steps=${STEPS:-600000}
    base=(--config configs/Pendulum-v1.json)
    variants=("feed-forward:" "lstm:--set use_lstm=true --set lr_decay_env_steps=$steps") ;;
  stateless) env=StatelessPendulum-v1 target=-300 steps=${STEPS:-1200000}
    base=()
    variants=("lstm:" "feed-forward:--set use_lstm=false") ;;
  stateless-prev) env=StatelessPendulum-v1 target=-300 steps=${STEPS:-1200000}
    base=()
    variants=("lstm:" "lstm+prev-a:--set lstm_use_prev_action=true") ;;
  *) echo "unknown TASK $task: pendulum, stateless or stateless-prev" >&2; exit 2 ;;
esac
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
echo "$task: $env, target $target, $steps steps, seeds ${seeds[*]}${EXTRA:+, $EXTRA}; output in $out"
for v in "${variants[@]}"; do
  name=${v%%:*}
  read -r -a extra <<<"${v#*:} ${EXTRA:-}"
  for seed in "${seeds[@]}"; do
    dir="$out/$name-$seed"
    rm -rf "$dir"
    "$herd" train --env "$env" --run-dir "$dir" --seed "$seed" --stop-steps "$steps" "--stop-reward=$target" \
      --no-stats --quiet ${base[@]+"${base[@]}"} ${extra[@]+"${extra[@]}"} >/dev/null 2>"$dir.log" || { cat "$dir.log" >&2; exit 1; }
    python3 - "$dir" "$name" "$seed" <<'PY'
import json, sys
run, name, seed = sys.argv[1:]
s = json.load(open(f"{run}/summary.json"))
if s["stop_reward_reached"]:
    reach = f"reached at {s['env_steps_to_stop_reward']:>9,} steps {s['seconds_to_stop_reward']:7.1f} s"
else:
    reach = f"not reached in {s['env_steps']:,} steps ({s['wall_seconds']:.1f} s)"
print(f"{name:12s} seed {seed}: {reach}; best {s['best_mean_return']:.1f}, final {s['final_mean_return']:.1f}")
PY
  done
done
