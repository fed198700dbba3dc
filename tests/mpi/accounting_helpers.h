// Shared by the per-layout communication and memory tests: the expected counters of one phase checked
// against what the communicator recorded, the bytes a step added to an allocator category, and a batch.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/memory.h"
#include "kernels/cross_entropy.h"

namespace tsp::test {

struct Expected {
  std::string op;
  int64_t calls, payload_bytes, recv_bytes;
};
using ExpectedPhase = std::map<std::string, Expected>;

// Exactly the labels of `want`, each with its op, calls, payload and received bytes.
inline void expect_phase(const CommStats& stats, const std::string& phase, const ExpectedPhase& want) {
  SCOPED_TRACE("phase " + phase + " on rank " + std::to_string(Communicator::world().rank()));
  std::map<std::string, CommCounter> got;
  if (auto it = stats.find(phase); it != stats.end()) got = it->second;
  for (const auto& [label, c] : got) EXPECT_TRUE(want.count(label)) << "unexpected label " << label;
  for (const auto& [label, w] : want) {
    auto it = got.find(label);
    ASSERT_TRUE(it != got.end()) << "missing label " << label;
    EXPECT_EQ(it->second.op, w.op) << label;
    EXPECT_EQ(it->second.calls, w.calls) << label;
    EXPECT_EQ(it->second.payload_bytes, w.payload_bytes) << label;
    EXPECT_EQ(it->second.recv_bytes, w.recv_bytes) << label;
  }
}

// Bytes of category m live at `after` but not at `before`.
inline int64_t mem_delta(const MemStats& after, const MemStats& before, Mem m) {
  return after.current[size_t(m)] - before.current[size_t(m)];
}

// n random tokens and targets (every 7th ignored); the contents do not matter to the counts.
inline void accounting_batch(int64_t vocab, int64_t n, std::vector<int32_t>& tokens,
                             std::vector<int32_t>& targets) {
  std::mt19937 rng(5);
  tokens.resize(size_t(n));
  targets.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    tokens[size_t(i)] = int32_t(rng() % uint32_t(vocab));
    targets[size_t(i)] = i % 7 == 3 ? kernels::kIgnoreIndex : int32_t(rng() % uint32_t(vocab));
  }
}

}  // namespace tsp::test
