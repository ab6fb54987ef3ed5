"""PyTorch's side of Herd's learner benchmarks: the same shapes, timed the same way.

Each bench prints one JSON line {"bench", "threads", "timesteps_per_s", ...}.
benchmarks/vs_torch.py runs these beside `herd bench` in alternating rounds; this
script can also be run on its own:

    .venv-bench/bin/python benchmarks/torch_peer.py lstm --threads 1
    .venv-bench/bin/python benchmarks/torch_peer.py learner --threads 2
    .venv-bench/bin/python benchmarks/torch_peer.py inference --envs 32

Benches (N sequences of T steps, time-major as PyTorch wants them):
  lstm, gru   nn.LSTM / nn.GRU (F -> H) forward + backward over [T, N, F] with the
              input gradient, as `herd bench lstm`: loss = sum(out * dH).
  learner     the IMPALA learner step of `herd bench learner`: F -> Linear(256) + tanh
              -> LSTM(256) -> policy (A) and value heads over T + 1 steps, V-trace
              (Espeholt et al. 2018, rho/c clipped at 1), policy-gradient, baseline
              (0.5) and entropy (0.01) losses, backward, global-norm clip at 40,
              RMSprop (alpha 0.99, eps 0.01).
  inference   one rollout step for K rows without gradients: Linear(256) + tanh ->
              LSTMCell(256) -> heads, softmax, one categorical sample per row.
  impala_shallow, impala_deep, nature
              a convolutional encoder forward + backward over --frames images of
              84x84x4 (NCHW, PyTorch's layout), parameter gradients only, as
              `herd bench cnn`: loss = sum(features * dY). The rate is in frames/s
              (printed under "timesteps_per_s"). With --bytes the frames are uint8 and
              the step converts them (x.float() / 255), as a learner does with Atari
              frames (`herd bench cnn --bytes`).

Needs PyTorch (`make bench-venv` puts it in .venv-bench); not part of `make test`.
"""

import argparse
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def time_per_call(seconds, fn):
    """Seconds per call of fn, averaged over as many calls as fit in `seconds`."""
    calls = 0
    start = time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / calls


def bench_recurrent(args):
    cls = nn.LSTM if args.bench == "lstm" else nn.GRU
    layer = cls(args.features, args.hidden)
    x = torch.rand(args.time, args.sequences, args.features) * 2 - 1
    x.requires_grad_(True)
    d_h = (torch.rand(args.time, args.sequences, args.hidden) * 2 - 1) * 0.01
    h0 = torch.rand(1, args.sequences, args.hidden) * 2 - 1
    state = (h0, h0.clone()) if cls is nn.LSTM else h0

    def step():
        layer.zero_grad(set_to_none=False)
        x.grad = None
        out, _ = layer(x, state)
        (out * d_h).sum().backward()

    return step, args.sequences * args.time


class LearnerModel(nn.Module):
    def __init__(self, features, hidden, actions, fc):
        super().__init__()
        self.fc = nn.Linear(features, fc)
        self.core = nn.LSTM(fc, hidden)
        self.policy = nn.Linear(hidden, actions)
        self.value = nn.Linear(hidden, 1)

    def forward(self, obs, state):
        t, n, _ = obs.shape
        z = torch.tanh(self.fc(obs))
        out, _ = self.core(z, state)
        return self.policy(out), self.value(out).squeeze(-1)


def vtrace(behaviour_logits, target_logits, actions, discounts, rewards, values, bootstrap):
    """V-trace targets and policy-gradient advantages, without gradients (TorchBeast's form)."""
    with torch.no_grad():
        target_lp = -F.cross_entropy(target_logits.flatten(0, 1), actions.flatten(), reduction="none").view_as(actions)
        behaviour_lp = -F.cross_entropy(behaviour_logits.flatten(0, 1), actions.flatten(), reduction="none").view_as(actions)
        rhos = torch.exp(target_lp - behaviour_lp)
        clipped_rhos = torch.clamp(rhos, max=1.0)
        cs = torch.clamp(rhos, max=1.0)
        next_values = torch.cat([values[1:], bootstrap.unsqueeze(0)], dim=0)
        deltas = clipped_rhos * (rewards + discounts * next_values - values)
        acc = torch.zeros_like(bootstrap)
        result = []
        for t in range(discounts.shape[0] - 1, -1, -1):
            acc = deltas[t] + discounts[t] * cs[t] * acc
            result.append(acc)
        vs_minus_v = torch.stack(result[::-1])
        vs = vs_minus_v + values
        next_vs = torch.cat([vs[1:], bootstrap.unsqueeze(0)], dim=0)
        advantages = clipped_rhos * (rewards + discounts * next_vs - values)
        return vs, advantages


def bench_learner(args):
    model = LearnerModel(args.features, args.hidden, args.actions, args.fc)
    opt = torch.optim.RMSprop(model.parameters(), lr=5e-4, alpha=0.99, eps=0.01)
    t, n = args.time, args.sequences
    obs = torch.rand(t + 1, n, args.features) * 2 - 1
    actions = torch.randint(0, args.actions, (t, n))
    rewards = torch.rand(t, n) * 2 - 1
    behaviour = (torch.rand(t, n, args.actions) * 2 - 1) * 0.1
    discounts = torch.full((t, n), 0.99)
    state = tuple((torch.rand(1, n, args.hidden) * 2 - 1) * 0.5 for _ in range(2))

    def step():
        logits, values = model(obs, state)
        vs, adv = vtrace(behaviour, logits[:-1], actions, discounts, rewards, values[:-1], values[-1])
        lp = -F.cross_entropy(logits[:-1].flatten(0, 1), actions.flatten(), reduction="none").view_as(actions)
        pg = -(lp * adv).sum()
        baseline = 0.5 * 0.5 * ((vs - values[:-1]) ** 2).sum()
        probs = F.softmax(logits[:-1], dim=-1)
        entropy = 0.01 * (probs * F.log_softmax(logits[:-1], dim=-1)).sum()
        loss = pg + baseline + entropy
        opt.zero_grad(set_to_none=False)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 40.0)
        opt.step()

    return step, n * t


def bench_inference(args):
    fc = nn.Linear(args.features, args.fc)
    cell = nn.LSTMCell(args.fc, args.hidden)
    policy = nn.Linear(args.hidden, args.actions)
    value = nn.Linear(args.hidden, 1)
    k = args.envs
    obs = torch.rand(k, args.features) * 2 - 1
    h = torch.zeros(k, args.hidden)
    c = torch.zeros(k, args.hidden)

    def step():
        nonlocal h, c
        with torch.no_grad():
            h, c = cell(torch.tanh(fc(obs)), (h, c))
            logits = policy(h)
            value(h)
            torch.multinomial(F.softmax(logits, dim=-1), 1)

    return step, k


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv0 = nn.Conv2d(c, c, 3, padding=1)
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.conv1(F.relu(self.conv0(F.relu(x))))


def conv_encoder(name, channels, height, width):
    """The encoders of Herd's conv_encoder presets (Herd's ConvPlan), with the FC layer."""
    if name == "impala_shallow":
        convs = [nn.Conv2d(channels, 16, 8, stride=4), nn.ReLU(), nn.Conv2d(16, 32, 4, stride=2), nn.ReLU()]
        fc = 256
    elif name == "nature":
        convs = [nn.Conv2d(channels, 32, 8, stride=4), nn.ReLU(), nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
                 nn.Conv2d(64, 64, 3, stride=1), nn.ReLU()]
        fc = 512
    else:
        convs, c = [], channels
        for out in (16, 32, 32):
            convs += [nn.Conv2d(c, out, 3, padding=1), nn.MaxPool2d(3, stride=2, padding=1), Residual(out), Residual(out)]
            c = out
        convs.append(nn.ReLU())
        fc = 256
    body = nn.Sequential(*convs)
    with torch.no_grad():
        flat = body(torch.zeros(1, channels, height, width)).numel()
    return nn.Sequential(body, nn.Flatten(), nn.Linear(flat, fc), nn.ReLU())


def bench_conv(args):
    model = conv_encoder(args.bench, 4, 84, 84)
    if args.bytes:
        x = torch.randint(0, 256, (args.frames, 4, 84, 84), dtype=torch.uint8)
    else:
        x = torch.rand(args.frames, 4, 84, 84)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    d_y = (torch.rand(args.frames, model[2].out_features) - 0.5) * 0.01

    def step():
        model.zero_grad(set_to_none=False)
        # uint8 frames become floats in [0, 1] inside the step, as a PyTorch learner
        # does with Atari frames (x.float() keeps the memory format).
        images = x.float().div_(255) if args.bytes else x
        (model(images) * d_y).sum().backward()

    return step, args.frames


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", choices=["lstm", "gru", "learner", "inference", "impala_shallow", "impala_deep", "nature"])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--sequences", type=int, default=32, help="N (default 32)")
    parser.add_argument("--time", type=int, default=20, help="T (default 20)")
    parser.add_argument("--features", type=int, default=None, help="F (default 67 for lstm/gru, 4 otherwise)")
    parser.add_argument("--hidden", type=int, default=256, help="H (default 256)")
    parser.add_argument("--fc", type=int, default=256, help="encoder width for learner/inference (default 256)")
    parser.add_argument("--actions", type=int, default=6, help="A (default 6; 2 for inference as CartPole)")
    parser.add_argument("--envs", type=int, default=32, help="K rows for inference (default 32)")
    parser.add_argument("--frames", type=int, default=640, help="images for the conv benches (default 640)")
    parser.add_argument("--channels-last", action="store_true",
                        help="conv benches: the model and images in torch.channels_last (NHWC) memory format")
    parser.add_argument("--bytes", action="store_true",
                        help="conv benches: uint8 frames, made floats in [0, 1] (x.float() / 255) inside the timed step")
    parser.add_argument("--seconds", type=float, default=0.5, help="seconds per round (default 0.5)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; the median is printed (default 1)")
    args = parser.parse_args()
    if args.features is None:
        args.features = 67 if args.bench in ("lstm", "gru") else 4
    if args.bench == "inference" and "--actions" not in sys.argv:
        args.actions = 2
    for name in ("threads", "sequences", "time", "features", "hidden", "fc", "actions", "envs", "rounds", "frames"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    if args.bench in ("lstm", "gru"):
        step, timesteps = bench_recurrent(args)
    elif args.bench == "learner":
        step, timesteps = bench_learner(args)
    elif args.bench in ("impala_shallow", "impala_deep", "nature"):
        step, timesteps = bench_conv(args)
    else:
        step, timesteps = bench_inference(args)
    for _ in range(3):
        step()  # warm-up: allocations, oneDNN primitive creation
    rates = sorted(timesteps / time_per_call(args.seconds, step) for _ in range(args.rounds))
    print(json.dumps({
        "bench": args.bench, "threads": args.threads, "timesteps_per_s": rates[len(rates) // 2],
        "torch": torch.__version__, "mkldnn": torch.backends.mkldnn.is_available(),
    }))


if __name__ == "__main__":
    main()
