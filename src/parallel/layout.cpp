#include "parallel/layout.h"

#include "core/check.h"

namespace tsp {

Range shard_range(int64_t n, int D, int p) {
  TSP_CHECK(D > 0 && p >= 0 && p < D && n % D == 0, "shard_range: {} does not split into {} parts (part {})",
            n, D, p);
  return {p * (n / D), n / D};
}

std::vector<int64_t> zigzag_positions(int64_t seq_len, int D, int p) {
  TSP_CHECK(seq_len % (2 * D) == 0, "zigzag_positions: seq_len {} is not a multiple of 2*{}", seq_len, D);
  int64_t chunk = seq_len / (2 * D);
  std::vector<int64_t> pos;
  pos.reserve(2 * chunk);
  for (int64_t c : {int64_t(p), int64_t(2 * D - 1 - p)})
    for (int64_t i = 0; i < chunk; ++i) pos.push_back(c * chunk + i);
  return pos;
}

void require_zigzag_divisible(int64_t seq_len, int D, const std::string& strategy) {
  int64_t m = 2 * int64_t(D);
  if (seq_len > 0 && seq_len % m == 0) return;
  int64_t below = seq_len / m * m, above = below + m;
  if (below <= 0)
    throw UsageError(
        fmt::format("--seq-len {} does not work with --strategy {} on {} ranks: the zigzag layout cuts "
                    "each sequence into 2*{} = {} equal chunks; the smallest valid length is {}",
                    seq_len, strategy, D, D, m, m));
  throw UsageError(
      fmt::format("--seq-len {} does not work with --strategy {} on {} ranks: the zigzag layout cuts "
                  "each sequence into 2*{} = {} equal chunks; nearest valid lengths: {} or {}",
                  seq_len, strategy, D, D, m, below, above));
}

}  // namespace tsp
