// Picking the next token from logits: greedy, or sampling with temperature, top-k and top-p (HF's warpers,
// applied in that order), from logits that may be spread over vocabulary shards (parallel/decode.h's
// VocabShard). The result is the same on every layout for the same seed:
//   - greedy takes the largest logit, ties to the lowest token id; shards exchange only (max, argmax) per
//     row, never the logits;
//   - sampling is Gumbel-max: token = argmax_j (z_j + g_j) over the tokens top-k / top-p keep, with
//     z = logits / temperature and g_j a Gumbel draw from a counter-based generator keyed by (seed,
//     sequence, step, token id), so that the noise of a token never depends on which rank holds its logit or
//     on the thread count. It samples exactly softmax(z) restricted to the kept tokens. top-k exchanges each
//     shard's k largest z; top-p exchanges the global log-sum-exp and, per shard, the candidates that can be
//     in the nucleus (a shard's tokens whose LOCAL mass above them is already >= top_p cannot be). Among
//     equal logits the lower token id counts as the more likely one (HF leaves that order to torch.sort).
#pragma once

#include <cstdint>
#include <vector>

#include "parallel/decode.h"

namespace tsp {

struct SamplingParams {
  double temperature = 0;  // 0: greedy
  int64_t top_k = 0;       // 0: off
  double top_p = 1;        // 1: off
  uint64_t seed = 0;

  bool greedy() const { return temperature == 0; }
  // Throws UsageError naming the flag (--temperature >= 0, --top-k >= 0, 0 < --top-p <= 1).
  void validate() const;
};

// Gumbel(0, 1) noise of `token` for step `step` of sequence `seq`: a function of its arguments only.
double gumbel_noise(uint64_t seed, uint64_t seq, uint64_t step, int64_t token);

// One draw per row: which sequence and which of its steps (the key of the noise).
struct Draw {
  uint64_t seq = 0, step = 0;
};

// logits [n, shard.rows] of vocabulary rows [shard.begin, shard.begin + shard.rows) for n rows; the ranks of
// shard.comm hold the other rows and call this together. out[i]: the picked token of row i, on every rank.
// Communication (phase of the caller) under decode.pick_allgather, decode.topk_allgather,
// decode.topp_lse_allgather, decode.topp_counts_allgather, decode.topp_candidates_allgather.
template <class T>
void pick_tokens(const T* logits, int64_t n, const VocabShard& shard, const SamplingParams& sp,
                 const std::vector<Draw>& draws, int32_t* out);

}  // namespace tsp
