// AdamW against a scalar transcription of Loshchilov & Hutter's algorithm, decoupled weight decay, the
// gradient-norm helpers, clipping and the warm-up + cosine learning-rate schedule.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "core/check.h"
#include "kernel_test_util.h"
#include "kernels/adamw.h"
#include "kernels/bf16.h"

namespace tsp::kernels {
namespace {

using test::rel_error;

// One parameter, one step, straight from the paper (Algorithm 2 with the schedule multiplier folded into lr).
struct ScalarAdamW {
  double p, m = 0, v = 0;
  void step(double g, int64_t t, double lr, double wd, const AdamWHyper& hp) {
    m = hp.beta1 * m + (1 - hp.beta1) * g;
    v = hp.beta2 * v + (1 - hp.beta2) * g * g;
    const double m_hat = m / (1 - std::pow(hp.beta1, double(t)));
    const double v_hat = v / (1 - std::pow(hp.beta2, double(t)));
    p = p - lr * (m_hat / (std::sqrt(v_hat) + hp.eps)) - lr * wd * p;
  }
};

TEST(AdamW, MatchesScalarReferenceOverSeveralSteps) {
  const int64_t n = 37, steps = 6;
  const AdamWHyper hp{0.9, 0.95, 1e-8, 0.1};
  std::mt19937_64 rng(1);
  auto p = test::random_vector<double>(n, rng);
  std::vector<double> m(n), v(n);
  std::vector<ScalarAdamW> ref;
  for (double x : p) ref.push_back({x});
  for (int64_t t = 1; t <= steps; ++t) {
    const auto g = test::random_vector<double>(n, rng, -2, 2);
    const double lr = 1e-2 * double(t);  // changes every step, as under a schedule
    adamw_update(p.data(), g.data(), m.data(), v.data(), n, t, lr, hp.weight_decay, hp);
    for (int64_t i = 0; i < n; ++i) ref[i].step(g[i], t, lr, hp.weight_decay, hp);
  }
  std::vector<double> p_ref, m_ref, v_ref;
  for (const auto& r : ref) {
    p_ref.push_back(r.p);
    m_ref.push_back(r.m);
    v_ref.push_back(r.v);
  }
  EXPECT_LE(rel_error(p, p_ref), 1e-14);
  EXPECT_LE(rel_error(m, m_ref), 1e-14);
  EXPECT_LE(rel_error(v, v_ref), 1e-14);
}

TEST(AdamW, WeightDecayIsDecoupled) {
  const int64_t n = 10;
  const AdamWHyper hp{0.9, 0.95, 1e-8, 0.1};
  std::mt19937_64 rng(2);
  const auto p0 = test::random_vector<double>(n, rng);
  const auto g = test::random_vector<double>(n, rng);
  const double lr = 0.05;

  // With and without decay the moments are identical (decay never enters them) and the parameters differ by
  // exactly lr * wd * p.
  auto p_decay = p0, p_plain = p0;
  std::vector<double> m_decay(n), v_decay(n), m_plain(n), v_plain(n);
  adamw_update(p_decay.data(), g.data(), m_decay.data(), v_decay.data(), n, 1, lr, 0.1, hp);
  adamw_update(p_plain.data(), g.data(), m_plain.data(), v_plain.data(), n, 1, lr, 0.0, hp);
  EXPECT_EQ(m_decay, m_plain);
  EXPECT_EQ(v_decay, v_plain);
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(p_plain[i] - p_decay[i], lr * 0.1 * p0[i], 1e-16);

  // A zero gradient leaves only the decay: p *= 1 - lr * wd, moments stay zero.
  const std::vector<double> zero(n, 0.0);
  auto p = p0;
  std::vector<double> m(n), v(n);
  adamw_update(p.data(), zero.data(), m.data(), v.data(), n, 1, lr, 0.1, hp);
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(p[i], p0[i] * (1 - lr * 0.1), 1e-16);
  EXPECT_EQ(m, zero);
  EXPECT_EQ(v, zero);
}

TEST(AdamW, WeightDecayArgumentOverridesHyper) {
  // Norm weights are updated with weight_decay = 0 while hp carries the global value.
  const AdamWHyper hp{0.9, 0.95, 1e-8, 0.1};
  double p = 1.0, m = 0, v = 0;
  const double g = 0;
  adamw_update(&p, &g, &m, &v, 1, 1, 0.5, 0.0, hp);
  EXPECT_EQ(p, 1.0);
}

TEST(AdamW, FloatMatchesDouble) {
  const int64_t n = 500, steps = 5;
  const AdamWHyper hp{};
  std::mt19937_64 rng(3);
  auto p = test::random_vector<double>(n, rng);
  auto pf = test::convert<float>(p);
  std::vector<double> m(n), v(n);
  std::vector<float> mf(n), vf(n);
  for (int64_t t = 1; t <= steps; ++t) {
    const auto g = test::random_vector<double>(n, rng);
    const auto gf = test::convert<float>(g);
    adamw_update(p.data(), g.data(), m.data(), v.data(), n, t, 1e-3, 0.1, hp);
    adamw_update(pf.data(), gf.data(), mf.data(), vf.data(), n, t, 1e-3, 0.1, hp);
  }
  // Each step is formed in double and rounded once to float, so parameters stay within a few ulps.
  EXPECT_LE(rel_error(pf, p), 1e-6);
  EXPECT_LE(rel_error(mf, m), 1e-6);
  EXPECT_LE(rel_error(vf, v), 1e-6);
}

// --optimizer-dtype bf16: every step reads the moments widened, updates in double with the moments it just
// formed (so this step's parameter update is the fp32 path's given the same stored moments), and stores them
// rounded to nearest even: each stored moment is the bf16 rounding of the one this step computed, within
// 2^-8 of it relative, and the parameters follow a reference that keeps its moments rounded the same way.
TEST(AdamW, Bf16MomentsStayWithinTheirRounding) {
  const int64_t n = 41, steps = 5;
  const AdamWHyper hp{0.9, 0.95, 1e-8, 0.1};
  std::mt19937_64 rng(4);
  const auto p0 = test::random_vector<float>(n, rng);
  std::vector<float> p = p0, ref_p = p0, ref_m(n, 0.f), ref_v(n, 0.f);
  std::vector<uint16_t> m(n, 0), v(n, 0);
  for (int64_t t = 1; t <= steps; ++t) {
    const auto g = test::random_vector<float>(n, rng, -2, 2);
    adamw_update(p.data(), g.data(), m.data(), v.data(), n, t, 1e-2, 0.1, hp);
    // The reference: the fp32 kernel on moments that it rounds to bf16 after each step itself.
    std::vector<float> mm = ref_m, vv = ref_v;
    adamw_update(ref_p.data(), g.data(), mm.data(), vv.data(), n, t, 1e-2, 0.1, hp);
    for (int64_t i = 0; i < n; ++i) {
      ref_m[size_t(i)] = bf16_to_float(float_to_bf16(mm[size_t(i)]));
      ref_v[size_t(i)] = bf16_to_float(float_to_bf16(vv[size_t(i)]));
      EXPECT_LE(std::abs(bf16_to_float(m[size_t(i)]) - mm[size_t(i)]),
                std::ldexp(std::abs(mm[size_t(i)]), -8))
          << "m[" << i << "] at step " << t;
      EXPECT_LE(std::abs(bf16_to_float(v[size_t(i)]) - vv[size_t(i)]),
                std::ldexp(std::abs(vv[size_t(i)]), -8))
          << "v[" << i << "] at step " << t;
    }
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(m[size_t(i)], float_to_bf16(mm[size_t(i)])) << "m[" << i << "] at step " << t;
      EXPECT_EQ(v[size_t(i)], float_to_bf16(vv[size_t(i)])) << "v[" << i << "] at step " << t;
      // The fp32 moments formed in double then rounded to float may differ from those formed from the
      // widened bf16 ones only in the last float bit: the parameters agree to float rounding.
      EXPECT_NEAR(p[size_t(i)], ref_p[size_t(i)], 4 * std::ldexp(std::abs(ref_p[size_t(i)]), -24) + 1e-12f)
          << "p[" << i << "] at step " << t;
    }
  }
}

TEST(AdamW, RejectsStepZero) {
  double p = 1, g = 1, m = 0, v = 0;
  EXPECT_THROW(adamw_update(&p, &g, &m, &v, 1, 0, 1e-3, 0.1, AdamWHyper{}), tsp::Error);
}

TEST(GradNorm, SumSquaresIsExactEnoughAndThreadCountInvariant) {
  const int64_t n = 100003;  // above the OpenMP threshold, not a multiple of the block size
  std::mt19937_64 rng(4);
  const auto x = test::random_vector<float>(n, rng);
  long double ref = 0;
  for (float e : x) ref += (long double)e * e;
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one_thread = sum_squares(x.data(), n);
  omp_set_num_threads(3);
  const double three_threads = sum_squares(x.data(), n);
  omp_set_num_threads(threads);
  EXPECT_NEAR(one_thread, double(ref), 1e-12 * double(ref));
  EXPECT_EQ(one_thread, three_threads);
  EXPECT_EQ(sum_squares(x.data(), 0), 0.0);
}

TEST(GradNorm, ScaleInplace) {
  std::vector<double> x = {1, -2, 3.5};
  scale_inplace(x.data(), 3, 0.5);
  EXPECT_EQ(x, (std::vector<double>{0.5, -1, 1.75}));
  std::vector<float> xf = {4.f, -8.f};
  scale_inplace(xf.data(), 2, 0.25);
  EXPECT_EQ(xf, (std::vector<float>{1.f, -2.f}));
}

TEST(GradNorm, ClipCoefficient) {
  EXPECT_EQ(clip_coefficient(10.0, 0.0), 1.0);   // disabled
  EXPECT_EQ(clip_coefficient(10.0, -1.0), 1.0);  // disabled
  EXPECT_EQ(clip_coefficient(0.5, 1.0), 1.0);    // already inside the ball
  EXPECT_DOUBLE_EQ(clip_coefficient(4.0, 1.0), 1.0 / (4.0 + 1e-6));
  // Clipping then brings the norm to max_norm (up to the 1e-6 guard).
  EXPECT_NEAR(4.0 * clip_coefficient(4.0, 1.0), 1.0, 1e-6);
}

TEST(CosineLr, WarmupEdgeMidpointAndEnd) {
  const double lr_max = 3e-4, lr_min = 3e-5;
  const int64_t warmup = 10, total = 110;
  EXPECT_DOUBLE_EQ(cosine_lr(1, warmup, total, lr_max, lr_min), lr_max / 10);
  EXPECT_DOUBLE_EQ(cosine_lr(5, warmup, total, lr_max, lr_min), lr_max / 2);
  EXPECT_DOUBLE_EQ(cosine_lr(warmup, warmup, total, lr_max, lr_min), lr_max);
  // One step past the warm-up the cosine has just started.
  const double after = cosine_lr(warmup + 1, warmup, total, lr_max, lr_min);
  EXPECT_LT(after, lr_max);
  EXPECT_DOUBLE_EQ(after, lr_min + 0.5 * (lr_max - lr_min) * (1 + std::cos(std::numbers::pi / 100)));
  EXPECT_DOUBLE_EQ(cosine_lr(60, warmup, total, lr_max, lr_min), 0.5 * (lr_max + lr_min));
  EXPECT_DOUBLE_EQ(cosine_lr(total, warmup, total, lr_max, lr_min), lr_min);
  EXPECT_DOUBLE_EQ(cosine_lr(total + 50, warmup, total, lr_max, lr_min), lr_min);
  for (int64_t s = warmup; s < total; ++s)
    EXPECT_GE(cosine_lr(s, warmup, total, lr_max, lr_min), cosine_lr(s + 1, warmup, total, lr_max, lr_min))
        << s;
}

TEST(CosineLr, NoWarmup) {
  EXPECT_DOUBLE_EQ(cosine_lr(0, 0, 100, 1.0, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(cosine_lr(50, 0, 100, 1.0, 0.0), 0.5);
  EXPECT_DOUBLE_EQ(cosine_lr(100, 0, 100, 1.0, 0.0), 0.0);
}

}  // namespace
}  // namespace tsp::kernels
