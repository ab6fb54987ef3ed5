#!/usr/bin/env python3
"""Writes PyTorch reference values for Herd's convolutional layers.

Run by hand (not by `make test`), with torch from PyPI (`make bench-venv` installs it):

    .venv-bench/bin/python Tests/Fixtures/make_conv_reference.py

It writes Tests/Fixtures/reference/conv_*.json. Each case is a small stack of
nn.Conv2d, nn.MaxPool2d, ReLU and IMPALA residual blocks on images whose sizes
and strides do not divide evenly, with the stack's output and the gradients of
every parameter and of the input for a fixed random upstream gradient.

Mapping to Herd (HerdNN.ConvNet), which stores images channels last (NHWC):
- images: PyTorch's [n, C, H, W] permuted to [n, H, W, C] (x, y, dy, grad_x);
- a conv weight [outC, C, kH, kW] permuted to Herd's [outC, kH, kW, C];
- parameter names are Herd's (`conv.0.weight`, `conv.3.conv0.weight`, ...).
Every tensor is written as {"shape": [...], "data": [...]} in row-major order.
"""
import json
import os

import torch
import torch.nn as nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference")


def t(x):
    x = x.detach().to(torch.float32).contiguous()
    return {"shape": list(x.shape), "data": [float(v) for v in x.reshape(-1).tolist()]}


def nhwc(x):
    return x.permute(0, 2, 3, 1)


class Residual(nn.Module):
    """IMPALA's block: x + conv1(relu(conv0(relu(x))))."""

    def __init__(self, c):
        super().__init__()
        self.conv0 = nn.Conv2d(c, c, 3, padding=1)
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


def case(name, n, c, h, w, layers):
    """layers: Herd's spec as a list of ["conv", out, k, s, p] / ["pool", k, s, p] / ["res"] / ["relu"]."""
    mods, ch = [], c
    for spec in layers:
        if spec[0] == "conv":
            mods.append(nn.Conv2d(ch, spec[1], spec[2], stride=spec[3], padding=spec[4]))
            ch = spec[1]
        elif spec[0] == "pool":
            mods.append(nn.MaxPool2d(spec[1], stride=spec[2], padding=spec[3]))
        elif spec[0] == "res":
            mods.append(Residual(ch))
        else:
            mods.append(nn.ReLU())
    net = nn.Sequential(*mods)
    x = torch.randn(n, c, h, w, requires_grad=True)
    y = net(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    params = {}
    for key, p in net.state_dict(keep_vars=True).items():
        value, grad = p, p.grad
        if value.dim() == 4:
            value, grad = value.permute(0, 2,3, 1), grad.permute(0, 2, 3, 1)
        params["conv." + key] = {"value": t(value), "grad": t(grad)}
    obj = {
        "input": [h, w, c], "images": n, "layers": layers, "params": params,
        "x": t(nhwc(x)), "y": t(nhwc(y)), "dy": t(nhwc(dy)), "grad_x": t(nhwc(x.grad)),
        "torch_version": torch.__version__,
    }
    with open(os.path.join(OUT, f"conv_{name}.json"), "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", name, list(y.shape))


if __name__ == "__main__":
    torch.manual_seed(20261202)
    # Odd sizes, a stride that does not divide, padding, a pool with padding,
    # a residual block and a pointwise convolution.
    case("mixed", 3, 3, 13, 11, [
        ["conv", 5, 3, 2, 1], ["relu"], ["pool", 3, 2, 1], ["res"], ["relu"],
        ["conv", 4, 1, 1, 0], ["relu"], ["conv", 2, 2, 2, 0],
    ])
    # IMPALA's shallow encoder's convolutions on a small image that 8x8 stride 4
    # does not tile exactly.
    case("shallow", 2, 4, 31, 29, [["conv", 16, 8, 4, 0], ["relu"], ["conv", 32, 4, 2, 0], ["relu"]])
    # One stage of IMPALA's deep encoder.
    case("deep_stage", 2, 3, 9, 10, [["conv", 6, 3, 1, 1], ["pool", 3, 2, 1], ["res"], ["res"], ["relu"]])
