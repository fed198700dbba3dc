// Where tokens and weight shards live: contiguous shard ranges and the zigzag token layout (tsp-spec.md
// §3-4).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tsp {

struct Range {
  int64_t begin = 0, size = 0;
  int64_t end() const { return begin + size; }
  bool operator==(const Range&) const = default;
};

// Part p of D equal parts of [0, n); n % D must be 0 (checked by the caller's validation).
Range shard_range(int64_t n, int D, int p);

// Zigzag layout: the sequence is cut into 2D equal chunks and rank p holds chunks p and 2D-1-p, in that
// order, which balances causal attention work across ranks. Returns the GLOBAL positions held by rank p.
std::vector<int64_t> zigzag_positions(int64_t seq_len, int D, int p);

// Throws UsageError unless seq_len is a positive multiple of 2D; the message gives the nearest valid lengths.
void require_zigzag_divisible(int64_t seq_len, int D, const std::string& strategy);

}  // namespace tsp
