// The linear layer under --matmul-precision (kernels/matmul_precision.h): bf16 products held to the bound of
// their rounding against fp64, fp32 products untouched by the setting, and the parser's refusals.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/check.h"
#include "kernel_test_util.h"
#include "kernels/bf16.h"
#include "kernels/frozen_weights.h"
#include "kernels/gemm.h"
#include "kernels/matmul_precision.h"
#include "kernels/onednn_matmul.h"
#include "kernels/product_paths.h"

namespace tsp::kernels {
namespace {

// y = x wᵀ (+ y), dx += dy w, dw += dyᵀ x in fp64 from the fp32 inputs, with the sums of |terms| that bound
// the error of each element.
struct Reference {
  std::vector<double> y, dx, dw, abs_y, abs_dx, abs_dw;
};

Reference reference(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& dy,
                    const std::vector<float>& y0, const std::vector<float>& dx0,
                    const std::vector<float>& dw0, int64_t n, int64_t in, int64_t out) {
  Reference r{std::vector<double>(y0.begin(), y0.end()),
              std::vector<double>(dx0.begin(), dx0.end()),
              std::vector<double>(dw0.begin(), dw0.end()),
              std::vector<double>(y0.size()),
              std::vector<double>(dx0.size()),
              std::vector<double>(dw0.size())};
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < out; ++o)
      for (int64_t c = 0; c < in; ++c) {
        const double xw = double(x[i * in + c]) * w[o * in + c];
        r.y[i * out + o] += xw;
        r.abs_y[i * out + o] += std::fabs(xw);
        const double dyw = double(dy[i * out + o]) * w[o * in + c];
        r.dx[i * in + c] += dyw;
        r.abs_dx[i * in + c] += std::fabs(dyw);
        const double dyx = double(dy[i * out + o]) * x[i * in + c];
        r.dw[o * in + c] += dyx;
        r.abs_dw[o * in + c] += std::fabs(dyx);
      }
  return r;
}

// Each product rounds both operands to bf16 (relative error u = 2^-8 each, so 2u + u² per term) and sums k
// terms in fp32 ((k+1)·u32 with u32 = 2^-24, the +1 for the accumulation into a non-zero output):
//   |got - exact| <= (2u + u² + (k+1)·u32) · Σ|terms| + u32 · |exact|.
void expect_within_bf16_bound(const std::vector<float>& got, const std::vector<double>& exact,
                              const std::vector<double>& abs_terms, int64_t k, const char* what) {
  const double u = 0x1p-8, u32 = 0x1p-24;
  for (size_t j = 0; j < got.size(); ++j)
    ASSERT_LE(std::fabs(got[j] - exact[j]),
              (2 * u + u * u + (k + 1) * u32) * abs_terms[j] + u32 * std::fabs(exact[j]))
        << what << " element " << j;
}

TEST(MatmulPrecision, Bf16LinearLayerWithinTheBoundOfItsRounding) {
  if (!onednn::bf16_supported()) GTEST_SKIP() << "oneDNN has no bf16 product on " << onednn::cpu_isa();
  std::mt19937_64 rng(5);
  for (auto [n, in, out] : {std::tuple<int64_t, int64_t, int64_t>{7, 33, 12}, {64, 128, 96}}) {
    const auto x = test::random_vector<float>(n * in, rng), w = test::random_vector<float>(out * in, rng),
               dy = test::random_vector<float>(n * out, rng), y0 = test::random_vector<float>(n * out, rng),
               dx0 = test::random_vector<float>(n * in, rng), dw0 = test::random_vector<float>(out * in, rng);
    const Reference r = reference(x, w, dy, y0, dx0, dw0, n, in, out);
    std::vector<float> y = y0, dx = dx0, dw = dw0, y_fp32 = y0;
    {
      ScopedMatmulPrecision bf16(MatmulPrecision::bf16);
      linear_forward(y.data(), x.data(), w.data(), n, in, out, /*accumulate=*/true);
      linear_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), n, in, out);
    }
    expect_within_bf16_bound(y, r.y, r.abs_y, in, "y");
    expect_within_bf16_bound(dx, r.dx, r.abs_dx, out, "dx");
    expect_within_bf16_bound(dw, r.dw, r.abs_dw, n, "dw");
    // The setting really changes the products: fp32 is far closer to fp64 than the bf16 bound allows.
    linear_forward(y_fp32.data(), x.data(), w.data(), n, in, out, true);
    double e_bf16 = 0, e_fp32 = 0, ref = 0;
    for (size_t j = 0; j < y.size(); ++j) {
      e_bf16 += (y[j] - r.y[j]) * (y[j] - r.y[j]);
      e_fp32 += (y_fp32[j] - r.y[j]) * (y_fp32[j] - r.y[j]);
      ref += r.y[j] * r.y[j];
    }
    EXPECT_GT(std::sqrt(e_bf16 / ref), 1e-4) << "bf16 products look like fp32 ones";
    EXPECT_LT(std::sqrt(e_fp32 / ref), 1e-5);
  }
}

TEST(MatmulPrecision, Fp32AndFp64AreUntouchedByTheSetting) {
  std::mt19937_64 rng(6);
  const int64_t n = 9, in = 17, out = 11;
  const auto x = test::random_vector<float>(n * in, rng), w = test::random_vector<float>(out * in, rng);
  std::vector<float> want(size_t(n * out)), got(size_t(n * out));
  gemm<float>(false, true, n, out, in, 1.0f, x.data(), in, w.data(), in, 0.0f, want.data(), out);
  linear_forward(got.data(), x.data(), w.data(), n, in, out);
  EXPECT_EQ(got, want) << "fp32 (the default) is cblas_sgemm";
  if (!onednn::bf16_supported()) return;
  ScopedMatmulPrecision bf16(MatmulPrecision::bf16);
  const std::vector<double> xd(x.begin(), x.end()), wd(w.begin(), w.end());
  std::vector<double> want_d(size_t(n * out)), got_d(size_t(n * out));
  gemm<double>(false, true, n, out, in, 1.0, xd.data(), in, wd.data(), in, 0.0, want_d.data(), out);
  linear_forward(got_d.data(), xd.data(), wd.data(), n, in, out);
  EXPECT_EQ(got_d, want_d) << "fp64 is the reference and never rounds to bf16";
}

TEST(MatmulPrecision, OutputRowStrideFillsOnlyItsColumns) {
  // A vocabulary shard writes its columns of the wider logits (ldy): the same values as a contiguous output,
  // and nothing outside them, in fp32 and in bf16.
  std::mt19937_64 rng(7);
  const int64_t n = 5, in = 24, out = 7, ldy = 19, col0 = 4;
  const auto x = test::random_vector<float>(n * in, rng), w = test::random_vector<float>(out * in, rng);
  for (MatmulPrecision p : {MatmulPrecision::fp32, MatmulPrecision::bf16}) {
    if (p == MatmulPrecision::bf16 && !onednn::bf16_supported()) continue;
    ScopedMatmulPrecision precision(p);
    std::vector<float> dense(size_t(n * out)), wide(size_t(n * ldy), -7.0f);
    linear_forward(dense.data(), x.data(), w.data(), n, in, out);
    linear_forward(wide.data() + col0, x.data(), w.data(), n, in, out, false, ldy);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < ldy; ++j) {
        const float got = wide[size_t(i * ldy + j)];
        if (j < col0 || j >= col0 + out) {
          EXPECT_EQ(got, -7.0f) << to_string(p) << " row " << i << " column " << j << " is not the shard's";
          continue;
        }
        // fp32 is the same cblas_sgemm call; bf16 runs another oneDNN kernel for a strided output (gemm:jit,
        // not brgemm), which sums the same bf16 products in another order: within 2·(in+1)·u32·Σ|terms|.
        double terms = 0;
        for (int64_t c = 0; c < in; ++c) terms += std::fabs(double(x[i * in + c]) * w[(j - col0) * in + c]);
        const double tol =
            p == MatmulPrecision::fp32 ? 0.0 : 2.0 * double(in + 1) * 0x1p-24 * (1 + 0x1p-7) * terms;
        EXPECT_NEAR(got, dense[size_t(i * out + j - col0)], tol)
            << to_string(p) << " row " << i << " column " << j;
      }
  }
}

TEST(MatmulPrecision, ParsesTheAllowedNamesAndRefusesOthers) {
  EXPECT_EQ(parse_matmul_precision("fp32"), MatmulPrecision::fp32);
  EXPECT_EQ(to_string(MatmulPrecision::bf16), "bf16");
  try {
    parse_matmul_precision("fp16");
    FAIL() << "fp16 accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("fp16 is not supported (allowed: fp32, bf16, auto)"),
              std::string::npos)
        << e.what();
  }
  if (onednn::bf16_supported()) {
    EXPECT_EQ(parse_matmul_precision("bf16"), MatmulPrecision::bf16);
  } else {
    EXPECT_THROW(parse_matmul_precision("bf16"), UsageError);
  }
}

// kernels::onednn runs a product below its one-thread bound on the calling thread (a decode step's few rows:
// waking the OpenMP team costs more than the product): the result is the team's within fp32 rounding, and
// the caller's OpenMP thread count is left as it was.
TEST(MatmulPrecision, SmallProductsRunOnTheCallingThread) {
  if (!onednn::bf16_supported()) GTEST_SKIP() << "oneDNN has no bf16 product on this CPU";
  const int64_t m = 8, n = 48, k = 64;  // 2mnk = 49152 FLOPs, below the default bound
  ASSERT_LT(2.0 * m * n * k, onednn::kDefaultOneThreadFlops);
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<uint16_t> a(size_t(m * k)), b(size_t(k * n));
  for (auto& v : a) v = float_to_bf16(dist(rng));
  for (auto& v : b) v = float_to_bf16(dist(rng));
  std::vector<float> one(size_t(m * n)), team(size_t(m * n));
  const int threads = omp_get_max_threads();
  onednn::matmul(false, false, m, n, k, 1.f, a.data(), k, b.data(), n, 0.f, one.data(), n);
  EXPECT_EQ(omp_get_max_threads(), threads);
  const double prev = onednn::set_one_thread_flops(0);  // every product on the team
  EXPECT_EQ(prev, onednn::kDefaultOneThreadFlops);
  // The primitive for the team is a new one: the first call's was created for one thread.
  const size_t cached = onednn::cached_primitives();
  onednn::matmul(false, false, m, n, k, 1.f, a.data(), k, b.data(), n, 0.f, team.data(), n);
  EXPECT_EQ(onednn::cached_primitives(), cached + (threads > 1 ? 1 : 0));
  onednn::set_one_thread_flops(prev);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_NEAR(one[i], team[i], 1e-5 * (1.0 + std::abs(team[i]))) << i;
}

// --matmul-precision auto (kernels/product_paths.h): each product takes the path its table entry names, with
// exactly that path's bits; a restored table decides without measuring.

struct LayerInputs {
  int64_t n, in, out;
  std::vector<float> x, w, dy, y0, dx0, dw0;
};

LayerInputs layer_inputs(int64_t n, int64_t in, int64_t out, uint64_t seed) {
  std::mt19937_64 rng(seed);
  LayerInputs l{n, in, out, {}, {}, {}, {}, {}, {}};
  l.x = test::random_vector<float>(n * in, rng);
  l.w = test::random_vector<float>(out * in, rng);
  l.dy = test::random_vector<float>(n * out, rng);
  l.y0 = test::random_vector<float>(n * out, rng);
  l.dx0 = test::random_vector<float>(n * in, rng);
  l.dw0 = test::random_vector<float>(out * in, rng);
  return l;
}

struct LayerOutputs {
  std::vector<float> y, dx, dw;
};

// y = y0 + x wᵀ, dx = dx0 + dy w, dw = dw0 + dyᵀ x under precision p.
LayerOutputs run_layer(MatmulPrecision p, const LayerInputs& l, WeightRef<float> w) {
  ScopedMatmulPrecision precision(p);
  LayerOutputs o{l.y0, l.dx0, l.dw0};
  linear_forward(o.y.data(), l.x.data(), w, l.n, l.in, l.out, /*accumulate=*/true);
  linear_backward(o.dx.data(), o.dw.data(), l.dy.data(), l.x.data(), w, l.n, l.in, l.out);
  return o;
}

// The path the table holds for a key of a product of n rows, "" when it holds none.
std::string table_path(const char* product, const char* weight, int64_t out, int64_t in, int64_t ld_out,
                       int64_t n) {
  const nlohmann::json table = product_paths_json();
  for (const nlohmann::json& e : table["products"])
    if (e["product"] == product && e["weight"] == weight && e["out"] == out && e["in"] == in &&
        e["ld_out"] == ld_out && e["tokens"] == product_token_bucket(n))
      return e["path"].get<std::string>();
  return "";
}

MatmulPrecision precision_of(const std::string& path) {
  return path == "bf16" ? MatmulPrecision::bf16 : MatmulPrecision::fp32;
}

// A table naming `path` for the three products of l's shape, with a weight held in fp32 and in bf16.
nlohmann::json table_for(const LayerInputs& l, const char* path) {
  nlohmann::json products = nlohmann::json::array();
  const int64_t tokens = product_token_bucket(l.n);
  for (const char* weight : {"fp32", "bf16"}) {
    products.push_back({{"product", "forward"},
                        {"weight", weight},
                        {"out", l.out},
                        {"in", l.in},
                        {"ld_out", l.out},
                        {"tokens", tokens},
                        {"path", path}});
    products.push_back({{"product", "dx"},
                        {"weight", weight},
                        {"out", l.out},
                        {"in", l.in},
                        {"ld_out", l.in},
                        {"tokens", tokens},
                        {"path", path}});
  }
  products.push_back({{"product", "dw"},
                      {"weight", "none"},
                      {"out", l.out},
                      {"in", l.in},
                      {"ld_out", l.in},
                      {"tokens", tokens},
                      {"path", path}});
  return {{"products", products}};
}

TEST(MatmulPrecisionAuto, ParsesAuto) {
  EXPECT_EQ(parse_matmul_precision("auto"), MatmulPrecision::automatic);
  EXPECT_EQ(to_string(MatmulPrecision::automatic), "auto");
  EXPECT_EQ(to_string(MatmulPrecision::fp32), "fp32");
}

TEST(MatmulPrecisionAuto, EachProductHasTheBitsOfThePathItsTableNames) {
  reset_product_paths();
  for (auto [n, in, out] :
       {std::tuple<int64_t, int64_t, int64_t>{7, 33, 12}, {64, 128, 96}, {700, 96, 160}}) {
    const LayerInputs l = layer_inputs(n, in, out, uint64_t(n + in + out));
    const LayerOutputs got = run_layer(MatmulPrecision::automatic, l, l.w.data());
    if (!onednn::bf16_supported()) {
      // No bf16 product on this CPU: auto is fp32, measuring nothing.
      const LayerOutputs fp32 = run_layer(MatmulPrecision::fp32, l, l.w.data());
      EXPECT_EQ(got.y, fp32.y);
      EXPECT_EQ(got.dx, fp32.dx);
      EXPECT_EQ(got.dw, fp32.dw);
      EXPECT_EQ(product_path_measurements(), 0);
      continue;
    }
    const std::string fwd = table_path("forward", "fp32", out, in, out, n),
                      dx = table_path("dx", "fp32", out, in, in, n),
                      dw = table_path("dw", "none", out, in, in, n);
    ASSERT_FALSE(fwd.empty() || dx.empty() || dw.empty()) << product_paths_json().dump();
    EXPECT_EQ(got.y, run_layer(precision_of(fwd), l, l.w.data()).y) << "forward took " << fwd;
    EXPECT_EQ(got.dx, run_layer(precision_of(dx), l, l.w.data()).dx) << "dx took " << dx;
    EXPECT_EQ(got.dw, run_layer(precision_of(dw), l, l.w.data()).dw) << "dw took " << dw;
    // Once made, the choice is the table's: the same call again gives the same bits, measuring nothing; and
    // one backward product alone takes the same path as with the other.
    const int64_t measured = product_path_measurements();
    const LayerOutputs again = run_layer(MatmulPrecision::automatic, l, l.w.data());
    EXPECT_EQ(again.y, got.y);
    EXPECT_EQ(again.dx, got.dx);
    EXPECT_EQ(again.dw, got.dw);
    std::vector<float> dw_alone = l.dw0;
    {
      ScopedMatmulPrecision automatic(MatmulPrecision::automatic);
      linear_backward<float>(nullptr, dw_alone.data(), l.dy.data(), l.x.data(), l.w.data(), n, in, out);
    }
    EXPECT_EQ(dw_alone, got.dw);
    EXPECT_EQ(product_path_measurements(), measured);
  }
  reset_product_paths();
}

TEST(MatmulPrecisionAuto, ARestoredTableChoosesWithoutMeasuring) {
  if (!onednn::bf16_supported()) GTEST_SKIP() << "oneDNN has no bf16 product on " << onednn::cpu_isa();
  const LayerInputs l = layer_inputs(40, 48, 24, 21);
  // The weight held in bf16 (a shard from a bf16 wire, or a registered copy); its fp32 path is sgemm on it
  // widened.
  std::vector<uint16_t> w16(l.w.size());
  to_bf16(l.w.data(), int64_t(l.w.size()), w16.data());
  std::vector<float> w16_wide(l.w.size());
  from_bf16(w16.data(), int64_t(w16.size()), w16_wide.data());
  for (const char* path : {"fp32", "bf16"}) {
    reset_product_paths();
    set_product_paths(table_for(l, path));
    const int64_t measured = product_path_measurements();
    const MatmulPrecision p = precision_of(path);
    // fp32: exactly cblas_sgemm (--matmul-precision fp32); bf16: exactly --matmul-precision bf16.
    const LayerOutputs got = run_layer(MatmulPrecision::automatic, l, l.w.data()),
                       want = run_layer(p, l, l.w.data());
    EXPECT_EQ(got.y, want.y) << path;
    EXPECT_EQ(got.dx, want.dx) << path;
    EXPECT_EQ(got.dw, want.dw) << path;
    const LayerOutputs want16 = p == MatmulPrecision::bf16 ? run_layer(p, l, WeightRef<float>(w16.data()))
                                                           : run_layer(p, l, w16_wide.data());
    const LayerOutputs got16 = run_layer(MatmulPrecision::automatic, l, WeightRef<float>(w16.data()));
    EXPECT_EQ(got16.y, want16.y) << path << ", bf16 weight";
    EXPECT_EQ(got16.dx, want16.dx) << path << ", bf16 weight";
    EXPECT_EQ(got16.dw, want16.dw) << path << ", bf16 weight";
    {
      FrozenBf16Weights frozen;
      frozen.add(l.w.data(), int64_t(l.w.size()));
      const LayerOutputs got_frozen = run_layer(MatmulPrecision::automatic, l, l.w.data());
      EXPECT_EQ(got_frozen.y, want16.y) << path << ", registered bf16 copy";
      EXPECT_EQ(got_frozen.dx, want16.dx) << path << ", registered bf16 copy";
      EXPECT_EQ(got_frozen.dw, want16.dw) << path << ", registered bf16 copy";
    }
    EXPECT_EQ(product_path_measurements(), measured) << "a restored key was measured";
    // Saved and restored, the table is the same table.
    const nlohmann::json saved = product_paths_json();
    reset_product_paths();
    set_product_paths(saved);
    EXPECT_EQ(product_paths_json(), saved);
  }
  reset_product_paths();
}

TEST(MatmulPrecisionAuto, MeasuresEveryTokenBucketOfAShapeOnce) {
  EXPECT_EQ(product_token_bucket(1), 1);
  EXPECT_EQ(product_token_bucket(3), 4);
  EXPECT_EQ(product_token_bucket(512), 512);
  EXPECT_EQ(product_token_bucket(513), 512);
  EXPECT_EQ(product_token_bucket(4096), 512);
  if (!onednn::bf16_supported()) GTEST_SKIP() << "oneDNN has no bf16 product on " << onednn::cpu_isa();
  reset_product_paths();
  const int64_t in = 40, out = 24, measured = product_path_measurements();
  std::mt19937_64 rng(31);
  const auto w = test::random_vector<float>(out * in, rng), x = test::random_vector<float>(2000 * in, rng);
  std::vector<float> y(size_t(2000 * out));
  ScopedMatmulPrecision automatic(MatmulPrecision::automatic);
  linear_forward(y.data(), x.data(), w.data(), 3, in, out);
  // The first product of the shape measured all ten buckets: a run's table is whole after its first step.
  EXPECT_EQ(product_path_measurements(), measured + 10);
  const nlohmann::json table = product_paths_json();
  ASSERT_EQ(table["products"].size(), 10u) << table.dump();
  for (size_t i = 0; i < 10; ++i) {
    const nlohmann::json& e = table["products"][i];
    EXPECT_EQ(e["tokens"], int64_t(1) << i);
    EXPECT_GT(e["fp32_seconds"].get<double>(), 0);
    EXPECT_GT(e["bf16_seconds"].get<double>(), 0);
    EXPECT_EQ(e["path"] == "bf16", e["bf16_seconds"].get<double>() < e["fp32_seconds"].get<double>()) << e;
  }
  for (int64_t n : {300, 2000}) linear_forward(y.data(), x.data(), w.data(), n, in, out);
  EXPECT_EQ(product_path_measurements(), measured + 10);
  EXPECT_EQ(product_paths_summary().rfind("auto: ", 0), 0u);
  EXPECT_NE(product_paths_summary().find(" of 10 products bf16 (forward "), std::string::npos)
      << product_paths_summary();
  reset_product_paths();
}

TEST(MatmulPrecisionAuto, ThreadsMeetingANewShapeTogetherMeasureItOnce) {
  if (!onednn::bf16_supported()) GTEST_SKIP() << "oneDNN has no bf16 product on " << onednn::cpu_isa();
  reset_product_paths();
  const LayerInputs l = layer_inputs(33, 56, 20, 41);
  const int64_t measured = product_path_measurements();
  std::vector<LayerOutputs> got(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t)
    threads.emplace_back([&, t] { got[t] = run_layer(MatmulPrecision::automatic, l, l.w.data()); });
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(product_path_measurements(), measured + 30) << "forward, dx and dw: ten buckets each";
  for (size_t t = 1; t < got.size(); ++t) {
    EXPECT_EQ(got[t].y, got[0].y) << "thread " << t;
    EXPECT_EQ(got[t].dx, got[0].dx) << "thread " << t;
    EXPECT_EQ(got[t].dw, got[0].dw) << "thread " << t;
  }
  reset_product_paths();
}

TEST(MatmulPrecisionAuto, RefusesAMalformedTable) {
  const LayerInputs l = layer_inputs(4, 8, 6, 51);
  const nlohmann::json good = table_for(l, "fp32");
  EXPECT_NO_THROW(set_product_paths(good));
  const nlohmann::json held = product_paths_json();
  const auto with = [&](auto&& edit) {
    nlohmann::json t = good;
    edit(t["products"]);
    return t;
  };
  EXPECT_THROW(set_product_paths(nlohmann::json::array()), UsageError);
  EXPECT_THROW(set_product_paths(with([](nlohmann::json& p) { p[0]["tokens"] = 3; })), UsageError);
  EXPECT_THROW(set_product_paths(with([](nlohmann::json& p) { p[0]["tokens"] = 1024; })), UsageError);
  EXPECT_THROW(set_product_paths(with([](nlohmann::json& p) { p[0]["product"] = "dy"; })), UsageError);
  EXPECT_THROW(set_product_paths(with([](nlohmann::json& p) { p[0]["path"] = "fp16"; })), UsageError);
  EXPECT_THROW(set_product_paths(with([](nlohmann::json& p) { p[0].erase("out"); })), UsageError);
  EXPECT_THROW(set_product_paths(with([](nlohmann::json& p) { p[1]["ld_out"] = 999; })), UsageError);
  EXPECT_THROW(set_product_paths(with([](nlohmann::json& p) { p.back()["weight"] = "fp32"; })), UsageError);
  EXPECT_THROW(set_product_paths(with([](nlohmann::json& p) { p.push_back(p[0]); })), UsageError);
  if (!onednn::bf16_supported()) {
    EXPECT_THROW(set_product_paths(table_for(l, "bf16")), UsageError);
  }
  // A refused table leaves the one before it.
  EXPECT_EQ(product_paths_json(), held);
  reset_product_paths();
}

}  // namespace
}  // namespace tsp::kernels
