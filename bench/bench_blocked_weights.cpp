// Does it pay to keep a linear layer's bf16 weight in oneDNN's blocked layout? The two products with a weight
// operand (Y = X·Wᵀ and dX = dY·W) on oneDNN bf16, once with the weight as tsp passes it today (a row-major
// bf16 matrix, transposed by strides) and once with the weight reordered beforehand into the layout the
// primitive asks for (format_tag::any: on AVX512-BF16 and AMX a VNNI-packed, blocked layout that the strided
// primitive otherwise builds in its scratchpad on every call). Also timed: what each way costs to prepare the
// weight from the fp32 master — today's rounding to bf16 (kernels::to_bf16), or a oneDNN reorder from fp32
// straight into the blocked bf16 layout. Training prepares the weight once per optimizer step; inference
// (decode, weights at rest) once at load, so there only the product counts. Best of several repetitions, all
// in this one process; docs/performance.md ("Blocked weights") quotes it.
//
// Usage: bench_blocked_weights [h ...] (default 128 512 1024); tokens N = 4096 (a training or prefill step)
// and N = 8 (a decode step of 8 sequences); shapes h->h, h->4h, 4h->h.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <vector>

#include "bench_util.h"
#include "kernels/bf16.h"
#include "kernels/onednn_matmul.h"

namespace {

using dnnl::memory;

memory::desc strided(memory::data_type dt, int64_t rows, int64_t cols, int64_t ld, bool transposed) {
  return memory::desc({rows, cols}, dt, transposed ? memory::dims{1, ld} : memory::dims{ld, 1});
}

// C[m,n] = A[m,k] · B[k,n] with B reordered once into the layout a format_tag::any primitive chose.
struct BlockedProduct {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::matmul prim;
  memory a, b_blocked, c, scratch;
  dnnl::reorder from_f32;  // the fp32 master (strided as B) straight into the blocked bf16 layout
  memory b_f32;
  std::vector<unsigned char> scratch_buf;

  BlockedProduct(int64_t m, int64_t n, int64_t k, bool trans_b, uint16_t* a16, float* b32, float* c32) {
    const auto bf16 = memory::data_type::bf16, f32 = memory::data_type::f32;
    const memory::desc a_md = strided(bf16, m, k, k, false);
    const memory::desc b_any({k, n}, bf16, memory::format_tag::any);
    const memory::desc c_md = strided(f32, m, n, n, false);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const auto pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_any, c_md), attr, eng);
    prim = dnnl::matmul(pd);
    a = memory(pd.src_desc(), eng, a16);
    b_blocked = memory(pd.weights_desc(), eng);
    c = memory(pd.dst_desc(), eng, c32);
    scratch_buf.resize(pd.scratchpad_desc().get_size() + 1);
    scratch = memory(pd.scratchpad_desc(), eng, scratch_buf.data());
    b_f32 = memory(strided(f32, k, n, trans_b ? k : n, trans_b), eng, b32);
    from_f32 = dnnl::reorder(b_f32, b_blocked);
    prepare();
  }
  void prepare() {
    from_f32.execute(strm, b_f32, b_blocked);
    strm.wait();
  }
  void run() {
    prim.execute(strm, {{DNNL_ARG_SRC, a},
                        {DNNL_ARG_WEIGHTS, b_blocked},
                        {DNNL_ARG_DST, c},
                        {DNNL_ARG_SCRATCHPAD, scratch}});
    strm.wait();
  }
  std::string layout() const {
    const memory::desc d = b_blocked.get_desc();
    return d.data.format_kind == dnnl_blocked && d.data.format_desc.blocking.inner_nblks > 0 ? "blocked"
                                                                                             : "plain";
  }
};

}  // namespace

int main(int argc, char** argv) {
  tsp::bench::set_up_process(argv);
  // Both ways on the OpenMP team, whatever the product's size: the blocked primitive below is oneDNN's own,
  // outside kernels::onednn's one-thread bound for small products (docs/performance.md, "Small products").
  tsp::kernels::onednn::set_one_thread_flops(0);
  const std::vector<int64_t> hs = tsp::bench::hidden_sizes(argc, argv, 1);
  if (!tsp::kernels::onednn::bf16_supported()) {
    std::printf("oneDNN has no bf16 product on this CPU: nothing to measure\n");
    return 0;
  }
  std::printf("%-24s %-7s %9s %9s %7s | %9s %9s | %8s | %s\n", "shape", "product", "strided", "blocked",
              "gain", "to_bf16", "reorder", "+prep", "weight layout");
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  double log_run[2] = {0, 0}, log_prep[2] = {0, 0};
  int count[2] = {0, 0};
  for (int64_t N : {int64_t(4096), int64_t(8)})
    for (int64_t h : hs)
      for (auto [in, out] : {std::pair{h, h}, std::pair{h, 4 * h}, std::pair{4 * h, h}}) {
        std::vector<float> w(size_t(out * in));
        for (float& x : w) x = dist(rng);
        std::vector<uint16_t> w16(w.size());
        tsp::kernels::to_bf16(w.data(), int64_t(w.size()), w16.data());
        // Y[N,out] = X[N,in]·Wᵀ (B = Wᵀ: W[out,in] read transposed), dX[N,in] = dY[N,out]·W.
        struct P {
          const char* name;
          int64_t n, k;
          bool trans_b;
        };
        for (const P& p : {P{"Y=XWt", out, in, true}, P{"dX=dYW", in, out, false}}) {
          std::vector<float> a(size_t(N * p.k)), c(size_t(N * p.n));
          for (float& x : a) x = dist(rng);
          std::vector<uint16_t> a16(a.size());
          tsp::kernels::to_bf16(a.data(), int64_t(a.size()), a16.data());
          const int64_t ldb = p.trans_b ? p.k : p.n;
          const double s_strided = tsp::bench::best_seconds(
              [&] {
                tsp::kernels::onednn::matmul(false, p.trans_b, N, p.n, p.k, 1.f, a16.data(), p.k, w16.data(),
                                             ldb, 0.f, c.data(), p.n);
              },
              3, 50);
          BlockedProduct bp(N, p.n, p.k, p.trans_b, a16.data(), w.data(), c.data());
          const double s_blocked = tsp::bench::best_seconds([&] { bp.run(); }, 3, 50);
          const double s_conv = tsp::bench::best_seconds(
              [&] { tsp::kernels::to_bf16(w.data(), int64_t(w.size()), w16.data()); }, 3, 50);
          const double s_reorder = tsp::bench::best_seconds([&] { bp.prepare(); }, 3, 50);
          char shape[64];
          std::snprintf(shape, sizeof shape, "N %lld, h %lld: %lld->%lld", (long long)N, (long long)h,
                        (long long)in, (long long)out);
          // +prep: the product and its weight's preparation, as a training step pays them (once each).
          const double prep_gain = (s_strided + s_conv) / (s_blocked + s_reorder);
          std::printf("%-24s %-7s %7.1fus %7.1fus %6.2fx | %7.1fus %7.1fus | %7.2fx | %s\n", shape, p.name,
                      s_strided * 1e6, s_blocked * 1e6, s_strided / s_blocked, s_conv * 1e6, s_reorder * 1e6,
                      prep_gain, bp.layout().c_str());
          const int i = N > 64 ? 0 : 1;
          log_run[i] += std::log(s_strided / s_blocked);
          log_prep[i] += std::log(prep_gain);
          ++count[i];
        }
      }
  for (int i = 0; i < 2; ++i)
    std::printf(
        "geometric mean, %s (%d products): product alone %.3fx, with the weight's preparation %.3fx\n",
        i == 0 ? "N = 4096" : "N = 8", count[i], std::exp(log_run[i] / count[i]),
        std::exp(log_prep[i] / count[i]));
  return 0;
}
