#!/usr/bin/python3
"""torch_bench.py — the PyTorch side of the emseg benchmark (a program, not a test).

Times the Table 1 model of engine/MODEL.md, rendered by tests/reference/emseg_torch.py, the
way `emseg bench` times the engine: batch 1, float32, `--size`×`--size` input, 2 threads.
With `--bf16`, forward and loss run under CPU autocast to bfloat16 (PyTorch's own mixed
precision: convolutions in bfloat16 on oneDNN, float32 weights and optimizer), the
counterpart of `emseg bench --bf16`.
Prints one `name value` per line with the names `emseg bench` uses, so tests/bench/compare.sh
can divide them:
  params               parameter count (Table 1: 12,261,537)
  train_step_s_median  forward + loss backward + RMSprop step (train mode), median seconds
  infer_s_median       eval-mode forward + sigmoid under no_grad, median seconds
  peak_rss_mb          peak resident set of this process (ru_maxrss), MiB
and, for context, lines other tools may ignore:
  conv_backend         which ATen kernels ran the convolutions (from a profiled forward)
  mkldnn_available     torch.backends.mkldnn.is_available()
  import_rss_mb        resident set after `import torch`, before the model exists
  conv_gflop_forward   conv FLOPs (2·MACs) of one forward, in GFLOP
  train_gflops         3 × conv_gflop_forward / train_step_s_median (forward + the two
                       backward GEMMs per conv; a rate, not a measured FLOP count)
Run with Debian's torch: /usr/bin/python3 tests/bench/torch_bench.py --size 512 --steps 3
"""

import argparse
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import emseg_torch as E  # noqa: E402


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def conv_flops(model, x):
    """2·MACs of every conv in one forward, measured with hooks on the real shapes."""
    total = [0]

    def hook(mod, inp, out):
        k = mod.kernel_size[0] * mod.kernel_size[1]
        total[0] += 2 * out.numel() * mod.in_channels * k

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total[0]


def conv_backend(model, x):
    """Names of the ATen conv kernels a forward dispatches to, with call counts."""
    with torch.no_grad(), torch.autograd.profiler.profile() as prof:
        model(x)
    # Leaf kernels only: aten::thnn_conv2d merely wraps _slow_conv2d_forward.
    kinds = {"aten::mkldnn_convolution": "mkldnn",
             "aten::_slow_conv2d_forward": "native-im2col-gemm"}
    counts = {}
    for ev in prof.function_events:
        if ev.name in kinds:
            counts[kinds[ev.name]] = counts.get(kinds[ev.name], 0) + 1
        elif "conv" in ev.name and ev.name not in ("aten::conv2d", "aten::convolution",
                                                   "aten::_convolution",
                                                   "aten::thnn_conv2d"):
            counts[ev.name] = counts.get(ev.name, 0) + 1
    return ",".join(f"{n}:{c}" for n, c in sorted(counts.items())) or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=5, help="timed repetitions of each figure")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--loss", choices=("bce", "dice"), default="bce")
    ap.add_argument("--bf16", action="store_true",
                    help="autocast forward and loss to bfloat16 (CPU autocast)")
    args = ap.parse_args()
    if args.steps < 1:
        ap.error("--steps must be at least 1")

    import_rss = rss_mb()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    spec = E.Spec()
    model = E.ResidualFCN(spec)
    opt = E.make_optimizer(model)
    loss_fn = E.bce_loss if args.loss == "bce" else E.dice_loss
    s = args.size
    x = torch.randn(1, spec.in_channels, s, s)
    t = (torch.rand(1, 1, s, s) < 0.25).float()

    def precision():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16)

    def train_step():
        opt.zero_grad(set_to_none=True)
        with precision():
            loss = loss_fn(model(x), t)
        loss.float().backward()
        opt.step()
        return loss.item()

    def infer():
        with torch.no_grad(), precision():
            return torch.sigmoid(model(x).float())

    print(f"params {E.count_params(model)}", flush=True)
    print(f"mkldnn_available {int(torch.backends.mkldnn.is_available())}")
    print(f"threads {torch.get_num_threads()}")
    print(f"precision {'bf16-autocast' if args.bf16 else 'f32'}")
    print(f"import_rss_mb {import_rss:.1f}")
    model.eval()
    with precision():  # the kernels of the precision being timed
        print(f"conv_backend {conv_backend(model, x)}")
    gflop = conv_flops(model, x) / 1e9
    print(f"conv_gflop_forward {gflop:.3f}", flush=True)

    model.train()
    for _ in range(args.warmup):
        train_step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = train_step()
        times.append(time.perf_counter() - t0)
    if loss != loss:
        print("torch_bench: the loss became NaN", file=sys.stderr)
        return 1
    train_med = statistics.median(times)

    model.eval()
    for _ in range(args.warmup):
        infer()
    itimes = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        infer()
        itimes.append(time.perf_counter() - t0)

    print(f"train_step_s_median {train_med:.4f}")
    print(f"infer_s_median {statistics.median(itimes):.4f}")
    print(f"peak_rss_mb {rss_mb():.1f}")
    print(f"train_gflops {3 * gflop / train_med:.2f}")
    print(f"train_step_s_all {','.join(f'{v:.4f}' for v in times)}")
    print(f"infer_s_all {','.join(f'{v:.4f}' for v in itimes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
