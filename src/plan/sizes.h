// Shard and token sizes of one layout, shared by the memory, communication and FLOP models (internal).
#pragma once

#include <cstdint>

#include "model/config.h"
#include "plan/plan.h"

namespace tsp::plan {

struct Sizes {
  int64_t L, h, qd, kvd, nh, I, V, parts;  // model (parts: 1 tied embedding/LM head, 2 untied)
  int64_t B, S, BS;                        // micro-batch, sequence, tokens per replica per step
  int64_t T;    // weight shard factor: heads, intermediate and vocabulary split T ways (D for tsp)
  int64_t Sg;   // sequence shard factor of attention/MLP tokens (Σ for sp/tpsp, D for tsp)
  int64_t N_a;  // tokens per rank inside the attention and MLP blocks
  int64_t N_t;  // tokens per rank in the transformer's residual stream (N_a / T with sequence parallelism)
  int64_t V_p;  // vocabulary padded to a multiple of T
  int64_t W_attn, W_mlp;  // per layer, whole model, elements
  int64_t norms;          // (2L+1)·h replicated norm weights
  // Elements of this rank's parameter shard, per block kind.
  int64_t attn_block() const { return W_attn / T; }
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
  z.W_attn = (2 * z.qd + 2 * z.kvd) * z.h;
  z.W_mlp = 3 * z.h * z.I;
  z.norms = (2 * z.L + 1) * z.h;
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
