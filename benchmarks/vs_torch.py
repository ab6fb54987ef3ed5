"""Herd's learner and rollout kernels beside PyTorch on this machine, in one run.

For every bench and thread count, each round runs `herd bench ...` once and
benchmarks/torch_peer.py once, back to back (Herd first in odd rounds, PyTorch
first in even ones), so both see the same machine. It prints the medians of
both rates, the median of the rounds' own ratios (Herd / PyTorch, above 1 means
Herd is faster) and their range, with the CPU model, OpenBLAS's kernel and Herd's
kernel ISA. The per-round ratio is the figure to quote: on a shared machine whose
speed drifts by a quarter over minutes, the two sides of one round see the same
machine, while the medians of each side may come from different rounds.

    make build bench-venv
    .venv-bench/bin/python benchmarks/vs_torch.py                  # everything, 3 rounds
    .venv-bench/bin/python benchmarks/vs_torch.py --benches lstm,gru --threads 1 --rounds 5

Benches (N = 32 sequences of T = 20 steps, as in the issue tracker's figures):
  learner     4 -> FC 256 -> LSTM(256), 6 actions: the whole IMPALA learner step.
              At 2 threads Herd splits the batch into 2 shards (--learner-threads 2,
              one OpenBLAS thread each); PyTorch runs 2 intra-op threads.
  lstm, gru   the recurrent layer 67 -> 256 forward + backward. At 2 threads Herd
              splits the sequences into 2 shards (--shards 2, as the learner's
              learner_threads does); PyTorch runs 2 intra-op threads.
  inference   one rollout step for K = 32 and 64 rows (4 -> FC 256 -> LSTM(256) ->
              2 actions, sampling included), one thread only.
  impala_shallow, impala_deep, nature
              a convolutional encoder (with its FC layer) forward + backward over
              640 frames of 84x84x4 (N x T = 32 x 20), frames/s. At 2 threads Herd
              splits the frames into 2 shards; PyTorch runs 2 intra-op threads,
              with the model and images in torch.channels_last (NHWC), which
              measured about twice as fast as its default NCHW here.
              Not in the default --benches (impala_deep takes a few seconds a step).
              With --bytes the frames are uint8 on both sides, as Atari frames reach
              a learner: Herd's first convolution scales them by 1/255 as it reads
              them (`herd bench cnn --bytes`), PyTorch's step runs x.float() / 255.

--isa avx2 times both sides on AVX2 on an AVX-512 machine, as they would run on
a CPU without AVX-512: Herd with HERD_KERNEL_ISA=avx2 (its 8-wide kernels) and
OPENBLAS_CORETYPE=Haswell (OpenBLAS's AVX2 kernel for the products Herd leaves to
it; unless OPENBLAS_CORETYPE is already set), PyTorch with ONEDNN_MAX_CPU_ISA=AVX2, MKL_ENABLE_INSTRUCTIONS=AVX2 and
ATEN_CPU_CAPABILITY=avx2. Not part of `make test`.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def herd_command(herd, bench, threads, seconds, envs=None, pixel_bytes=False):
    common = ["--rounds", "1", "--seconds", str(seconds)]
    if bench == "learner":
        if threads == 1:
            return [herd, "bench", "learner", "--features", "4", "--fcnet", "256", "--threads", "1"] + common
        return [herd, "bench", "learner", "--features", "4", "--fcnet", "256", "--threads", "1",
                "--learner-threads", str(threads)] + common
    if bench in ("impala_shallow", "impala_deep", "nature"):
        return ([herd, "bench", "cnn", "--encoder", bench, "--threads", "1", "--shards", str(threads)]
                + (["--bytes"] if pixel_bytes else []) + common)
    if bench in ("lstm", "gru"):
        if threads == 1:
            return [herd, "bench", "lstm", "--cell", bench, "--threads", "1"] + common
        return [herd, "bench", "lstm", "--cell", bench, "--threads", "1", "--shards", str(threads)] + common
    return [herd, "bench", "inference", "--envs", str(envs)] + common


# The environment each side runs in (see --isa).
HERD_ENV = dict(os.environ)
TORCH_ENV = dict(os.environ)
AVX2_TORCH = {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def run_herd(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=HERD_ENV).stdout
    # The layer's or step's own rate: the first "<label>: N timesteps/s" or "K=..: N steps/s".
    for line in out.splitlines():
        if line.startswith("GEMM floor"):
            continue
        m = re.search(r":\s*([0-9]+) (?:timesteps|steps|frames)/s", line)
        if m:
            return float(m.group(1)), out
    raise RuntimeError(f"no rate in the output of {' '.join(cmd)}:\n{out}")


def run_torch(python, bench, threads, seconds, envs=None, pixel_bytes=False):
    cmd = [python, os.path.join(ROOT, "benchmarks", "torch_peer.py"), bench, "--threads", str(threads),
           "--seconds", str(seconds)]
    if bench == "inference":
        cmd += ["--envs", str(envs)]
    if bench in ("impala_shallow", "impala_deep", "nature"):
        # PyTorch's faster layout here: channels_last measured about 2x NCHW for
        # these encoders on this machine's oneDNN.
        cmd += ["--channels-last"] + (["--bytes"] if pixel_bytes else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=TORCH_ENV).stdout
    return json.loads(out.strip().splitlines()[-1])


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--herd", default=os.path.join(ROOT, ".build", "release", "herd"), help="the herd binary")
    parser.add_argument("--benches", default="learner,lstm,gru,inference", help="comma-separated subset")
    parser.add_argument("--threads", default="1,2", help="thread counts for learner/lstm/gru (default 1,2)")
    parser.add_argument("--envs", default="32,64", help="K values for inference (default 32,64)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported (default 3)")
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per measurement (default 1)")
    parser.add_argument("--isa", choices=["native", "avx2"], default="native",
                        help="native: each side's widest kernels; avx2: both sides limited to AVX2")
    parser.add_argument("--bytes", action="store_true",
                        help="conv encoders: uint8 frames on both sides (Herd scales them in its first convolution, "
                             "PyTorch converts them with x.float() / 255 in the step)")
    args = parser.parse_args()
    benches = [b for b in args.benches.split(",") if b]
    for b in benches:
        if b not in ("learner", "lstm", "gru", "inference", "impala_shallow", "impala_deep", "nature"):
            parser.error(f"--benches: unknown bench '{b}' (valid: learner, lstm, gru, inference, impala_shallow, impala_deep, nature)")
    if args.bytes and not any(b in ("impala_shallow", "impala_deep", "nature") for b in benches):
        parser.error("--bytes applies to the conv encoders only: add impala_shallow, nature or impala_deep to --benches")
    threads = [int(t) for t in args.threads.split(",")]
    if not os.access(args.herd, os.X_OK):
        parser.error(f"--herd {args.herd} is not an executable; run `make build` first")
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds must be at least 1 and --seconds positive")

    if args.isa == "avx2":
        HERD_ENV["HERD_KERNEL_ISA"] = "avx2"
        # Where OpenBLAS picked an AVX-512 kernel (Cooperlake, SkylakeX), Herd leaves
        # the general products to it; a CPU without AVX-512 would run its Haswell one.
        HERD_ENV.setdefault("OPENBLAS_CORETYPE", "Haswell")
        TORCH_ENV.update(AVX2_TORCH)

    cases = []
    for b in benches:
        if b == "inference":
            cases += [(b, 1, int(k)) for k in args.envs.split(",")]
        else:
            cases += [(b, t, None) for t in threads]

    # The first two lines of `herd bench inference` name the model, the kernel ISA
    # and OpenBLAS (an older herd without that bench prints none of them).
    header = subprocess.run([args.herd, "bench", "inference", "--envs", "1", "--rounds", "1", "--seconds", "0.05"],
                            capture_output=True, text=True, env=HERD_ENV).stdout.splitlines()
    print(f"CPU: {cpu_model()}")
    if args.isa == "avx2":
        print(f"AVX2 on both sides: HERD_KERNEL_ISA=avx2, OPENBLAS_CORETYPE={HERD_ENV['OPENBLAS_CORETYPE']}; PyTorch with "
              + ", ".join(f"{k}={v}" for k, v in AVX2_TORCH.items()))
    for line in header[:2]:
        print(line)
    if args.bytes:
        print("Conv encoders on uint8 frames (Herd: scaled in the first convolution; PyTorch: x.float() / 255 in the step)")
    results = {c: ([], []) for c in cases}
    torch_info = None
    for r in range(1, args.rounds + 1):
        for case in cases:
            bench, t, k = case
            if r % 2 == 1:
                h, _ = run_herd(herd_command(args.herd, bench, t, args.seconds, k, args.bytes))
                info = run_torch(sys.executable, bench, t, args.seconds, k, args.bytes)
            else:
                info = run_torch(sys.executable, bench, t, args.seconds, k, args.bytes)
                h, _ = run_herd(herd_command(args.herd, bench, t, args.seconds, k, args.bytes))
            torch_info = info
            results[case][0].append(h)
            results[case][1].append(info["timesteps_per_s"])
            print(f"round {r}/{args.rounds} {bench} threads={t}{'' if k is None else f' K={k}'}: "
                  f"herd {h:.0f}, torch {info['timesteps_per_s']:.0f}", file=sys.stderr, flush=True)
    print(f"PyTorch {torch_info['torch']} (oneDNN {'on' if torch_info['mkldnn'] else 'off'}), "
          f"medians of {args.rounds} alternating rounds, timesteps/s (frames/s for the conv encoders)")
    print()
    print("| bench | threads | Herd | PyTorch | Herd/PyTorch (median of the rounds' ratios) | range of the rounds' ratios |")
    print("|---|---|---|---|---|---|")
    for case in cases:
        bench, t, k = case
        herd_rates, torch_rates = results[case]
        h = statistics.median(herd_rates)
        p = statistics.median(torch_rates)
        ratios = [a / b for a, b in zip(herd_rates, torch_rates)]
        name = bench if k is None else f"inference K={k}"
        print(f"| {name} | {t} | {h:,.0f} | {p:,.0f} | {statistics.median(ratios):.2f} | "
              f"{min(ratios):.2f}-{max(ratios):.2f} |")


if __name__ == "__main__":
    main()
