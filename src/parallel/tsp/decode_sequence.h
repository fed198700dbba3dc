// TSP decode attention with --kv-layout sequence (tsp-spec.md §12; KV-parallel, as NVIDIA's Helix and vLLM's
// decode context parallelism): rank p caches EVERY head of its own positions (kv_cache.h's positions
// placement over the D ranks) and keeps the weights of head group p where TSP placed them. It serves models
// whose KV heads do not divide over D. Per layer, n new tokens, received per rank (β bytes per element):
//   decode.q_allgather            all_gather of n·q_dim/D: every rank gets the queries of every head
//   decode.kv_to_owner            all_to_all_v: the new key and value of each head group (2·kv_dim/D per
//                                 token) go to the rank caching the token's position; the owner of m of
//                                 the n tokens receives (D-1)·m·2·kv_dim/D
//   decode.attn_partial_alltoall  all_to_all_v, n·(q_dim/D + n_heads/D) to each peer: head group g's
//                                 partial output and log-sum-exp over my positions go to rank g, which
//                                 merges them by log-sum-exp
//   decode.attn_out_allreduce     all_reduce of n·h: o_g·Wo_gᵀ summed over the head groups
#pragma once

#include <cstdint>
#include <vector>

#include "core/memory.h"
#include "model/params.h"
#include "parallel/decode.h"

namespace tsp {

template <class T>
class TspSequenceAttention {
 public:
  void prepare(const ModelParams<T>& p, Communicator& comm, const KvSlots& slots, KvCache<T>* cache,
               int64_t max_rows);
  void begin_step(const DecodeBatch& batch);
  void forward(ModelParams<T>& p, int layer, const T* u, T* y);

 private:
  Communicator* comm_ = nullptr;
  KvSlots slots_;
  KvCache<T>* cache_ = nullptr;
  const DecodeBatch* batch_ = nullptr;
  int D_ = 1, p_ = 0;
  int64_t hidden_ = 0, heads_ = 0, kv_heads_ = 0, head_dim_ = 0;  // whole model
  int64_t heads_s_ = 0, kv_heads_s_ = 0;                          // one head group
  const ModelConfig* config_ = nullptr;
  kernels::RopeTable rope_;  // for the step's longest position (dynamic RoPE)
  double norm_eps_ = 0;
  int kv_replicas_ = 1;  // head groups sharing each KV head (D > n_kv: model/params.h)
  // Step plan: slots to scan, which rows this rank caches, and the all_to_all_v counts of the keys/values.
  std::vector<int64_t> n_slots_, mine_;
  std::vector<int64_t> kv_send_counts_, kv_recv_counts_, kv_send_order_;
  Buffer<int64_t> slot_pos_;                                        // workspace [max_rows, slots]
  Buffer<T> k_, v_, q_all_heads_, o_all_, lse_all_, o_;             // workspace
  Buffer<T> q_gather_, kv_send_, kv_recv_, part_send_, part_recv_;  // communication
};

}  // namespace tsp
