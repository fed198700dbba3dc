// Where decoding keeps keys and values (docs/inference.md): the cache's storage, and which positions of a
// sequence a rank caches in which slot.
//
// Two placements, each exactly 1/P of the cache per rank when P ranks share it:
//   heads:     the rank caches some KV heads (its head group) for EVERY position; slot s holds position s.
//              (single, tp, tsp --kv-layout heads; the TP axis of tpsp.)
//   positions: the rank caches ALL the heads it computes for SOME positions (sp, the SP axis of tpsp,
//              tsp --kv-layout sequence). The padded prompt [0, S) keeps the prefill's zigzag layout: rank r
//              holds chunks r and 2P-1-r in slots [0, S/P), in that order. Every later position goes to the
//              ranks in round-robin blocks of `block` positions, starting at a rank that shifts with the
//              sequence (so that sequences of equal length do not all grow on the same rank):
//                position S + j of sequence b belongs to rank (j / block + b) mod P,
//                in slot S/P + (j / (block P)) block + j % block.
//              No rank fills first: after any number of new tokens the ranks' new positions differ by at
//              most `block`.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include "core/memory.h"

namespace tsp {

enum class KvLayout { heads, sequence };
KvLayout parse_kv_layout(const std::string& s);  // "heads" | "sequence"; UsageError otherwise
std::string kv_layout_name(KvLayout k);

// The new-token block of the positions placement; 16 keeps the ranks within one block of each other.
inline constexpr int64_t kKvBlock = 16;

// The positions a sequence can reach in a cache for a batch whose padded prompt length is `prompt` and
// whose longest request needs `needed` positions (prompt + new tokens): at least both, with (C - prompt) a
// multiple of block * parts so that every rank holds exactly C / parts slots.
int64_t kv_context(int64_t prompt, int64_t needed, int parts, int64_t block = kKvBlock);

struct KvSlots {
  int parts = 1;             // P: ranks sharing a sequence's positions (1: heads placement)
  int rank = 0;              // this rank among them
  int64_t prompt = 0;        // S: padded prompt length of the batch (a multiple of 2P when P > 1)
  int64_t context = 0;       // C: from kv_context(prompt, ..., P)
  int64_t block = kKvBlock;  // round-robin block of new positions

  int64_t slots() const { return context / parts; }  // slots per sequence on each rank
  // The rank caching position pos of sequence b, and the slot it uses there.
  int owner(int64_t b, int64_t pos) const;
  int64_t slot(int64_t b, int64_t pos) const;
  // The position this rank keeps in slot s of sequence b.
  int64_t position(int64_t b, int64_t s) const;
  // A prefix of this rank's slots of sequence b holding every position < len it caches (what attention
  // scans; slots inside it with positions >= len are masked by position).
  int64_t scan(int64_t b, int64_t len) const;
  // Positions < len of sequence b cached on this rank.
  int64_t count(int64_t b, int64_t len) const;
};

// Post-RoPE keys and values of every layer: [layers][batch][slots][width] each for K and V, allocated once
// under Mem::kv_cache (width = cached KV heads x head_dim), in T or, under the bf16 policy
// (core/precision.h), as bf16: half the bytes, rounded as they are stored and widened as attention reads
// them.
template <class T>
class KvCache {
 public:
  KvCache() = default;
  KvCache(int64_t layers, int64_t batch, int64_t slots, int64_t width);

  int64_t batch() const { return batch_; }
  int64_t slots() const { return slots_; }
  int64_t width() const { return width_; }
  int64_t seq_stride() const { return slots_ * width_; }
  bool bf16() const { return bf16_; }
  int64_t bytes() const { return 2 * (k_.size() * int64_t(sizeof(T)) + k16_.size() * 2); }
  // Calls f(k, v) with layer's K and V bases (const T* or, in bf16, const uint16_t*).
  template <class F>
  void with_layer(int layer, F&& f) const {
    if constexpr (std::is_same_v<T, float>)
      if (bf16_) return f(k16_.data() + offset(layer, 0, 0), v16_.data() + offset(layer, 0, 0));
    f(k_.data() + offset(layer, 0, 0), v_.data() + offset(layer, 0, 0));
  }

  // Copies n rows of `cols` keys and values (row stride src_ld) into slots [slot0, slot0 + n) of sequence b
  // at column col0 (rounded to bf16 in a bf16 cache).
  void store(int layer, int64_t b, int64_t slot0, int64_t n, const T* k, const T* v, int64_t src_ld,
             int64_t col0, int64_t cols);

 private:
  int64_t offset(int layer, int64_t b, int64_t slot) const {
    return ((int64_t(layer) * batch_ + b) * slots_ + slot) * width_;
  }
  int64_t batch_ = 0, slots_ = 0, width_ = 0;
  bool bf16_ = false;
  Buffer<T> k_, v_;
  Buffer<uint16_t> k16_, v16_;
};

}  // namespace tsp
