// kernels/frozen_weights.h: a weight registered at rest is found inside its range only, while its holder
// lives, and a bf16 linear product with it gives the bits of rounding the weight on the call.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/check.h"
#include "kernel_test_util.h"
#include "kernels/bf16.h"
#include "kernels/blocked_weights.h"
#include "kernels/frozen_weights.h"
#include "kernels/gemm.h"
#include "kernels/matmul_precision.h"
#include "kernels/onednn_matmul.h"

namespace tsp::kernels {
namespace {

std::vector<float> ramp(int64_t n, float scale) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = scale * float((i * 37) % 101 - 50) / 7.f;
  return v;
}

TEST(FrozenBf16Weights, FoundInsideItsRangeOnlyWhileHeld) {
  std::vector<float> a = ramp(100, 1.f), b = ramp(50, 0.5f);
  {
    FrozenBf16Weights frozen;
    frozen.add(a.data(), 100);
    frozen.add(b.data(), 50);
    EXPECT_EQ(frozen.bytes(), 150 * 2);
    const uint16_t* whole = frozen_bf16(a.data(), 100);
    ASSERT_NE(whole, nullptr);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(whole[i], float_to_bf16(a[size_t(i)])) << i;
    // A sub-range (a layer's matrix inside a block) maps to the same copy at the same offset.
    EXPECT_EQ(frozen_bf16(a.data() + 30, 70), whole + 30);
    EXPECT_EQ(frozen_bf16(b.data() + 10, 40)[0], float_to_bf16(b[10]));
    // Running past the end of a range, or memory never registered, is not frozen.
    EXPECT_EQ(frozen_bf16(a.data() + 30, 71), nullptr);
    std::vector<float> other(10);
    EXPECT_EQ(frozen_bf16(other.data(), 10), nullptr);
    EXPECT_THROW(frozen.add(a.data() + 50, 10), Error);  // overlaps
  }
  EXPECT_EQ(frozen_bf16(a.data(), 100), nullptr);  // unregistered with its holder
}

TEST(FrozenBf16Weights, LinearForwardGivesTheBitsOfPerCallRounding) {
  if (!onednn::bf16_supported()) GTEST_SKIP() << "oneDNN has no bf16 product on this CPU";
  ScopedMatmulPrecision bf16(MatmulPrecision::bf16);
  const int64_t n = 5, in = 48, out = 40;
  const std::vector<float> x = ramp(n * in, 0.1f), w = ramp(out * in, 0.02f);
  std::vector<float> per_call(size_t(n * out)), frozen_y(size_t(n * out));
  linear_forward(per_call.data(), x.data(), w.data(), n, in, out);
  const int64_t hits = frozen_bf16_hits();
  {
    FrozenBf16Weights frozen;
    frozen.add(w.data(), out * in);
    linear_forward(frozen_y.data(), x.data(), w.data(), n, in, out);
  }
  EXPECT_EQ(frozen_bf16_hits(), hits + 1);
  EXPECT_EQ(per_call, frozen_y);
}

}  // namespace
}  // namespace tsp::kernels

namespace tsp::kernels {
namespace {

// Weights at rest in oneDNN's blocked layout (kernels/blocked_weights.h): the forward product by a registered
// bf16 weight runs on the blocked copy, and agrees with the plain bf16 product to fp32 accumulation (the two
// kernels may sum in another order): |y_blocked - y_plain| <= 2 (in + 1) u32 · Σ|x w| element by element.
// Smaller matrices are left plain.
TEST(BlockedBf16Weights, ForwardProductsUseTheBlockedCopyWithinFp32Rounding) {
  if (!onednn::bf16_supported()) GTEST_SKIP() << "oneDNN has no bf16 product on " << onednn::cpu_isa();
  ScopedMatmulPrecision bf16(MatmulPrecision::bf16);
  const int64_t out = 512, in = 768;
  std::mt19937_64 rng(9);
  auto w = test::random_vector<float>(out * in, rng, -1, 1);
  std::vector<uint16_t> w16(w.size());
  to_bf16(w.data(), int64_t(w.size()), w16.data());
  for (int64_t n : {1, 8, 100}) {
    auto x = test::random_vector<float>(n * in, rng, -1, 1);
    std::vector<float> plain(size_t(n * out)), blocked(plain.size()), bound(plain.size(), 0.f);
    linear_forward(plain.data(), x.data(), WeightRef<float>(w16.data()), n, in, out);
    const int64_t before = onednn::blocked_products();
    {
      BlockedBf16Weights held;
      ASSERT_TRUE(held.add(w16.data(), out, in));
      EXPECT_EQ(held.bytes(), out * in * 2);
      linear_forward(blocked.data(), x.data(), WeightRef<float>(w16.data()), n, in, out);
      EXPECT_EQ(onednn::blocked_products(), before + 1);
    }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t o = 0; o < out; ++o) {
        double s = 0;
        for (int64_t k = 0; k < in; ++k)
          s += std::abs(double(bf16_to_float(float_to_bf16(x[size_t(i * in + k)]))) *
                        double(bf16_to_float(w16[size_t(o * in + k)])));
        ASSERT_LE(std::abs(double(blocked[size_t(i * out + o)]) - plain[size_t(i * out + o)]),
                  2.0 * double(in + 1) * std::ldexp(1.0, -24) * s)
            << "row " << i << " column " << o;
      }
    // Unregistered again: the plain product.
    std::vector<float> again(plain.size());
    linear_forward(again.data(), x.data(), WeightRef<float>(w16.data()), n, in, out);
    EXPECT_EQ(again, plain);
  }
  BlockedBf16Weights small;
  EXPECT_FALSE(small.add(w16.data(), 256, 768));  // below kMinBlockedDim: plain
  EXPECT_EQ(small.count(), 0);
}

}  // namespace
}  // namespace tsp::kernels
