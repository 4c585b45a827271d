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
//   OMP_NUM_THREADS=2 /tmp/onednn_conv_bench CIN COUT SIZE K f32|bf16
// e.g. `32 32 512 3 bf16` is the 3×3 convolution after the first block at full resolution;
// compare with `build/tests/layers/bench-layers` (the engine's own per-layer figures).
// Prints forward, backward-data and backward-weights GFLOP/s and the kernel oneDNN chose.
#include <dnnl.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
using namespace dnnl;
using tag = memory::format_tag; using dt = memory::data_type;
static double now(){return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();}
int main(int argc,char**argv){
  int C=atoi(argv[1]),K=atoi(argv[2]),H=atoi(argv[3]),R=atoi(argv[4]); dt d = argv[5][0]=='b'? dt::bf16: dt::f32;
  engine eng(engine::kind::cpu,0); stream s(eng);
  memory::dims src{1,C,H,H}, wei{K,C,R,R}, dst{1,K,H,H}, st{1,1}, pad{R/2,R/2};
  auto sm=memory::desc(src,d,tag::any), wm=memory::desc(wei,d,tag::any), dm=memory::desc(dst,dt::f32,tag::any);
  auto dm_b=memory::desc(dst,d,tag::any);
  auto fpd=convolution_forward::primitive_desc(convolution_forward::desc(prop_kind::forward_training,algorithm::convolution_direct,sm,wm,dm_b,st,pad,pad),eng);
  auto bdpd=convolution_backward_data::primitive_desc(convolution_backward_data::desc(algorithm::convolution_direct,sm,wm,dm_b,st,pad,pad),eng,fpd);
  auto bwpd=convolution_backward_weights::primitive_desc(convolution_backward_weights::desc(algorithm::convolution_direct,sm,memory::desc(wei,dt::f32,tag::any),dm_b,st,pad,pad),eng,fpd);
  memory S(fpd.src_desc(),eng),W(fpd.weights_desc(),eng),D(fpd.dst_desc(),eng),DS(bdpd.diff_src_desc(),eng),DW(bwpd.diff_weights_desc(),eng),DD(bwpd.diff_dst_desc(),eng);
  convolution_forward f(fpd); convolution_backward_data bd(bdpd); convolution_backward_weights bw(bwpd);
  double flops=2.0*C*K*R*R*H*H;
  for(int rep=0;rep<2;rep++){
  double t0=now(); int it=5;
  for(int i=0;i<it;i++) f.execute(s,{{DNNL_ARG_SRC,S},{DNNL_ARG_WEIGHTS,W},{DNNL_ARG_DST,D}}); s.wait(); double t1=now();
  for(int i=0;i<it;i++) bd.execute(s,{{DNNL_ARG_DIFF_DST,DD},{DNNL_ARG_WEIGHTS,W},{DNNL_ARG_DIFF_SRC,DS}}); s.wait(); double t2=now();
  for(int i=0;i<it;i++) bw.execute(s,{{DNNL_ARG_SRC,S},{DNNL_ARG_DIFF_DST,DD},{DNNL_ARG_DIFF_WEIGHTS,DW}}); s.wait(); double t3=now();
  printf("%s C%d K%d H%d R%d fwd %.1f bwd_d %.1f bwd_w %.1f GFLOP/s impl %s\n",argv[5],C,K,H,R,flops*it/(t1-t0)/1e9,flops*it/(t2-t1)/1e9,flops*it/(t3-t2)/1e9,fpd.impl_info_str());
  }
}
