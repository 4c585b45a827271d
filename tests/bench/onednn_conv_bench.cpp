// onednn_conv_bench.cpp — how fast oneDNN runs one convolution of this network's shapes on
// this CPU, in float32 and in bfloat16 (a benchmark program, not a test; not built by meson).
//
// Why it is here: the engine's convolutions (im2col + OpenBLAS sgemm, NCHW) run at about
// 110 GFLOP/s per layer on this project's machine, and `emseg bench` had been read as
// "near the machine's limit" because OpenBLAS's square sgemm tops out near 200 GFLOP/s.
// This program measures what a direct JIT convolution in a blocked layout reaches on the
// same cores, in float32 and with bfloat16 inputs (AVX512-BF16, float32 accumulation), to
// size the speed lever named in issue 5. Layout reorders are outside the timed loops.
//
// Build and run by hand (needs Debian's libdnnl-dev, oneDNN 2.6; not a project dependency):
//   g++ -O2 tests/bench/onednn_conv_bench.cpp -o /tmp/onednn_conv_bench -ldnnl
//   OMP_NUM_THREADS=2 /tmp/onednn_conv_bench CIN COUT SIZE K f32|bf16 [blocked|nchw]
// e.g. `32 32 512 3 bf16` is the 3×3 convolution after the first block at full resolution;
// compare with `build/tests/layers/bench-layers` (the engine's own per-layer figures).
// `nchw` asks for plain NCHW activations, the engine's layout, instead of letting oneDNN
// choose its blocked one. Prints forward, backward-data and backward-weights GFLOP/s (best
// of 3 rounds of 5 calls each) and the kernel oneDNN chose.
#include <dnnl.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

static double
now()
{
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

// Small pseudo-random values through a float32 reorder, so timings never run on zero pages
// or denormals and the bfloat16 tensors hold rounded copies of ordinary numbers.
static void
fill(memory &m, engine &eng, stream &s, unsigned seed)
{
  memory::dims d = m.get_desc().dims();
  memory::desc flat(d, dt::f32, d.size() == 4 ? tag::abcd : tag::a);
  memory src(flat, eng);
  float *p = static_cast<float *>(src.get_data_handle());
  size_t n = flat.get_size() / sizeof(float);
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = ((seed >> 9) & 0xffff) / 65536.0f - 0.5f;
  }
  reorder(src, m).execute(s, src, m);
  s.wait();
}

int
main(int argc, char **argv)
{
  if (argc < 6 || (strcmp(argv[5], "f32") && strcmp(argv[5], "bf16"))) {
    fprintf(stderr, "usage: %s CIN COUT SIZE K f32|bf16 [blocked|nchw]\n", argv[0]);
    return 2;
  }
  const int c = atoi(argv[1]), k = atoi(argv[2]), h = atoi(argv[3]), r = atoi(argv[4]);
  const dt type = strcmp(argv[5], "bf16") ? dt::f32 : dt::bf16;
  const tag act = argc > 6 && !strcmp(argv[6], "nchw") ? tag::nchw : tag::any;
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  memory::dims src{1, c, h, h}, wei{k, c, r, r}, dst{1, k, h, h}, stride{1, 1},
      pad{r / 2, r / 2};
  memory::desc src_md(src, type, act), wei_md(wei, type, tag::any), dst_md(dst, type, act);
  // weight gradients in float32, as an optimizer would want them
  memory::desc dwei_md(wei, dt::f32, tag::any);
  auto fwd = convolution_forward::primitive_desc(
      convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct,
                                src_md, wei_md, dst_md, stride, pad, pad),
      eng);
  auto bwd_data = convolution_backward_data::primitive_desc(
      convolution_backward_data::desc(algorithm::convolution_direct, src_md, wei_md, dst_md,
                                      stride, pad, pad),
      eng, fwd);
  auto bwd_wei = convolution_backward_weights::primitive_desc(
      convolution_backward_weights::desc(algorithm::convolution_direct, src_md, dwei_md,
                                         dst_md, stride, pad, pad),
      eng, fwd);
  memory x(fwd.src_desc(), eng), w(fwd.weights_desc(), eng), y(fwd.dst_desc(), eng);
  memory dx(bwd_data.diff_src_desc(), eng), dy(bwd_wei.diff_dst_desc(), eng);
  memory dw(bwd_wei.diff_weights_desc(), eng);
  fill(x, eng, s, 1);
  fill(w, eng, s, 2);
  fill(dy, eng, s, 3);
  convolution_forward f(fwd);
  convolution_backward_data bd(bwd_data);
  convolution_backward_weights bw(bwd_wei);

  // The engine's tensors are float32 NCHW: a convolution in the blocked layout costs a
  // reorder of its input in and of its output back (and the same for backward's diff_dst in
  // and diff_src out). Timed here so the layout's gain can be weighed net of them.
  memory x_plain({src, dt::f32, tag::nchw}, eng), y_plain({dst, dt::f32, tag::nchw}, eng);
  fill(x_plain, eng, s, 4);
  reorder r_in(x_plain, x), r_out(y, y_plain);

  const double flops = 2.0 * c * k * r * r * h * h;
  const int calls = 5;
  double best[3] = {0, 0, 0}, reorder_ms[2] = {1e30, 1e30};
  for (int round = 0; round < 3; round++) {
    double t[4];
    t[0] = now();
    for (int i = 0; i < calls; i++)
      f.execute(s, {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, y}});
    s.wait();
    t[1] = now();
    for (int i = 0; i < calls; i++)
      bd.execute(s, {{DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DIFF_SRC, dx}});
    s.wait();
    t[2] = now();
    for (int i = 0; i < calls; i++)
      bw.execute(s, {{DNNL_ARG_SRC, x}, {DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_DIFF_WEIGHTS, dw}});
    s.wait();
    t[3] = now();
    for (int j = 0; j < 2; j++) {
      double t0 = now();
      for (int i = 0; i < calls; i++) {
        if (j == 0)
          r_in.execute(s, x_plain, x);
        else
          r_out.execute(s, y, y_plain);
      }
      s.wait();
      double ms = (now() - t0) / calls * 1e3;
      reorder_ms[j] = ms < reorder_ms[j] ? ms : reorder_ms[j];
    }
    for (int j = 0; j < 3; j++) {
      double g = flops * calls / (t[j + 1] - t[j]) / 1e9;
      best[j] = g > best[j] ? g : best[j];
    }
  }
  printf("%s %s cin %d cout %d size %d k %d  fwd %.1f  bwd_data %.1f  bwd_weights %.1f "
         "GFLOP/s  conv ms %.1f / %.1f / %.1f  reorder in %.2f ms, out %.2f ms  (%s)\n",
         argv[5], act == tag::nchw ? "nchw" : "blocked", c, k, h, r, best[0], best[1], best[2],
         flops / best[0] / 1e6, flops / best[1] / 1e6, flops / best[2] / 1e6, reorder_ms[0],
         reorder_ms[1], fwd.impl_info_str());
  return 0;
}
