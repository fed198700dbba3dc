// Guards against the GCC 12.2 AVX-512 SLP miscompilation worked around in CMakeLists.txt: a 4 x 64-bit
// aggregate {x, x, 0, 0} passed by value must arrive intact.
#include <gtest/gtest.h>

#include <cstdint>

namespace {
struct Four {
  int64_t a, b, c, d;
};
__attribute__((noinline)) int64_t last_two(Four s) {
  return s.c * 1000 + s.d;
}
}  // namespace

TEST(Toolchain, AggregateWithTrailingZerosSurvives) {
  volatile int64_t x = 5;
  EXPECT_EQ(last_two({x, x, 0, 0}), 0);
  EXPECT_EQ(last_two({5, 5, 0, 0}), 0);
}
