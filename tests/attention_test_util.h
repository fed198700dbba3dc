// Shared by the attention kernel tests (fp32 and bf16 tiles).
#pragma once

#include <omp.h>

#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/attention.h"
#include "kernels/onednn_matmul.h"

namespace tsp::test {

// The oneDNN primitives this thread's cache gains while the kernel runs forward and backward over sequence
// lengths 9, 16, ..., 200 (one thread: the cache counted is this thread's) — a run meets every length in a
// sequence-length warm-up or a batch of prompts, and one primitive per tile shape would grow without bound.
inline size_t primitives_added_over_sequence_lengths(const kernels::AttentionBlocks& blocks) {
  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const size_t before = kernels::onednn::cached_primitives();  // other tests of this process made some
  for (int64_t S = 9; S <= 200; S += 7) {
    const kernels::AttentionShape s{S, S, 2, 1, 8};
    std::mt19937_64 rng{uint64_t(S)};
    const auto q = random_vector<float>(S * 16, rng), k = random_vector<float>(S * 8, rng),
               v = random_vector<float>(S * 8, rng);
    std::vector<float> out(q.size()), lse(size_t(S * 2)), dq(q.size()), dk(k.size()), dv(v.size());
    std::vector<int64_t> pos(static_cast<size_t>(S));
    std::iota(pos.begin(), pos.end(), int64_t(0));
    kernels::attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), pos.data(), pos.data(),
                               s, 0.35, blocks);
    kernels::attention_backward(dq.data(), dk.data(), dv.data(), out.data(), q.data(), k.data(), v.data(),
                                out.data(), lse.data(), pos.data(), pos.data(), s, 0.35, blocks);
  }
  omp_set_num_threads(saved_threads);
  return kernels::onednn::cached_primitives() - before;
}

}  // namespace tsp::test
