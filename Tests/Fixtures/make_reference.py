#!/usr/bin/env python3
"""Writes PyTorch reference values for Herd's layer and optimiser tests.

Run by hand (not by `make test`), with torch from PyPI:

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch
    /tmp/torchenv/bin/python Tests/Fixtures/make_reference.py

It writes Tests/Fixtures/reference/*.json: for nn.Linear, nn.LSTM and nn.GRU the
weights, inputs, initial states, outputs and the gradients of a fixed random
upstream gradient; for RMSprop and Adam the parameters after each of a few steps.

Mapping to Herd (HerdNN):
- nn.LSTM's weight_ih_l0 [4H, I], weight_hh_l0 [4H, H], bias_ih_l0, bias_hh_l0
  -> LSTM's weight_ih, weight_hh, bias_ih, bias_hh, same layout, gate rows in
  PyTorch's order i, f, g, o.
- nn.GRU's *_l0 -> GRU's same names; gate rows r, z, n; b_hn stays inside r * (.).
- Variable lengths go through pack_padded_sequence(enforce_sorted=False), so the
  sequences are in arbitrary order, as Herd's batches may be.
Every tensor is written as {"shape": [...], "data": [...]} in row-major order;
float32 values are written with repr of their exact double value.
"""
import json
import os

import torch

torch.manual_seed(20261122)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference")
os.makedirs(OUT, exist_ok=True)


def t(x):
    x = x.detach().to(torch.float32).contiguous()
    return {"shape": list(x.shape), "data": [float(v) for v in x.reshape(-1).tolist()]}


def write(name, obj):
    obj["torch_version"] = torch.__version__
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(obj, f, indent=None, separators=(",", ":"))
        f.write("\n")


def linear():
    m = torch.nn.Linear(5, 3)
    x = torch.randn(4, 5, requires_grad=True)
    y = m(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    write("linear", {
        "weight": t(m.weight), "bias": t(m.bias), "x": t(x), "y": t(y), "dy": t(dy),
        "grad_weight": t(m.weight.grad), "grad_bias": t(m.bias.grad), "grad_x": t(x.grad),
    })


def recurrent(kind):
    n, steps, inp, hid = 4, 6, 5, 7
    seq_lens = [4, 6, 1, 5]  # unsorted on purpose, one of full length
    cls = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
    m = cls(inp, hid, batch_first=True)
    x = torch.randn(n, steps, inp)
    for i, L in enumerate(seq_lens):
        x[i, L:] = 0
    x.requires_grad_(True)
    h0 = (0.5 * torch.randn(1, n, hid)).requires_grad_(True)
    c0 = (0.5 * torch.randn(1, n, hid)).requires_grad_(True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        x, torch.tensor(seq_lens), batch_first=True, enforce_sorted=False)
    if kind == "lstm":
        out, (hn, cn) = m(packed, (h0, c0))
    else:
        out, hn = m(packed, h0)
    y, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=steps)
    dy = torch.randn_like(y)
    for i, L in enumerate(seq_lens):
        dy[i, L:] = 0
    y.backward(dy)
    obj = {
        "input_size": inp, "hidden_size": hid, "seq_lens": seq_lens,
        "weight_ih": t(m.weight_ih_l0), "weight_hh": t(m.weight_hh_l0),
        "bias_ih": t(m.bias_ih_l0), "bias_hh": t(m.bias_hh_l0),
        "x": t(x), "h0": t(h0[0]), "y": t(y), "hn": t(hn[0]), "dy": t(dy),
        "grad_weight_ih": t(m.weight_ih_l0.grad), "grad_weight_hh": t(m.weight_hh_l0.grad),
        "grad_bias_ih": t(m.bias_ih_l0.grad), "grad_bias_hh": t(m.bias_hh_l0.grad),
        "grad_x": t(x.grad), "grad_h0": t(h0.grad[0]),
    }
    if kind == "lstm":
        obj.update({"c0": t(c0[0]), "cn": t(cn[0]), "grad_c0": t(c0.grad[0])})
    write(kind, obj)


def optimisers():
    # Initial values are recorded before the first step by re-seeding.
    cases = {
        "rmsprop": lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.99, eps=0.01),
        "rmsprop_momentum_centered": lambda ps: torch.optim.RMSprop(
            ps, lr=0.01, alpha=0.9, eps=0.01, momentum=0.5, centered=True),
        "adam": lambda ps: torch.optim.Adam(ps, lr=0.01),
        "adam_weight_decay": lambda ps: torch.optim.Adam(ps, lr=0.003, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1),
    }
    for name, make in cases.items():
        torch.manual_seed(len(name))
        initial = torch.randn(11)
        p = torch.nn.Parameter(initial.clone())
        opt = make([p])
        grads, params = [], []
        for _ in range(4):
            g = torch.randn(11)
            grads.append(t(g))
            p.grad = g.clone()
            opt.step()
            params.append(t(p))
        hp = opt.param_groups[0]
        write(name, {
            "lr": hp["lr"], "hyper": {k: (list(v) if isinstance(v, tuple) else v)
                                      for k, v in hp.items() if k in ("alpha", "eps", "momentum", "centered", "betas", "weight_decay")},
            "initial": t(initial), "grads": grads, "params": params,
        })


if __name__ == "__main__":
    linear()
    recurrent("lstm")
    recurrent("gru")
    optimisers()
    print("wrote", sorted(os.listdir(OUT)))
