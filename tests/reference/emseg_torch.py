#!/usr/bin/python3
"""emseg_torch.py — an independent PyTorch rendering of the residual FCN in engine/MODEL.md.

This module is the reference the C engine is proven against (tests/reference/fixture-*.bin,
written by make_fixtures.py) and the other side of the benchmark (tests/bench/torch_bench.py).
It is written from MODEL.md alone, not from the C code, so a shared misreading shows up as a
parity failure rather than hiding in both. Parameter names are the state_dict names listed in
MODEL.md, so a state_dict maps 1:1 onto the engine's tensor table.

Run by hand with Debian's torch (python3-torch) — always /usr/bin/python3, the pyenv python3
on PATH has no torch:
    /usr/bin/python3 tests/reference/emseg_torch.py          # Table 1 parameter count
    /usr/bin/python3 tests/reference/emseg_torch.py --selftest

Conventions fixed here where MODEL.md leaves a name open (say so if the engine differs):
- the simple block's one 3×3 conv is `conv1` (basic: conv1, conv2; bottleneck: conv1..3);
- a long skip that is an identity has no module parameters (nothing named long.k);
- an init stage made of bottleneck blocks uses inner width b/4 so that it outputs b
  (MODEL.md says the init stage is b -> b; the Table 1 init block is simple, so this case
  only matters for ablations).
"""

import argparse
import dataclasses
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

BLOCK_KINDS = ("simple", "basic", "bottleneck")
# Integer codes used when a spec is stored as numbers (fixtures): index into BLOCK_KINDS.
BLOCK_CODE = {k: i for i, k in enumerate(BLOCK_KINDS)}

# Dropout modes of MODEL.md: off, train (on only in training mode), mc (also at inference).
DROPOUT_MODES = ("off", "train", "mc")


@dataclasses.dataclass
class Spec:
    """The model spec of MODEL.md; the defaults are the paper's Table 1."""
    in_channels: int = 1
    base_width: int = 32
    init_block: str = "simple"
    init_reps: int = 1
    main_block: str = "bottleneck"
    n_levels: int = 3
    down_reps: tuple = (3, 8, 10)
    across_reps: int = 3
    up_reps: tuple = (10, 8, 3)
    long_skip: bool = True
    short_skip: bool = True
    batchnorm: bool = True
    dropout: float = 0.0
    bn_eps: float = 1e-5
    bn_momentum: float = 0.9  # MODEL.md: running = momentum*running + (1-momentum)*batch

    def check(self):
        if self.init_block not in BLOCK_KINDS or self.main_block not in BLOCK_KINDS:
            raise ValueError(f"block kinds must be one of {BLOCK_KINDS}, got "
                             f"init_block={self.init_block!r} main_block={self.main_block!r}")
        if len(self.down_reps) != self.n_levels or len(self.up_reps) != self.n_levels:
            raise ValueError(f"down_reps {self.down_reps} and up_reps {self.up_reps} must both "
                             f"have n_levels = {self.n_levels} entries")
        if min((self.init_reps, self.across_reps) + tuple(self.down_reps)
               + tuple(self.up_reps)) < 1:
            raise ValueError("every stage needs at least one block")
        if self.init_block == "bottleneck" and self.base_width % 4:
            raise ValueError("a bottleneck init stage needs base_width divisible by 4")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {self.dropout}")


def out_width(kind, w):
    """Output width of a block of this kind with inner width w."""
    return 4 * w if kind == "bottleneck" else w


def repeat2(x):
    """Nearest ×2: out[y][x] = in[y/2][x/2]."""
    return x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


def decimate2(x):
    """Keep rows/cols 0, 2, 4, ..."""
    return x[:, :, ::2, ::2]


def make_bn(c, spec):
    if not spec.batchnorm:
        return nn.Identity()
    # torch's momentum is the weight of the *batch* statistic: 1 - MODEL.md's momentum.
    return nn.BatchNorm2d(c, eps=spec.bn_eps, momentum=1.0 - spec.bn_momentum)


class Dropout(nn.Module):
    """Inverted dropout with the three modes of MODEL.md."""

    def __init__(self, p):
        super().__init__()
        self.p = p
        self.mode = "train"

    def forward(self, x):
        if self.p == 0.0 or self.mode == "off":
            return x
        active = self.training or self.mode == "mc"
        return F.dropout(x, self.p, training=active)


class Block(nn.Module):
    """A pre-activation block (simple, basic or bottleneck) with optional subsampling at its
    input, upsampling at its output and a switchable short skip."""

    def __init__(self, kind, cin, w, sub, up, spec):
        super().__init__()
        self.kind, self.sub, self.up = kind, sub, up
        self.short_skip = spec.short_skip
        self.cin, self.cout = cin, out_width(kind, w)
        if kind == "bottleneck":
            self.bn1 = make_bn(cin, spec)
            self.conv1 = nn.Conv2d(cin, w, 1, stride=2 if sub else 1)
            self.bn2 = make_bn(w, spec)
            self.conv2 = nn.Conv2d(w, w, 3, padding=1)
            self.bn3 = make_bn(w, spec)
            self.conv3 = nn.Conv2d(w, 4 * w, 1)
        else:
            self.bn1 = make_bn(cin, spec)
            self.conv1 = nn.Conv2d(cin, w, 3, padding=1)
            if kind == "basic":
                self.bn2 = make_bn(w, spec)
                self.conv2 = nn.Conv2d(w, w, 3, padding=1)
        self.drop = Dropout(spec.dropout)
        if self.short_skip and cin != self.cout:
            self.shortcut = nn.Conv2d(cin, self.cout, 1)

    def forward(self, x):
        if self.kind == "bottleneck":
            h = self.conv1(F.relu(self.bn1(x)))
            h = self.conv2(F.relu(self.bn2(h)))
            r = self.conv3(F.relu(self.bn3(h)))
        else:
            xs = F.max_pool2d(x, 2) if self.sub else x
            r = self.conv1(F.relu(self.bn1(xs)))
            if self.kind == "basic":
                r = self.conv2(F.relu(self.bn2(r)))
        r = self.drop(r)
        if self.up:
            r = repeat2(r)
        if not self.short_skip:
            return r
        s = decimate2(x) if self.sub else x
        if self.cin != self.cout:
            s = self.shortcut(s)
        if self.up:
            s = repeat2(s)
        return r + s


def make_stage(kind, reps, cin, w, sub_first, up_last, spec):
    """reps blocks; only the first changes width, the first may subsample, the last may
    upsample. Returns (ModuleList, output width)."""
    blocks = nn.ModuleList()
    c = cin
    for r in range(reps):
        blk = Block(kind, c, w, sub_first and r == 0, up_last and r == reps - 1, spec)
        blocks.append(blk)
        c = blk.cout
    return blocks, c


class Post(nn.Module):
    def __init__(self, b, spec):
        super().__init__()
        self.bn = make_bn(b, spec)
        self.conv = nn.Conv2d(b, b, 3, padding=1)

    def forward(self, x):
        return self.conv(F.relu(self.bn(x)))


class ResidualFCN(nn.Module):
    """The model of MODEL.md. forward() returns logits (N, 1, H, W)."""

    def __init__(self, spec):
        super().__init__()
        spec.check()
        self.spec = spec
        b, L = spec.base_width, spec.n_levels
        init_w = b // 4 if spec.init_block == "bottleneck" else b
        self.pre = nn.Conv2d(spec.in_channels, b, 3, padding=1)

        self.down = nn.ModuleList()
        stage, c = make_stage(spec.init_block, spec.init_reps, b, init_w, True, False, spec)
        self.down.append(stage)
        skip_widths = [c]  # widths of D0 .. DL
        for i in range(L):
            stage, c = make_stage(spec.main_block, spec.down_reps[i], c, b << i, True, False,
                                  spec)
            self.down.append(stage)
            skip_widths.append(c)

        self.across, c = make_stage(spec.main_block, spec.across_reps, c, b << L, True, True,
                                    spec)
        stage_widths = [c]  # output widths of up-path stages k = 0 .. L+1
        self.up = nn.ModuleList()
        for j in range(L):
            level = L - 1 - j
            stage, c = make_stage(spec.main_block, spec.up_reps[j], c, b << level, False, True,
                                  spec)
            self.up.append(stage)
            stage_widths.append(c)
        stage, c = make_stage(spec.init_block, spec.init_reps, c, init_w, False, True, spec)
        self.up.append(stage)
        stage_widths.append(c)
        assert c == b, "the init mirror must bring the width back to b"

        # S_0 = D_L, S_k = D_(L-k) for 1 <= k <= L, S_(L+1) = P (width b).
        src_widths = [skip_widths[L - k] for k in range(L + 1)] + [b]
        self.long = nn.ModuleList()
        if spec.long_skip:
            for k in range(L + 2):
                if src_widths[k] != stage_widths[k]:
                    self.long.append(nn.Conv2d(src_widths[k], stage_widths[k], 1))
                else:
                    self.long.append(nn.Identity())

        self.post = Post(b, spec)
        self.classifier = nn.Conv2d(b, 1, 1)
        he_init(self)

    def forward(self, x):
        spec = self.spec
        L = spec.n_levels
        step = 1 << (L + 2)
        if x.shape[2] % step or x.shape[3] % step:
            raise ValueError(f"input {x.shape[2]}×{x.shape[3]}: H and W must be divisible by "
                             f"2^(L+2) = {step}")
        p = self.pre(x)
        h = p
        d = []
        for stage in self.down:
            for blk in stage:
                h = blk(h)
            d.append(h)
        for blk in self.across:
            h = blk(h)
        if spec.long_skip:
            h = h + self.long[0](d[L])
        for j in range(L):
            for blk in self.up[j]:
                h = blk(h)
            if spec.long_skip:
                h = h + self.long[j + 1](d[L - 1 - j])
        for blk in self.up[L]:
            h = blk(h)
        if spec.long_skip:
            h = h + self.long[L + 1](p)
        return self.classifier(self.post(h))

    def set_dropout_mode(self, mode):
        if mode not in DROPOUT_MODES:
            raise ValueError(f"dropout mode must be one of {DROPOUT_MODES}")
        for m in self.modules():
            if isinstance(m, Dropout):
                m.mode = mode


def he_init(model):
    """Conv weights He-normal, std sqrt(2 / (cin k k)); biases 0; BN gamma 1, beta 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            with torch.no_grad():
                m.weight.normal_(0.0, math.sqrt(2.0 / fan_in))
                m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
            m.reset_running_stats()


def count_params(model):
    return sum(p.numel() for p in model.parameters())


# ---- losses on logits z, target t (membrane = 1), weight m >= 0 ----------------------------

def bce_loss(z, t, m=None):
    """sum m * (softplus(z) - t z) / sum m, with a softplus that is exact for large |z|
    (F.softplus switches to z above its threshold, which is not MODEL.md's formula)."""
    if m is None:
        m = torch.ones_like(z)
    softplus = torch.clamp(z, min=0) + torch.log1p(torch.exp(-torch.abs(z)))
    return (m * (softplus - t * z)).sum() / m.sum()


def dice_loss(z, t, m=None, eps=1e-7):
    """-2 sum m o t / (sum m o + sum m t + eps), o = sigmoid(z)."""
    if m is None:
        m = torch.ones_like(z)
    o = torch.sigmoid(z)
    return -2.0 * (m * o * t).sum() / ((m * o).sum() + (m * t).sum() + eps)


def is_conv_weight(name, p):
    """Coupled L2 applies to conv weights only: 4-D tensors (BN weights are 1-D)."""
    return name.endswith(".weight") and p.dim() == 4


def make_optimizer(model, lr=1e-3, rho=0.9, eps=1e-7, wd=1e-3):
    """RMSprop of MODEL.md. torch.optim.RMSprop computes g' = g + wd*w, v = alpha v +
    (1-alpha) g'^2, w -= lr g' / (sqrt(v) + eps) (eps outside the sqrt; checked in this torch
    version by --selftest); wd goes only on the conv-weight group."""
    decay = [p for n, p in model.named_parameters() if is_conv_weight(n, p)]
    plain = [p for n, p in model.named_parameters() if not is_conv_weight(n, p)]
    return torch.optim.RMSprop([{"params": decay, "weight_decay": wd},
                                {"params": plain, "weight_decay": 0.0}],
                               lr=lr, alpha=rho, eps=eps, momentum=0.0, centered=False)


def rmsprop_by_hand(w, g, v, lr, rho, eps, wd):
    """MODEL.md's update written out, to check torch's optimizer against it."""
    g = g + wd * w
    v = rho * v + (1.0 - rho) * g * g
    return w - lr * g / (torch.sqrt(v) + eps), v


def selftest():
    """Checks the rendering's assumptions about torch itself; exits non-zero on failure."""
    torch.manual_seed(0)
    failures = []

    # RMSprop: eps outside the sqrt, coupled L2, alpha = rho; two steps from v = 0.
    w0 = torch.randn(5, 3, 3, 3, dtype=torch.float64)
    conv = nn.Conv2d(3, 5, 3).double()
    with torch.no_grad():
        conv.weight.copy_(w0)
    holder = nn.Module()
    holder.c = conv
    opt = make_optimizer(holder, lr=1e-3, rho=0.9, eps=1e-7, wd=1e-3)
    w, v = w0.clone(), torch.zeros_like(w0)
    for _ in range(2):
        g = torch.randn_like(w0) * 1e-6  # small, so eps matters
        conv.weight.grad = g.clone()
        conv.bias.grad = torch.zeros_like(conv.bias)
        opt.step()
        w, v = rmsprop_by_hand(w, g, v, 1e-3, 0.9, 1e-7, 1e-3)
    err = (conv.weight.detach() - w).abs().max().item()
    if err > 1e-12:
        failures.append(f"RMSprop differs from MODEL.md's update by {err:g}")

    # BN running statistics: momentum convention and unbiased running variance.
    bn = make_bn(3, Spec())
    bn.double().train()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    bn(x)
    mean = x.mean(dim=(0, 2, 3))
    var_u = x.var(dim=(0, 2, 3), unbiased=True)
    err = max((bn.running_mean - 0.1 * mean).abs().max().item(),
              (bn.running_var - (0.9 + 0.1 * var_u)).abs().max().item())
    if err > 1e-12:
        failures.append(f"BN running stats differ from MODEL.md by {err:g}")

    # Max-pool ties: the first maximum in row-major order gets the gradient.
    x = torch.zeros(1, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    if x.grad.flatten().tolist() != [1.0, 0.0, 0.0, 0.0]:
        failures.append(f"max-pool tie gradient went to {x.grad.flatten().tolist()}")

    # Losses against their formulas on a few hand-made values.
    z = torch.tensor([-30.0, -1.0, 0.0, 2.0, 40.0], dtype=torch.float64)
    t = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    m = torch.tensor([1.0, 0.0, 2.0, 1.0, 0.5], dtype=torch.float64)
    want = sum(mi * (math.log1p(math.exp(zi)) - ti * zi) if zi < 30 else mi * (zi - ti * zi)
               for zi, ti, mi in zip(z.tolist(), t.tolist(), m.tolist())) / m.sum().item()
    if abs(bce_loss(z, t, m).item() - want) > 1e-12:
        failures.append(f"BCE {bce_loss(z, t, m).item()} != {want}")
    o = [1 / (1 + math.exp(-zi)) for zi in z.tolist()]
    want = -2 * sum(mi * oi * ti for mi, oi, ti in zip(m.tolist(), o, t.tolist())) / (
        sum(mi * oi for mi, oi in zip(m.tolist(), o)) + m.mul(t).sum().item() + 1e-7)
    if abs(dice_loss(z, t, m).item() - want) > 1e-12:
        failures.append(f"Dice {dice_loss(z, t, m).item()} != {want}")

    # Shapes and resolutions through a small model of each block kind.
    for kind in BLOCK_KINDS:
        for short in (True, False):
            spec = Spec(base_width=4, main_block=kind, n_levels=2, down_reps=(2, 1),
                        across_reps=2, up_reps=(1, 2), short_skip=short)
            model = ResidualFCN(spec).double()
            y = model(torch.randn(1, 1, 32, 32, dtype=torch.float64))
            if tuple(y.shape) != (1, 1, 32, 32):
                failures.append(f"{kind} short={short}: output shape {tuple(y.shape)}")

    for f in failures:
        print("FAIL:", f)
    print(f"selftest: torch {torch.__version__}, {len(failures)} failure(s)")
    return 1 if failures else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--selftest", action="store_true",
                    help="check torch's optimizer, BN, max-pool and the losses against MODEL.md")
    ap.add_argument("--names", action="store_true", help="list the state_dict of Table 1")
    args = ap.parse_args(argv)
    if args.selftest:
        return selftest()
    model = ResidualFCN(Spec())
    if args.names:
        for name, t in model.state_dict().items():
            print(name, tuple(t.shape))
    n_bn = sum(p.numel() for n, p in model.named_parameters() if ".bn" in n or "bn." in n)
    n_conv = count_params(model) - n_bn
    print(f"Table 1 model: {count_params(model)} parameters "
          f"({n_conv} conv weights+biases, {n_bn} BN gamma+beta)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
