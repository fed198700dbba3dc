// The linear layer's three products (Y = X·Wᵀ, dX = dY·W, dW = dYᵀ·X) per shape on the three paths tsp has:
// OpenBLAS cblas_sgemm, oneDNN fp32, and oneDNN bf16 inputs with fp32 accumulation and output — the last
// also with the conversion of both fp32 inputs to bf16 counted. All in this one process, best of several
// repetitions, as ratios to cblas_sgemm on the same shape: the figure behind which library runs which product
// (docs/performance.md, "Matrix products").
//
// Usage: bench_products [tokens, default 4096] [h ...] (default h: 128 512 1024); shapes h->h, h->4h, 4h->h.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "bench_util.h"
#include "kernels/bf16.h"
#include "kernels/onednn_matmul.h"

namespace {

struct Product {
  const char* name;
  bool ta, tb;
  int64_t m, n, k;  // C[m,n] = op(A)[m,k] op(B)[k,n]
};

}  // namespace

int main(int argc, char** argv) {
  tsp::bench::set_up_process(argv);
  const int64_t tokens = argc > 1 ? std::atoll(argv[1]) : 4096;
  const std::vector<int64_t> hs = tsp::bench::hidden_sizes(argc, argv, 2);
  std::printf("%-22s %-9s %8s %8s %8s | %7s %7s %9s | %s\n", "shape (tokens=N)", "product", "sgemm",
              "dnn f32", "dnn bf16", "f32/sg", "bf16/sg", "+convert", "bf16 kernel");
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  double log_f32 = 0, log_bf16 = 0, log_conv = 0;
  int count = 0;
  for (int64_t h : hs)
    for (auto [in, out] : {std::pair{h, h}, std::pair{h, 4 * h}, std::pair{4 * h, h}}) {
      const int64_t N = tokens;
      // X[N,in], W[out,in], Y/dY[N,out]: the forward, the backward to the input, the backward to the weight.
      const Product products[] = {{"Y=XWt", false, true, N, out, in},
                                  {"dX=dYW", false, false, N, in, out},
                                  {"dW=dYtX", true, false, out, in, N}};
      for (const Product& p : products) {
        const int64_t lda = p.ta ? p.m : p.k, ldb = p.tb ? p.k : p.n;
        std::vector<float> a(size_t(p.m * p.k)), b(size_t(p.k * p.n)), c(size_t(p.m * p.n));
        for (float& x : a) x = dist(rng);
        for (float& x : b) x = dist(rng);
        std::vector<uint16_t> ah(a.size()), bh(b.size());
        tsp::kernels::to_bf16(a.data(), int64_t(a.size()), ah.data());
        tsp::kernels::to_bf16(b.data(), int64_t(b.size()), bh.data());
        const double sg = tsp::bench::best_seconds([&] {
          cblas_sgemm(CblasRowMajor, p.ta ? CblasTrans : CblasNoTrans, p.tb ? CblasTrans : CblasNoTrans,
                      int(p.m), int(p.n), int(p.k), 1.f, a.data(), int(lda), b.data(), int(ldb), 0.f,
                      c.data(), int(p.n));
        });
        const double f32 = tsp::bench::best_seconds([&] {
          tsp::kernels::onednn::matmul(p.ta, p.tb, p.m, p.n, p.k, 1.f, a.data(), lda, b.data(), ldb, 0.f,
                                       c.data(), p.n);
        });
        // Without a bf16 product on this CPU (oneDNN 2.6 needs AVX-512) its columns are NaN ("nan" printed).
        const bool has_bf16 = tsp::kernels::onednn::bf16_supported();
        const double bf = !has_bf16 ? NAN : tsp::bench::best_seconds([&] {
          tsp::kernels::onednn::matmul(p.ta, p.tb, p.m, p.n, p.k, 1.f, ah.data(), lda, bh.data(), ldb, 0.f,
                                       c.data(), p.n);
        });
        const double conv = !has_bf16 ? NAN : tsp::bench::best_seconds([&] {
          tsp::kernels::to_bf16(a.data(), int64_t(a.size()), ah.data());
          tsp::kernels::to_bf16(b.data(), int64_t(b.size()), bh.data());
        });
        const double gf = 2.0 * double(p.m) * double(p.n) * double(p.k) * 1e-9;
        char shape[64];
        std::snprintf(shape, sizeof shape, "h %lld: %lld->%lld", (long long)h, (long long)in, (long long)out);
        std::printf("%-22s %-9s %8.1f %8.1f %8.1f | %6.2fx %6.2fx %8.2fx | %s\n", shape, p.name, gf / sg,
                    gf / f32, gf / bf, sg / f32, sg / bf, sg / (bf + conv),
                    tsp::kernels::onednn::implementation(true, p.m, p.n, p.k).c_str());
        log_f32 += std::log(sg / f32);
        log_bf16 += std::log(sg / bf);
        log_conv += std::log(sg / (bf + conv));
        ++count;
      }
    }
  std::printf(
      "geometric mean over %d products (GFLOP/s columns; ratios to cblas_sgemm): oneDNN f32 %.2fx, "
      "oneDNN bf16 %.2fx, bf16 with both conversions %.2fx\n",
      count, std::exp(log_f32 / count), std::exp(log_bf16 / count), std::exp(log_conv / count));
  return 0;
}
