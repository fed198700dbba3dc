// Causal attention as a blocked online-softmax (flash-style) kernel. Never materialises the [nq, nk] score
// matrix: it walks key blocks, keeping a running max and sum per query, and saves only the log-sum-exp.
// Causality is by GLOBAL position: key j is visible to query i iff k_pos[j] <= q_pos[i], so any token subset
// (zigzag shards, gathered K/V) works. Grouped-query attention: query head hq reads KV head hq / (n_heads /
// n_kv_heads).
#pragma once

#include <cstdint>

namespace tsp::kernels {

struct AttentionShape {
  int64_t nq = 0;          // queries (tokens of one sequence held here)
  int64_t nk = 0;          // keys/values (tokens of the same sequence visible to the kernel)
  int64_t n_heads = 0;     // query heads
  int64_t n_kv_heads = 0;  // key/value heads; n_heads % n_kv_heads == 0
  int64_t head_dim = 0;
};

// Tile sizes of the blocked kernels: each thread holds [block_q x block_k] scores (two such tiles in the
// backward), so the workspace never depends on nq * nk. Sizes need not divide nq or nk.
// The library the fp32 tile products run on (fp64 always uses OpenBLAS).
enum class TileProducts { onednn, blas };

struct AttentionBlocks {
  int64_t block_q = 128;
  int64_t block_k = 256;
  TileProducts products = TileProducts::onednn;
};

// What the overloads without explicit blocks use (process-wide): AttentionBlocks{} unless a benchmark or a
// tuning run sets otherwise before the first step.
const AttentionBlocks& default_attention_blocks();
void set_default_attention_blocks(const AttentionBlocks& blocks);

// q: [nq, n_heads, d]; k, v: [nk, n_kv_heads, d]; out: [nq, n_heads, d]; lse: [nq, n_heads] (natural log of
// sum_j exp(scale * q·k_j) over visible keys). A query with no visible key gets out = 0 and lse = -inf.
template <class T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const int64_t* q_pos,
                       const int64_t* k_pos, const AttentionShape& s, double scale);

// Accumulates dq += , dk += , dv += (same shapes as q, k, v). Recomputes the probabilities blockwise from q,
// k and the saved lse; `out` gives the row terms D_i = sum(dout_i * out_i).
template <class T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,
                        const T* lse, const int64_t* q_pos, const int64_t* k_pos, const AttentionShape& s,
                        double scale);

// The same with explicit tile sizes (tests and tuning); the overloads above use default_attention_blocks().
template <class T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const int64_t* q_pos,
                       const int64_t* k_pos, const AttentionShape& s, double scale,
                       const AttentionBlocks& blocks);
template <class T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,
                        const T* lse, const int64_t* q_pos, const int64_t* k_pos, const AttentionShape& s,
                        double scale, const AttentionBlocks& blocks);

// Reference O(nq * nk) implementation that materialises the probabilities (tests only).
template <class T>
void attention_forward_naive(T* out, T* lse, const T* q, const T* k, const T* v, const int64_t* q_pos,
                             const int64_t* k_pos, const AttentionShape& s, double scale);

}  // namespace tsp::kernels
