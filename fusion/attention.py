"""Recursive joint cross-modal attention (the paper's §3.4), in two variants selected by config.

Notation: B batch, K window length (frames), modality m with features d_m, d = sum of d_m.
Everything is batch-first: modality features ``x_m`` are ``[B, K, d_m]``, i.e. ``x_m = X_m^T`` of
the paper, whose ``X_m`` is ``d_m x K`` (columns are frames). The joint representation concatenates
the modalities in the order of ``dims`` (for the official variant: video, audio, text).

variant "paper" (eqs. 1-14 read literally), one recursion step:
    J   = FC(concat_m x_m)                        [B, K, d]     eq. (1), FC = Linear(d, d)
    C_m = tanh(x_m W_jm J^T / sqrt(d))            [B, K, K]     eqs. (2-4); W_jm [d_m, d];
                                                                C_m[i, j] = x_m[i] W_jm J[j]
    H_m = ReLU(X_m W_cm C_m)  i.e. batch-first
    h_m = ReLU(C_m^T W_cm^T x_m)                  [B, K, d_m]   eqs. (5-7);  W_cm [K, K]
    X_att,m = H_m W_hm + X_m, i.e. batch-first
    x_m <- W_hm^T h_m + x_m                       [B, K, d_m]   eqs. (8-13); W_hm [K, K]
  No dropout (the paper names none). Init: FC as torch's Linear; W_jm ~ N(0, 1/d_m) so that the
  tanh argument starts at unit scale; W_cm = I / sqrt(K) (start with no extra time mixing, with
  h_m at unit scale after summing K attention-weighted frames); W_hm = PAPER_WH_GAIN * I so the
  residual starts near identity while every weight still gets a gradient at the first step.

variant "official" (the authors' shipped code, ../shared/notes/official-code.md), one step:
    J     = concat_m x_m                          [B, K, d]     (the unused query FC is not built)
    key_m = Linear(K, K)(x_m^T)                   [B, d_m, K]   a learned mixing over time
    C_m   = Dropout(tanh(key_m @ J / sqrt(d)))    [B, d_m, d]   feature x joint-feature map
    v_m   = Linear(d_m, d_m)(x_m)                 [B, K, d_m]
    H_m   = relu(tanh(v_m @ C_m))                 [B, K, d]
    x_m  <- x_m + Dropout(relu(Linear(d, d_m)(H_m)))            [B, K, d_m]
  Init: torch's Linear defaults (as the official code).

Both: ``recursions`` steps, separate weights per step (or one shared step), J rebuilt from the
updated features at every step, all modalities updated from the same J; the last step's features
are returned.

How it is computed (same functions of the same parameters, float rounding apart): the steps run
time-major, ``[K, B, d_m]``, so that every product that contracts time with a weight shared by the
batch (W_cm, W_hm; the official Linear(K, K)) is one GEMM over all batch items with no transposed
copy, and the per-item products are batched GEMMs on strided views; inputs are copied into that
layout once and the outputs are transposed views. Paper: eq. (1)'s FC is folded into W_j (J is only
used through J W_jm^T), and the K x K products run on K rounded up to a multiple of TIME_ALIGN with
zero frames and zero-padded W_cm / W_hm, which leaves the first K frames exact and the padded frames
zero; the output is cropped back to K. Official: the 1/sqrt(d) of the map is folded into the keys.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fusion.activation import leaky_relu_dropout, tanh_relu
from fusion.dropout import Dropout

VARIANTS = ("paper", "official")
MODALITY_ALIASES = {"video": "visual"}  # official-code name -> our name
PAPER_WH_GAIN = 0.1  # paper variant: W_hm starts as PAPER_WH_GAIN * identity (residual near identity)
TIME_ALIGN = 8  # paper variant: the K x K products run on K rounded up to this (MKL is 1.0-1.4x faster
# on [N, 304] x [304, 304] than on [N, 300] x [300, 300] on the 2-core AVX2 CPU, bench/bench_kernels.py)


def time_major(x: torch.Tensor, length: int) -> torch.Tensor:
    """Batch-first ``[B, K, d]`` -> contiguous time-major ``[length, B, d]``, frames K.. zero
    (``length >= K``)."""
    return F.pad(x.transpose(0, 1), (0, 0, 0, 0, 0, length - x.shape[1])).contiguous()


def canonical(name: str) -> str:
    """Our name of a modality (``video`` is accepted as an alias of ``visual``)."""
    return MODALITY_ALIASES.get(name, name)


class PaperStep(nn.Module):
    """One recursion step of eqs. (1)-(13): dict m -> ``[B, K, d_m]`` to the same."""

    def __init__(self, dims: dict[str, int], window: int):
        super().__init__()
        self.names = list(dims)
        self.sizes = [dims[m] for m in self.names]
        d = sum(dims.values())
        self.scale = 1.0 / math.sqrt(d)
        self.joint = nn.Linear(d, d)  # FC of eq. (1)
        self.w_j = nn.ParameterDict(
            {m: nn.Parameter(torch.randn(d_m, d) / math.sqrt(d_m)) for m, d_m in dims.items()}
        )
        self.w_c = nn.ParameterDict({m: nn.Parameter(torch.eye(window) / math.sqrt(window)) for m in dims})
        self.w_h = nn.ParameterDict({m: nn.Parameter(torch.eye(window) * PAPER_WH_GAIN) for m in dims})

    def forward(self, xs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """xs: m -> time-major ``[K', B, d_m]`` (contiguous) with K' >= K; frames K.. must be zero
        (time padding, see :func:`time_major`): W_cm and W_hm are zero-padded to K' x K', so the first K
        frames are exactly eqs. (1)-(13) and the padded frames of the output are zero again."""
        length, batch = next(iter(xs.values())).shape[:2]
        pad = length - self.w_c[self.names[0]].shape[0]
        # eq. (1)'s FC is only ever used through J W_jm^T, so it is folded into W_j:
        #   J W_j^T = (X W_fc^T + b_fc) W_j^T = X (W_j W_fc)^T + W_j b_fc
        # one [K' B, d] x [d, d] GEMM for every modality's J W_jm^T instead of two, since the
        # product of the two [d, d] weights costs d^3 instead of B K d^2 MACs (the 1/sqrt(d) folded too)
        w_j = torch.cat([self.w_j[m] for m in self.names], dim=0) * self.scale  # [d, d]: rows of W_jm per m
        keys = F.linear(torch.cat([xs[m] for m in self.names], dim=-1), w_j @ self.joint.weight,
                        w_j @ self.joint.bias).split(self.sizes, dim=-1)  # m: J W_jm^T/sqrt(d) [K', B, d_m]
        out = {}
        for m, key in zip(self.names, keys):
            x = xs[m]  # X_m^T per batch item, time-major: [K', B, d_m]
            d_m = x.shape[-1]
            w_c, w_h = F.pad(self.w_c[m], (0, pad, 0, pad)), F.pad(self.w_h[m], (0, pad, 0, pad))
            # C_m = tanh(x_m W_jm J^T / sqrt(d)) associated as x_m (J W_jm^T)^T: B K d_m (d + K) MACs per
            # modality instead of B K d (d_m + K); batched over B on strided views, no copies
            c = torch.tanh_(x.transpose(0, 1) @ key.permute(1, 2, 0))  # C_m: [B, K', K']
            # the time mixings contract K, which time-major makes one GEMM over every batch item:
            t = (w_c.t() @ x.reshape(length, batch * d_m)).view(length, batch, d_m)  # W_cm^T x_m
            h_t = torch.relu_(t.permute(1, 2, 0) @ c)  # H_m = ReLU(X_m W_cm C_m): [B, d_m, K']
            o_t = (h_t.reshape(batch * d_m, length) @ w_h).view(batch, d_m, length)  # H_m W_hm
            out[m] = x + o_t.permute(2, 0, 1)  # X_att,m^T = (H_m W_hm + X_m)^T: [K', B, d_m]
        return out


class OfficialStep(nn.Module):
    """One recursion step as the official code computes it: dict m -> ``[B, K, d_m]`` to the same."""

    def __init__(self, dims: dict[str, int], window: int, dropout: float):
        super().__init__()
        self.names = list(dims)
        self.sizes = [dims[m] for m in self.names]
        d = sum(dims.values())
        self.scale = 1.0 / math.sqrt(d)
        self.key = nn.ModuleDict({m: nn.Linear(window, window) for m in dims})
        self.value = nn.ModuleDict({m: nn.Linear(d_m, d_m) for m, d_m in dims.items()})
        self.out = nn.ModuleDict({m: nn.Linear(d, d_m) for m, d_m in dims.items()})
        self.map_dropout = Dropout(dropout)
        self.out_dropout = Dropout(dropout)

    def forward(self, xs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """xs: m -> time-major ``[K, B, d_m]`` (contiguous) -> the same."""
        length, batch = next(iter(xs.values())).shape[:2]
        joint = torch.cat([xs[m] for m in self.names], dim=-1)  # J: [K, B, d]
        # key_m = Linear(K, K)(x_m^T), i.e. key_m^T = W_k x_m + b_k: one GEMM over every batch item in
        # the time-major layout (no transposed copy of x_m), the 1/sqrt(d) of the map folded in
        keys = torch.cat([
            torch.addmm(self.key[m].bias[:, None], self.key[m].weight, xs[m].reshape(length, -1),
                        beta=self.scale, alpha=self.scale).view(length, batch, -1)
            for m in self.names
        ], dim=-1)  # every modality's key^T / sqrt(d), stacked: [K, B, d]
        # one [B, d, K] @ [B, K, d] product, one tanh, one dropout for all modalities
        maps = self.map_dropout(torch.tanh_(keys.permute(1, 2, 0) @ joint.transpose(0, 1)))
        out = {}
        for m, c in zip(self.names, maps.split(self.sizes, dim=1)):
            x = xs[m]  # [K, B, d_m]; c = C_m: [B, d_m, d]
            h = tanh_relu(self.value[m](x).transpose(0, 1) @ c)  # relu(tanh(.)): [B, K, d]
            o = self.out[m](h)  # [B, K, d_m]
            out[m] = x + leaky_relu_dropout(o, 0.0, self.out_dropout.mask(o)).transpose(0, 1)  # [K, B, d_m]
        return out


class RecursiveJointCrossModalAttention(nn.Module):
    """Recursive joint cross-modal attention over 1-3 (any number of) modalities.

    dims: modality -> feature dim d_m, in the order used to build J (``video`` = ``visual``);
    window: K, the only accepted sequence length; recursions: l >= 1 steps; variant: "paper" or
    "official"; dropout: the official variant's dropout (map and residual branch; unused by
    "paper"); shared_weights: one step's weights reused for all l steps.
    forward: dict m -> ``[B, K, d_m]`` -> the same keys, attended ``[B, K, d_m]`` (last step).
    """

    def __init__(
        self,
        dims: dict[str, int],
        window: int,
        recursions: int,
        variant: str,
        dropout: float,
        shared_weights: bool = False,
    ):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"attention variant must be one of {VARIANTS}, got {variant!r}")
        if not dims:
            raise ValueError("attention needs at least one modality")
        names = [canonical(m) for m in dims]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate modalities in {list(dims)} (video is an alias of visual)")
        if min(dims.values()) < 1:
            raise ValueError(f"modality dims must be positive, got {dict(dims)}")
        if window < 1 or recursions < 1:
            raise ValueError(
                f"window and recursions must be >= 1, got window={window}, recursions={recursions}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dims = {canonical(m): int(d_m) for m, d_m in dims.items()}
        self.window = window
        self.recursions = recursions
        self.variant = variant
        self.shared_weights = shared_weights
        n_steps = 1 if shared_weights else recursions
        if variant == "paper":
            self.steps = nn.ModuleList([PaperStep(self.dims, window) for _ in range(n_steps)])
        else:
            self.steps = nn.ModuleList([OfficialStep(self.dims, window, dropout) for _ in range(n_steps)])

    def _check(self, xs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Inputs keyed by our names, with shapes checked against dims and window."""
        by_name = {canonical(k): v for k, v in xs.items()}
        if set(by_name) != set(self.dims) or len(by_name) != len(xs):
            raise ValueError(f"attention expects modalities {list(self.dims)}, got {list(xs)}")
        batch = None
        for m, d_m in self.dims.items():
            x = by_name[m]
            if x.dim() != 3:
                raise ValueError(f"{m}: expected [B, K, d_m], got shape {tuple(x.shape)}")
            if x.shape[1] != self.window:
                raise ValueError(
                    f"{m}: window length K = {x.shape[1]} but the attention is built for "
                    f"window = {self.window} (fusion.window)"
                )
            if x.shape[2] != d_m:
                raise ValueError(f"{m}: feature dim {x.shape[2]} != {d_m}")
            if batch is not None and x.shape[0] != batch:
                raise ValueError(f"batch sizes differ across modalities: {x.shape[0]} vs {batch}")
            batch = x.shape[0]
        return by_name

    def forward(self, xs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        h = self._check(xs)
        # the steps run time-major ([K, B, d_m]): one copy in, none out (a transposed view);
        # the paper variant on K padded to TIME_ALIGN, exact on the first K frames (PaperStep.forward)
        length = -(-self.window // TIME_ALIGN) * TIME_ALIGN if self.variant == "paper" else self.window
        h = {m: time_major(x, length) for m, x in h.items()}
        for i in range(self.recursions):
            h = self.steps[0 if self.shared_weights else i](h)
        return {k: h[canonical(k)][: self.window].transpose(0, 1) for k in xs}
