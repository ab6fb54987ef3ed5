"""The exported Herd policy as a ``torch.nn.Module`` (see ``herd_policy``)."""

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda x: x}


class ObservationFilter(nn.Module):
    """``clip((obs - mean) * scale, -clip, clip)``; its tensors are buffers, not parameters."""

    def __init__(self, size, clip):
        super().__init__()
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("scale", torch.ones(size))
        self.clip = float(clip)

    def forward(self, obs):
        return torch.clamp((obs - self.mean) * self.scale, -self.clip, self.clip)


class Residual(nn.Module):
    """IMPALA's residual block: ``x + conv1(act(conv0(act(x))))``, 3x3 convs with padding 1."""

    def __init__(self, channels, activation):
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.activation = activation

    def forward(self, x):
        return x + self.conv1(self.activation(self.conv0(self.activation(x))))


class Activation(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class ConvEncoder(nn.Module):
    """The convolutions of policy.json's ``conv`` entry, over rows that are H x W x C
    images flattened channels last (Herd's layout); the output is flattened channels
    last too, as ``encoder.0`` reads it. Submodule ``i`` is layer ``i``, so the
    parameters are named ``conv.i.weight`` and ``conv.i.conv0.weight`` as exported."""

    def __init__(self, meta):
        super().__init__()
        self.image = list(meta["input"])
        self.input_scale = float(meta["input_scale"])
        act = ACTIVATIONS[meta["activation"]]
        layers = []
        for spec in meta["layers"]:
            kind = spec["type"]
            if kind == "conv":
                layers.append(nn.Conv2d(spec["in_channels"], spec["out_channels"], spec["kernel"], spec["stride"], spec["padding"]))
            elif kind == "activation":
                layers.append(Activation(act))
            elif kind == "max_pool":
                layers.append(nn.MaxPool2d(spec["kernel"], spec["stride"], spec["padding"]))
            elif kind == "residual":
                layers.append(Residual(spec["channels"], act))
            else:
                raise ValueError(f"conv layer type {kind!r} is not known to this loader")
        for i, layer in enumerate(layers):
            self.add_module(str(i), layer)

    def forward(self, x):
        h, w, c = self.image
        x = (x * self.input_scale).reshape(-1, h, w, c).permute(0, 3, 1, 2)
        for layer in self.children():
            x = layer(x)
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)


def _post_layers(entry):
    """The post layers a sidecar entry describes (``None``: none) and their activation."""
    if not entry:
        return nn.ModuleList(), ACTIVATIONS["relu"]
    if entry["type"] != "mlp":
        raise ValueError(f"post layers of type {entry['type']!r} are not known to this loader")
    layers = nn.ModuleList(nn.Linear(l["in_features"], l["out_features"]) for l in entry["layers"])
    return layers, ACTIVATIONS[entry["activation"]]


class HerdPolicy(nn.Module):
    """One step of a Herd policy: ``(logits, value, new_state) = policy(obs, state, prev_action, prev_reward)``.

    Layout (from policy.json): filter -> convolutions (image observations) -> MLP encoder -> [features; one-hot(prev_action)
    per head (a Gaussian policy: prev_action ``[N, D]`` clipped to the bounds); prev_reward] -> nn.LSTM / nn.GRU (one layer) or nothing -> post layers (if any) -> ``pi`` logits
    and ``vf`` value. Parameter names are the safetensors names, so
    ``load_state_dict`` takes the export's tensors as they are.
    """

    def __init__(self, meta):
        super().__init__()
        self.meta = meta
        obs = meta["observation"]["size"]
        filt = meta.get("obs_filter")
        self.obs_filter = ObservationFilter(obs, filt["clip"]) if filt else None
        self.conv = ConvEncoder(meta["conv"]) if meta.get("conv") else None
        enc = meta["encoder"]
        if enc["type"] != "mlp":
            raise ValueError(f"encoder type {enc['type']!r} is not known to this loader")
        self.activation = ACTIVATIONS[enc["activation"]]
        self.encoder = nn.ModuleList(nn.Linear(l["in_features"], l["out_features"]) for l in enc["layers"])
        act = meta["action"]
        self.gaussian = act.get("distribution") == "gaussian"
        self.heads = [] if self.gaussian else list(act["heads"])
        # Action masking (policy.json's action.mask): logits where the raw
        # observation's mask entry is below 0.5 become masked_logit.
        mask = act.get("mask")
        self.mask = (mask["obs_start"], mask["obs_end"], float(mask["masked_logit"])) if mask else None
        self.strides = [] if self.gaussian else list(act["strides"])
        self.use_prev_action = bool(meta["prev_action"])
        self.use_prev_reward = bool(meta["prev_reward"])
        core = meta["core"]
        self.core_type = core["type"]
        if self.core_type == "lstm":
            self.core = nn.LSTM(core["input_size"], core["hidden_size"])
        elif self.core_type == "gru":
            self.core = nn.GRU(core["input_size"], core["hidden_size"])
        elif self.core_type == "none":
            self.core = None
        else:
            raise ValueError(f"core type {self.core_type!r} is not known to this loader")
        # The value's own encoder and core (trained with vf_share_layers = false): the
        # state tensors then hold the policy core's columns, then vf_core's.
        tower = meta.get("value_tower")
        self.vf_encoder = None
        self.vf_core = None
        if tower:
            self.vf_encoder = nn.ModuleList(
                nn.Linear(l["in_features"], l["out_features"]) for l in tower["encoder"]["layers"])
            vc = tower["core"]
            if vc["type"] == "lstm":
                self.vf_core = nn.LSTM(vc["input_size"], vc["hidden_size"])
            elif vc["type"] == "gru":
                self.vf_core = nn.GRU(vc["input_size"], vc["hidden_size"])
        # The layers between the core and the heads (post_fcnet_hiddens), and the
        # value tower's own; exports from before they existed have none.
        self.post, self.post_activation = _post_layers(meta.get("post"))
        self.vf_post = None
        if tower:
            self.vf_post, _ = _post_layers(tower.get("post"))
        heads = meta["heads"]
        self.pi = nn.Linear(heads["pi"]["in_features"], heads["pi"]["out_features"])
        if self.gaussian:
            self.dims = act["dims"]
            # An unbounded side is "inf" / "-inf" (JSON has no infinity).
            self.low = torch.tensor([float(x) for x in act["low"]], dtype=torch.float32)
            self.high = torch.tensor([float(x) for x in act["high"]], dtype=torch.float32)
            self.log_std_clamp = tuple(act["log_std_clamp"])
            if act["free_log_std"]:
                # Named pi.log_std, as exported.
                self.pi.log_std = nn.Parameter(torch.zeros(self.dims))
        self.vf = nn.Linear(heads["vf"]["in_features"], 1)

    @classmethod
    def from_export(cls, meta, tensors):
        """A policy with the export's weights (``tensors``: name -> NumPy array)."""
        policy = cls(meta)
        state = {k: torch.from_numpy(v) for k, v in tensors.items()}
        missing, unexpected = policy.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"the weights do not fit policy.json: missing {missing}, unexpected {unexpected}")
        policy.eval()
        return policy

    def initial_state(self, batch=1):
        """The state at an episode start: zeros ``[batch, W]`` (h, c for an LSTM), W the
        core's size, or both cores' with the value's own (policy columns first)."""
        if self.core is None:
            return ()
        width = self.core.hidden_size + (self.vf_core.hidden_size if self.vf_core is not None else 0)
        h = torch.zeros(batch, width)
        return (h, h.clone()) if self.core_type == "lstm" else (h,)

    def forward(self, obs, state, prev_action=None, prev_reward=None):
        x = torch.as_tensor(obs, dtype=torch.float32)
        raw = x
        if self.obs_filter is not None:
            x = self.obs_filter(x)
        if self.conv is not None:
            x = self.conv(x)
        if self.vf_encoder is None:
            features, new_state = self._tower(x, self.encoder, self.core, state, prev_action, prev_reward)
            value_features = features
        else:
            hp = self.core.hidden_size if self.core is not None else 0
            policy_state = tuple(s[:, :hp] for s in state)
            value_state = tuple(s[:, hp:] for s in state)
            features, ps = self._tower(x, self.encoder, self.core, policy_state, prev_action, prev_reward)
            value_features, vs = self._tower(x, self.vf_encoder, self.vf_core, value_state, prev_action, prev_reward)
            new_state = tuple(torch.cat([a, b], dim=1) for a, b in zip(ps, vs))
        features = self._post(features, self.post)
        value_features = features if self.vf_encoder is None else self._post(value_features, self.vf_post)
        logits = self.pi(features)
        if self.gaussian and hasattr(self.pi, "log_std"):
            logits = torch.cat([logits, self.pi.log_std.expand(logits.shape[0], self.dims)], dim=1)
        if self.mask is not None:
            start, end, value = self.mask
            logits = torch.where(raw[:, start:end] < 0.5, torch.full_like(logits, value), logits)
        return logits, self.vf(value_features)[:, 0], new_state

    def _post(self, x, layers):
        """``x`` through post layers, each followed by their activation."""
        for layer in layers:
            x = self.post_activation(layer(x))
        return x

    def _tower(self, x, encoder, core, state, prev_action, prev_reward):
        """An encoder and a core over the (filtered) input: the features and the new state."""
        n = x.shape[0]
        for layer in encoder:
            x = self.activation(layer(x))
        parts = [x]
        if self.use_prev_action and self.gaussian:
            # The action the environment took: clipped to the bounds (as sampled works too).
            a = torch.as_tensor(prev_action if prev_action is not None else torch.zeros(n, self.dims), dtype=torch.float32)
            parts.append(torch.maximum(torch.minimum(a.reshape(n, self.dims), self.high), self.low))
        elif self.use_prev_action:
            a = torch.as_tensor(prev_action if prev_action is not None else torch.zeros(n), dtype=torch.int64)
            for size, stride in zip(self.heads, self.strides):
                parts.append(F.one_hot((a // stride) % size, size).to(torch.float32))
        if self.use_prev_reward:
            r = torch.as_tensor(prev_reward if prev_reward is not None else torch.zeros(n), dtype=torch.float32)
            parts.append(r.reshape(n, 1))
        u = torch.cat(parts, dim=1)
        if core is None:
            return u, ()
        if self.core_type == "lstm":
            h, c = state
            out, (h2, c2) = core(u.unsqueeze(0), (h.contiguous().unsqueeze(0), c.contiguous().unsqueeze(0)))
            return out[0], (h2[0], c2[0])
        (h,) = state
        out, h2 = core(u.unsqueeze(0), h.contiguous().unsqueeze(0))
        return out[0], (h2[0],)

    def mean_and_std(self, logits):
        """A Gaussian policy's mean and standard deviation ``[N, D]`` each (the log std clamped as Herd clamps it)."""
        mean, log_std = logits[:, : self.dims], logits[:, self.dims :]
        return mean, torch.exp(log_std.clamp(*self.log_std_clamp))

    def split_logits(self, logits):
        """The logits of each head, ``[N, size]`` each."""
        return list(torch.split(logits, self.heads, dim=1))

    def combine(self, components):
        """Per-head components ``[N]`` each -> Herd's action index ``[N]``."""
        return sum(c * s for c, s in zip(components, self.strides))

    def sample(self, logits, generator=None):
        """A sampled action index per row (each head sampled from its softmax); for a
        Gaussian policy the sampled action ``[N, D]``, clipped to the space's bounds."""
        if self.gaussian:
            mean, std = self.mean_and_std(logits)
            noise = torch.randn(mean.shape, generator=generator)
            return torch.clamp(mean + std * noise, self.low, self.high)
        comps = [torch.multinomial(torch.softmax(l, dim=1), 1, generator=generator)[:, 0] for l in self.split_logits(logits)]
        return self.combine(comps)

    def greedy(self, logits):
        """Each head's most likely component, combined into an action index per row; for
        a Gaussian policy the mean, clipped to the space's bounds."""
        if self.gaussian:
            return torch.clamp(self.mean_and_std(logits)[0], self.low, self.high)
        return self.combine([l.argmax(dim=1) for l in self.split_logits(logits)])
