// kernels/frozen_weights.h: a weight registered at rest is found inside its range only, while its holder
// lives, and a bf16 linear product with it gives the bits of rounding the weight on the call.
#include <gtest/gtest.h>

#include <vector>

#include "core/check.h"
#include "kernels/bf16.h"
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
