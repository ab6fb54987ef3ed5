#!/usr/bin/env bash
# Herd beside PyTorch on this machine: every comparison the README's tables show,
# in one go, each output kept in a folder with the machine's description. Not part
# of `make test`; `make bench-torch` runs it after building.
#
#   1. native: learner, lstm, gru, inference and the three encoders on this CPU's
#      widest vectors (Herd's kernels and PyTorch's libraries as they choose);
#   2. avx2: the same with both sides held to AVX2 (--isa avx2; skipped on a CPU
#      without AVX-512, where 1 already is AVX2);
#   3. bytes: the encoders fed uint8 frames, as Atari frames reach a learner;
#   4. with NARROW=1, also the convolutions' narrow tiles of 16 rows against 8
#      (benchmarks/ab.py, HERD_NARROW_ROWS), for impala_shallow and impala_deep, one
#      and two shards, float and uint8 frames.
#
# Environment: ROUNDS alternating rounds per comparison (default 5), OUT the
# folder (default runs/vs-torch-TIME). Keep the machine otherwise idle: a busy
# core moves both sides, but not by the same amount. On a 2-core AMD EPYC Zen 5,
# ROUNDS=1 took 4 minutes for 1-3 and NARROW=1 2.5 more; each round adds about 4.
set -euo pipefail
cd "$(dirname "$0")/.."
herd=.build/release/herd
py=.venv-bench/bin/python
[ -x "$herd" ] || { echo "no $herd: run make build first" >&2; exit 2; }
[ -x "$py" ] || { echo "no $py: run make bench-venv first" >&2; exit 2; }
rounds=${ROUNDS:-5}
out=${OUT:-runs/vs-torch-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$out"
{
  date -u
  git rev-parse --short HEAD 2>/dev/null || true
  "$herd" --version
  lscpu | grep -E "^(Model name|CPU family|Model|Thread|Core|Socket|L1d|L2|L3)"
  grep -o -m1 -w avx512f /proc/cpuinfo || echo "no avx512f"
  env | grep ^OPENBLAS_ || echo "OPENBLAS_* unset"
  uptime
} >"$out/machine.txt"
cat "$out/machine.txt"
all=learner,lstm,gru,inference,impala_shallow,nature,impala_deep
encoders=impala_shallow,nature,impala_deep
step() {
  local name=$1
  shift
  echo
  echo "== $name ($out/$name.txt): $*"
  "$@" 2>&1 | tee "$out/$name.txt"
}
step native "$py" benchmarks/vs_torch.py --herd "$herd" --rounds "$rounds" --benches "$all"
if grep -q -w avx512f /proc/cpuinfo; then
  step avx2 "$py" benchmarks/vs_torch.py --herd "$herd" --rounds "$rounds" --benches "$all" --isa avx2
fi
step bytes "$py" benchmarks/vs_torch.py --herd "$herd" --rounds "$rounds" --benches "$encoders" --bytes
if [ "${NARROW:-0}" = 1 ]; then
  for encoder in impala_shallow impala_deep; do
    for extra in "" "--shards 2" "--bytes"; do
      name="narrow-$encoder${extra:+-${extra//[ -]/}}"
      # shellcheck disable=SC2086 # $extra is words on purpose
      step "$name" "$py" benchmarks/ab.py --a HERD_NARROW_ROWS=16 --b HERD_NARROW_ROWS=8 -- \
        "$herd" bench cnn --encoder "$encoder" --no-floor --rounds 1 $extra
    done
  done
fi
echo
echo "done: $out"
