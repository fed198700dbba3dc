// Attention of ONE new query per sequence against a key/value cache (decoding), and the merge of partial
// results computed over disjoint parts of a cache (KV-parallel decoding, as NVIDIA's Helix and vLLM's decode
// context parallelism do it). Causality is by global position, as in the prefill kernel (attention.h): slot s
// of a sequence is visible to a query at position q iff the slot's position <= q, so empty slots and the
// padding of a batch of prompts (whose positions lie past the sequence's end) never contribute.
#pragma once

#include <cstdint>

namespace tsp::kernels {

struct DecodeAttentionShape {
  int64_t n_heads = 0;     // query heads of the query rows
  int64_t n_kv_heads = 0;  // KV heads read from the cache rows; n_heads % n_kv_heads == 0
  int64_t head_dim = 0;
  int64_t row_stride = 0;  // elements between consecutive cache slots (>= n_kv_heads * head_dim)
  int64_t seq_stride = 0;  // elements between the slot 0 of consecutive cached sequences
};

// n query rows; row i belongs to cached sequence seq[i], sits at position q_pos[i] and scans the slots
// [0, n_slots[i]) of that sequence. q: [n, n_heads, d]; k, v: cache bases (slot s of sequence b at
// b * seq_stride + s * row_stride, KV head g at + g * d). slot_pos: null when slot s holds position s, else
// row i's slot positions at slot_pos + i * pos_stride. out: [n, n_heads, d]; lse: [n, n_heads] natural-log
// sum of exp(scale * q·k) over the visible slots; a row without visible slot gets out = 0 and lse = -inf.
// The cache holds C: T, or (float) bf16 bits, widened as they are read (the bf16 policy's KV cache).
template <class T, class C>
void attention_decode(T* out, T* lse, const T* q, const C* k, const C* v, int64_t n, const int64_t* seq,
                      const int64_t* q_pos, const int64_t* n_slots, const int64_t* slot_pos,
                      int64_t pos_stride, const DecodeAttentionShape& s, double scale);

// Merges `parts` partial results of the same rows computed over disjoint key sets: part p's outputs
// [rows, d] start at part_out + p * out_stride_p and its log-sum-exps [rows] at part_lse + p * lse_stride_p.
//   lse = log sum_p exp(lse_p),   out = sum_p exp(lse_p - lse) * out_p.
// A row whose parts are all -inf gets out = 0, lse = -inf. out: [rows, d] with row stride out_stride; lse
// may be null.
template <class T>
void attention_merge(T* out, int64_t out_stride, T* lse, const T* part_out, int64_t out_stride_p,
                     const T* part_lse, int64_t lse_stride_p, int64_t parts, int64_t rows, int64_t d);

}  // namespace tsp::kernels
