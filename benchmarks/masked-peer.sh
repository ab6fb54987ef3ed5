#!/usr/bin/env bash
# Herd beside sb3-contrib's MaskablePPO on herd_env.games' masked TicTacToe, seed by
# seed in one session, each with the same wall-clock budget: Herd's defaults for a
# gym:ID (LSTM, mask on), then MaskablePPO (benchmarks/maskable_ppo_peer.py). Prints
# each run's env steps and seconds until its 100-episode win rate first reached 0.9,
# and its last win and illegal-move rates. Not part of `make test`.
#
# usage: benchmarks/masked-peer.sh [SEEDS...]     (default seed: 1)
# Environment: PEER_PYTHON, a Python with sb3-contrib (pip install sb3-contrib; it
# pulls in PyTorch); SECONDS_EACH the budget per run (default 180); OUT the output
# folder (default a new temporary one). Needs `make build venv`; runs from the
# repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
herd=.build/release/herd
peer=${PEER_PYTHON:?set PEER_PYTHON to a Python with sb3-contrib}
export HERD_PYTHON=${HERD_PYTHON:-$PWD/.venv/bin/python}
seeds=("${@:-1}")
budget=${SECONDS_EACH:-180}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
echo "TicTacToe (masked), ${budget} s per run, seeds ${seeds[*]}; output in $out"
for seed in "${seeds[@]}"; do
  dir="$out/herd-$seed"
  rm -rf "$dir"
  "$herd" train --env gym:herd_env.games:Herd/TicTacToe-v0 --run-dir "$dir" --seed "$seed" \
    --stop-seconds "$budget" --no-stats --quiet --set 'episode_info_keys=["win","illegal"]' \
    --set progress_interval_seconds=0.5 >/dev/null 2>"$dir.log" || { cat "$dir.log" >&2; exit 1; }
  "$HERD_PYTHON" - "$dir" "$seed" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/progress.jsonl")]
first = next((r for r in rows if (r.get("episode_info/win") or 0) >= 0.9), None)
last = rows[-1]
reached = (f"win >= 0.9 first at {first['env_steps/sampled']} steps ({first['run/wall_seconds']:.1f} s)"
           if first else "win never >= 0.9")
print(f"herd        seed {sys.argv[2]}: {last['env_steps/sampled']} steps in {last['run/wall_seconds']:.1f} s; "
      f"{reached}; final win {last['episode_info/win']:.2f}, illegal {last['episode_info/illegal']:.2f}")
PY
  printf "maskableppo "
  PYTHONPATH=python "$peer" benchmarks/maskable_ppo_peer.py --seed "$seed" --seconds "$budget" \
    --out "$out/maskable-$seed.json" 2>"$out/maskable-$seed.log"
done
