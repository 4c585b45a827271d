#!/usr/bin/python3
"""make_fixtures.py — writes the committed PyTorch parity fixtures fixture-A.bin, fixture-B.bin.

Each fixture holds one reduced spec of engine/MODEL.md, an input batch, and everything a C
test needs to prove the engine computes the same model: parameters before, training-mode
logits, both losses, every gradient of each loss, BN running statistics after the forward,
parameters after one RMSprop step on the BCE gradient, and the inference-mode logits after
that step. The file format is documented in fixture.h (and implemented by write_fixture
below and fixture.c).

How the values are made (so the C side knows what it compares against):
- Parameters are He-normal initialised, then perturbed (BN gamma in [0.8, 1.2], beta,
  biases and running statistics away from 0/1) so a bug that ignores one of them cannot
  hide behind an identity value. They, x, t and m are rounded to float32 first, so the
  stored float32 values are exactly what the reference computed with.
- Everything is then computed in float64 and stored rounded to float32.
- Exactly ONE training-mode forward is run (with dropout 0). Both losses come from its
  logits; grad.* and dgrad.* are the gradients of BCE and Dice from that same forward, and
  after.* are the running statistics it left. The RMSprop step (lr 1e-3, rho 0.9, eps 1e-7
  outside the sqrt, coupled wd 1e-3 on conv weights only, v starting at 0) uses grad.*.
  infer_logits is an eval-mode forward (running statistics = after.*) with the stepped
  parameters.
- In training mode every conv bias except post.conv's and the classifier's has an exactly
  zero gradient in exact arithmetic: a per-channel constant passes unchanged through 1×1
  convs, max-pool, decimation, repetition and sums, and every path from such a bias meets a
  batch-norm (which removes it) before any 3×3 conv. Those tensors are listed as
  `zerograd.<name>` = 1; their grad.*/dgrad.* are ~1e-17 here and rounding noise in any
  float32 engine (~1e-8), and their step.* is therefore noise too (RMSprop's first step is
  lr*g/(sqrt(0.1)|g| + 1e-7), up to ~3e-3 for noise g). Compare them with absolute bounds.
- dlogits.bce / dlogits.dice are the gradients of each loss w.r.t. the logits, to check the
  loss layers apart from the network.

Run: /usr/bin/python3 tests/reference/make_fixtures.py [--out-dir DIR] [--check]
--check also reruns everything in float32 and prints the largest float32-vs-float64
differences per quantity: a floor for the tolerances of the C parity test.
"""

import argparse
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emseg_torch as E  # noqa: E402

MAGIC = b"EMSEGFX\0"
VERSION = 1
HERE = os.path.dirname(os.path.abspath(__file__))

OPT = dict(lr=1e-3, rho=0.9, eps=1e-7, wd=1e-3)
DICE_EPS = 1e-7

SPECS = {
    "A": dict(spec=E.Spec(in_channels=1, base_width=4, init_block="simple", init_reps=1,
                          main_block="bottleneck", n_levels=3, down_reps=(1, 1, 1),
                          across_reps=1, up_reps=(1, 1, 1), long_skip=True, short_skip=True,
                          dropout=0.0),
              batch=2, size=64, seed=20160901),
    "B": dict(spec=E.Spec(in_channels=1, base_width=4, init_block="simple", init_reps=1,
                          main_block="basic", n_levels=2, down_reps=(2, 2), across_reps=1,
                          up_reps=(2, 2), long_skip=True, short_skip=False, dropout=0.0),
              batch=1, size=32, seed=20161024),
}


def write_fixture(path, tensors):
    """tensors: list of (name, tensor). Format: see fixture.h."""
    names = [n for n, _ in tensors]
    if len(set(names)) != len(names):
        raise ValueError("duplicate tensor names in fixture")
    out = bytearray(MAGIC)
    out += struct.pack("<II", VERSION, len(tensors))
    for name, t in tensors:
        raw = name.encode("ascii")
        if not 1 <= len(raw) <= 255:
            raise ValueError(f"tensor name {name!r} must be 1..255 bytes")
        t = t.detach().to(torch.float32).contiguous().cpu()
        out += struct.pack("<I", len(raw)) + raw
        out += struct.pack("<I", t.dim()) + struct.pack(f"<{t.dim()}I", *t.shape)
        out += struct.pack(f"<{t.numel()}f", *t.flatten().tolist())
    with open(path, "wb") as f:
        f.write(out)
    return len(out)


def read_fixture(path):
    """The inverse of write_fixture, used to check what was written."""
    data = open(path, "rb").read()
    if data[:8] != MAGIC:
        raise ValueError(f"{path}: not a fixture")
    version, count = struct.unpack_from("<II", data, 8)
    pos, result = 16, {}
    for _ in range(count):
        (nlen,) = struct.unpack_from("<I", data, pos)
        name = data[pos + 4:pos + 4 + nlen].decode("ascii")
        pos += 4 + nlen
        (ndim,) = struct.unpack_from("<I", data, pos)
        shape = struct.unpack_from(f"<{ndim}I", data, pos + 4)
        pos += 4 + 4 * ndim
        numel = 1
        for d in shape:
            numel *= d
        vals = struct.unpack_from(f"<{numel}f", data, pos)
        pos += 4 * numel
        result[name] = torch.tensor(vals, dtype=torch.float32).reshape(shape)
    if pos != len(data):
        raise ValueError(f"{path}: {len(data) - pos} trailing bytes")
    return result


def f32(t):
    """Round to float32 and back, keeping the original dtype."""
    return t.to(torch.float32).to(t.dtype)


def make_inputs(batch, size, gen, dtype):
    """A membrane-like target (thin zero-crossings of a smooth random field), an image that
    is darker on membranes plus noise (standardised), and a weight map with an unlabeled
    block, scattered unlabeled pixels and a half-weight stripe."""
    n = batch
    field = torch.randn(n, 1, size // 8, size // 8, generator=gen, dtype=torch.float64)
    field = torch.nn.functional.interpolate(field, size=(size, size), mode="bilinear",
                                            align_corners=False)
    t = (field.abs() < 0.15).to(torch.float64)
    x = -1.5 * t + 0.7 * torch.randn(n, 1, size, size, generator=gen, dtype=torch.float64)
    x = (x - x.mean(dim=(1, 2, 3), keepdim=True)) / x.std(dim=(1, 2, 3), keepdim=True)
    m = torch.ones(n, 1, size, size, dtype=torch.float64)
    m[:, :, size // 4:size // 2, size // 8:size // 3] = 0.0
    m[torch.rand(n, 1, size, size, generator=gen, dtype=torch.float64) < 0.1] = 0.0
    m[:, :, -3:, :] = 0.5
    return f32(x).to(dtype), t.to(dtype), m.to(dtype)


def perturb(model, gen):
    """Moves every parameter and buffer away from its identity value (see the docstring)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            shape, dt = p.shape, p.dtype
            if p.dim() == 4:
                continue  # conv weights keep their He-normal values
            noise = torch.randn(shape, generator=gen, dtype=torch.float64).to(dt)
            if ".bn" in name or name.startswith("post.bn"):
                if name.endswith(".weight"):
                    p.copy_(0.8 + 0.4 * torch.rand(shape, generator=gen,
                                                   dtype=torch.float64).to(dt))
                else:
                    p.copy_(0.1 * noise)
            else:
                p.copy_(0.05 * noise)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=gen, dtype=torch.float64))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen, dtype=torch.float64))


def build(spec, seed, dtype):
    torch.manual_seed(seed)  # He init uses the global generator
    model = E.ResidualFCN(spec).to(torch.float64)
    perturb(model, torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.copy_(f32(t))
    return model.to(dtype)


def float_buffers(model):
    return [(n, b) for n, b in model.named_buffers() if b.is_floating_point()]


def compute(key, dtype, override=None):
    """Runs the recipe of the module docstring; returns an ordered list of (name, tensor)."""
    cfg = SPECS[key]
    spec = cfg["spec"]
    gen = torch.Generator().manual_seed(cfg["seed"])
    model = build(spec, cfg["seed"], dtype)
    x, t, m = make_inputs(cfg["batch"], cfg["size"], gen, dtype)
    L = spec.n_levels

    out = [("spec.in_channels", spec.in_channels), ("spec.base_width", spec.base_width),
           ("spec.init_block", E.BLOCK_CODE[spec.init_block]), ("spec.init_reps", spec.init_reps),
           ("spec.main_block", E.BLOCK_CODE[spec.main_block]), ("spec.n_levels", L),
           ("spec.down_reps", list(spec.down_reps)), ("spec.across_reps", spec.across_reps),
           ("spec.up_reps", list(spec.up_reps)), ("spec.long_skip", int(spec.long_skip)),
           ("spec.short_skip", int(spec.short_skip)), ("spec.batchnorm", int(spec.batchnorm)),
           ("spec.dropout", spec.dropout), ("spec.bn_eps", spec.bn_eps),
           ("spec.bn_momentum", spec.bn_momentum),
           ("opt.lr", OPT["lr"]), ("opt.rho", OPT["rho"]), ("opt.eps", OPT["eps"]),
           ("opt.wd", OPT["wd"]), ("loss.dice_eps", DICE_EPS)]
    out = [(n, torch.tensor(v, dtype=torch.float64)) for n, v in out]
    out += [("x", x), ("t", t), ("m", m)]
    params = list(model.named_parameters())
    out += [(n, v.detach().clone()) for n, v in model.state_dict().items()
            if v.is_floating_point()]

    model.train()
    logits = model(x)
    bce = E.bce_loss(logits, t, m)
    dice = E.dice_loss(logits, t, m, DICE_EPS)
    # Gradients w.r.t. the logits: the loss layers checked apart from the network.
    dz_bce, = torch.autograd.grad(bce, logits, retain_graph=True)
    dz_dice, = torch.autograd.grad(dice, logits, retain_graph=True)
    grads = torch.autograd.grad(bce, [p for _, p in params], retain_graph=True)
    dgrads = torch.autograd.grad(dice, [p for _, p in params])
    out += [("logits", logits.detach()), ("loss.bce", bce.detach()),
            ("loss.dice", dice.detach()), ("dlogits.bce", dz_bce), ("dlogits.dice", dz_dice)]
    out += [("grad." + n, g) for (n, _), g in zip(params, grads)]
    out += [("dgrad." + n, g) for (n, _), g in zip(params, dgrads)]
    out += [("after." + n, b.detach().clone()) for n, b in float_buffers(model)]
    # Structurally zero gradients (conv biases whose every path meets a training-mode BN):
    # flagged so the C test knows these hold rounding noise, not values to match.
    gscale = max(g.abs().max().item() for g in grads)
    out += [("zerograd." + n, torch.tensor(1.0)) for (n, _), g in zip(params, grads)
            if g.abs().max().item() < 1e-9 * gscale]

    opt = E.make_optimizer(model, **OPT)
    for (_, p), g in zip(params, grads):
        p.grad = g.clone()
    opt.step()
    out += [("step." + n, p.detach().clone()) for n, p in params]

    # Inference runs on exactly the float32 values stored in step.* and after.* (or on the
    # ones given in `override`), so a C test can check it from the file alone.
    model.eval()
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + float_buffers(model):
            key = ("step." if isinstance(t, torch.nn.Parameter) else "after.") + name
            t.copy_(override[key] if override else f32(t))
        out.append(("infer_logits", model(x)))
    return out


def check_float32(key, ref):
    """Prints how far a float32 run of the same recipe lands from the float64 reference:
    per group, the worst per-tensor max|diff| / max|ref|. Structurally zero gradients and
    the steps they drive are their own groups (absolute figures only). Inference is rerun
    in float32 from the stored step.* and after.*, as a C test would."""
    ref = dict(ref)
    override = {n: v for n, v in ref.items() if n.startswith(("step.", "after."))}
    got = dict(compute(key, torch.float32, override))
    zero = {n.split(".", 1)[1] for n in ref if n.startswith("zerograd.")}
    groups = {}
    for name, r in ref.items():
        if name not in got:
            continue  # zerograd.* flags may differ in a float32 run
        g, r = got[name].to(torch.float64), r.to(torch.float64)
        prefix = name.split(".")[0] if "." in name else name
        if prefix in ("grad", "dgrad", "step") and name.split(".", 1)[1] in zero:
            prefix += "(zero)"
        err = (g - r).abs().max().item()
        scale = r.abs().max().item()
        rel = err / scale if scale > 0 and "(zero)" not in prefix else float("nan")
        worst = groups.get(prefix)
        score = err if rel != rel else rel
        if worst is None or score > worst[0]:
            groups[prefix] = (score, rel, err, name)
    print(f"  fixture {key}: float32 torch vs float64 reference (worst tensor per group: "
          f"max|diff|/max|ref|, max|diff|):")
    for prefix, (_, rel, err, name) in sorted(groups.items()):
        if err > 0:
            print(f"    {prefix:14s} rel {rel:9.2e}  abs {err:8.2e}  {name}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", default=HERE)
    ap.add_argument("--check", action="store_true",
                    help="also compare a float32 torch run with the float64 reference")
    args = ap.parse_args()
    torch.set_num_threads(1)  # reproducible reductions
    if E.selftest() != 0:
        raise SystemExit("torch does not behave as MODEL.md assumes; no fixtures written")
    for key in SPECS:
        tensors = compute(key, torch.float64)
        path = os.path.join(args.out_dir, f"fixture-{key}.bin")
        size = write_fixture(path, tensors)
        back = read_fixture(path)
        for name, t in tensors:
            if not torch.equal(back[name], t.to(torch.float32)):
                raise SystemExit(f"{path}: {name} did not survive the round trip")
        n_params = sum(v.numel() for n, v in tensors if n.startswith("grad."))
        d = dict(tensors)
        print(f"{path}: {len(tensors)} tensors, {size} bytes, {n_params} parameters, "
              f"bce {d['loss.bce'].item():.6f}, dice {d['loss.dice'].item():.6f}")
        if args.check:
            check_float32(key, tensors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
