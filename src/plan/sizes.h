// Shard and token sizes of one layout, shared by the memory, communication and FLOP models (internal).
#pragma once

#include <cstdint>

#include "model/config.h"
#include "plan/plan.h"

namespace tsp::plan {

struct Sizes {
  int64_t L, h, qd, kvd, nh, I, V, parts;  // model (parts: 1 tied embedding/LM head, 2 untied)
  int64_t d;                               // head_dim
  bool bias, qk_norm;                      // Qwen2's q/k/v biases, Qwen3's per-head q/k norms
  int64_t B, S, BS;                        // micro-batch, sequence, tokens per replica per step
  int64_t T;    // weight shard factor: heads, intermediate and vocabulary split T ways (D for tsp)
  int64_t Sg;   // sequence shard factor of attention/MLP tokens (Σ for sp/tpsp, D for tsp)
  int64_t N_a;  // tokens per rank inside the attention and MLP blocks
  int64_t N_t;  // tokens per rank in the transformer's residual stream (N_a / T with sequence parallelism)
  int64_t V_p;  // vocabulary padded to a multiple of T
  // KV-head replication (model/params.h): with n_kv < T each head shard holds one KV head, held by
  // kv_replicas = T / n_kv ranks.
  int64_t kv_replicas;
  int64_t qd_s, kvd_s;    // q and kv dims of one head shard (kvd_s = d under replication)
  int64_t W_attn, W_mlp;  // per layer, whole model, elements (weights only)
  int64_t norms;          // (2L+1)·h replicated norm weights, + 2L·d q/k norms
  // Elements of the key/value part of one attention shard (weights and biases): what the holders of a
  // replicated KV head all-reduce.
  int64_t attn_kv_part() const { return 2 * kvd_s * h + (bias ? 2 * kvd_s : 0); }
  // Elements of this rank's parameter shard, per block kind.
  int64_t attn_block() const { return 2 * qd_s * h + (bias ? qd_s : 0) + attn_kv_part(); }
  int64_t mlp_block() const { return W_mlp / T; }
  int64_t vocab_block() const { return parts * V_p / T * h; }
  int64_t param_elements() const { return L * (attn_block() + mlp_block()) + vocab_block() + norms; }
};

inline Sizes sizes_of(const ModelConfig& c, const LayoutSpec& lay, const RunShape& s) {
  Sizes z;
  z.L = c.num_hidden_layers;
  z.h = c.hidden_size;
  z.qd = c.q_dim();
  z.kvd = c.kv_dim();
  z.d = c.head_dim;
  z.bias = c.attention_qkv_bias;
  z.qk_norm = c.qk_norm;
  z.nh = c.num_attention_heads;
  z.I = c.intermediate_size;
  z.V = c.vocab_size;
  z.parts = c.tie_word_embeddings ? 1 : 2;
  z.B = s.micro_batch;
  z.S = s.seq_len;
  z.BS = z.B * z.S;
  const bool folded = lay.kind == Kind::tsp;
  z.T = lay.tp;
  z.Sg = folded ? lay.tp : lay.sp;
  z.N_a = z.BS / z.Sg;
  z.N_t = lay.sequence_parallel ? z.N_a / z.T : z.N_a;
  z.V_p = (z.V + z.T - 1) / z.T * z.T;
  const int64_t nkv = c.num_key_value_heads;
  z.kv_replicas = nkv < z.T ? z.T / nkv : 1;
  z.qd_s = z.qd / z.T;
  z.kvd_s = z.kv_replicas > 1 ? z.d : z.kvd / z.T;
  z.W_attn = (2 * z.qd + 2 * z.kvd) * z.h;
  z.W_mlp = 3 * z.h * z.I;
  z.norms = (2 * z.L + 1) * z.h + (z.qk_norm ? 2 * z.L * z.d : 0);
  return z;
}

// The recompute mode a layout runs with when the policy says "runtime".
Recompute runtime_recompute(Kind k);

// Bytes a ring all-reduce of n bytes over P ranks counts as received (src/comm/communicator.h).
inline int64_t all_reduce_recv(int64_t P, int64_t n) {
  return 2 * (P - 1) * n / P;
}

Memory predict_memory(const Sizes& z, const LayoutSpec& lay, const Policy& pol, Recompute rc);
CommByLabel predict_comm(const Sizes& z, const LayoutSpec& lay, const Policy& pol, Recompute rc);
double predict_flops(const Sizes& z, const LayoutSpec& lay, Recompute rc);

}  // namespace tsp::plan
