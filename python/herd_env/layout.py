"""The shared-memory layout one host process and its worker agree on.

Offsets in bytes, each region aligned to 64:

- header (64 bytes): magic ``HERD``, then uint32 version, K, F, D, itemsize, N;
- actions: int32 ``[K, D]`` (written by the worker; float32 bits for a Box action space);
- rewards: float32 ``[K]``;
- flags: uint8 ``[K]``: bit 0 terminated, bit 1 truncated, bit 2 the step raised
  (the environment was made again), bit 3 a non-finite observation or reward (the
  episode was reset);
- observations: ``[K, F]`` of the flat dtype (float32 or uint8);
- final observations: ``[K, F]``, valid for rows whose episode ended;
- episode info: float32 ``[K, N]``, the N ``episode_info_keys`` of the info dict of
  the step that ended a row's episode (NaN for a key it lacks), valid for rows whose
  episode ended.

The same function is in Sources/HerdEnvs/HostedEnvironments.swift.
"""

import struct

import numpy as np

MAGIC = b"HERD"
VERSION = 2
TERMINATED, TRUNCATED, STEP_ERROR, NON_FINITE = 1, 2, 4, 8


def _align(x):
    return (x + 63) // 64 * 64


class Layout:
    def __init__(self, k, f, d, itemsize, n_info=0):
        self.k, self.f, self.d, self.itemsize, self.n_info = k, f, d, itemsize, n_info
        off = 64
        self.actions = off
        off = _align(off + 4 * k * d)
        self.rewards = off
        off = _align(off + 4 * k)
        self.flags = off
        off = _align(off + k)
        self.observations = off
        off = _align(off + k * f * itemsize)
        self.final_observations = off
        off = _align(off + k * f * itemsize)
        self.episode_info = off
        off = _align(off + 4 * k * n_info)
        self.size = off

    def header(self):
        return MAGIC + struct.pack("<6I", VERSION, self.k, self.f, self.d, self.itemsize, self.n_info) + bytes(36)

    def check_header(self, buf):
        got = bytes(buf[:28])
        if got[:4] == MAGIC and got[4:8] != self.header()[4:8]:
            theirs = struct.unpack("<I", got[4:8])[0]
            raise ValueError(
                f"the worker lays out shared memory version {theirs}, this herd_env version {VERSION}: "
                "herd and herd_env are from different versions of Herd; install the herd_env of the herd you run"
            )
        if got != self.header()[:28]:
            raise ValueError(f"shared memory header {got!r} is not this host's {self.header()[:28]!r}")

    def views(self, buf, dtype):
        k, f, d = self.k, self.f, self.d
        return dict(
            actions=np.frombuffer(buf, np.int32, k * d, self.actions).reshape(k, d),
            rewards=np.frombuffer(buf, np.float32, k, self.rewards),
            flags=np.frombuffer(buf, np.uint8, k, self.flags),
            observations=np.frombuffer(buf, dtype, k * f, self.observations).reshape(k, f),
            final_observations=np.frombuffer(buf, dtype, k * f, self.final_observations).reshape(k, f),
            episode_info=np.frombuffer(buf, np.float32, k * self.n_info, self.episode_info).reshape(k, self.n_info),
        )
