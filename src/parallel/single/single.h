// The single-device layout: every weight and every token on one rank, no communication. It is the reference
// every parallel layout is checked against (tsp check).
#pragma once

#include <vector>

#include "parallel/blocks.h"
#include "parallel/stash.h"
#include "parallel/strategy.h"

namespace tsp {

template <class T>
class SingleStrategy : public Strategy<T> {
 public:
  std::string name() const override { return "single"; }
  int ranks() const override { return 1; }
  Communicator* comm() override { return nullptr; }
  void validate(const ModelConfig& c, int64_t batch, int64_t seq_len) const override;
  ShardSpec shard_spec(const ModelConfig& c) const override { return ShardSpec::full(c); }
  std::vector<int64_t> local_positions(int64_t seq_len) const override;
  void prepare(ModelParams<T>& p, int64_t batch, int64_t seq_len) override;

  void embed_forward(ModelParams<T>& p, const int32_t* tokens, T* x) override;
  void embed_backward(ModelParams<T>& p, const int32_t* tokens, const T* dx) override;
  void attention_forward(ModelParams<T>& p, int layer, const T* u, T* y) override;
  void attention_backward(ModelParams<T>& p, int layer, const T* u, const T* dy, T* du) override;
  void mlp_forward(ModelParams<T>& p, int layer, const T* u, T* y) override;
  void mlp_backward(ModelParams<T>& p, int layer, const T* u, const T* dy, T* du) override;
  double head_forward(ModelParams<T>& p, const T* u, const int32_t* targets, int32_t* argmax) override;
  void head_backward(ModelParams<T>& p, const T* u, const int32_t* targets, T scale, T* du) override;
  void head_logits(ModelParams<T>& p, const T* u, T* logits) override;
  void sum_over_tokens(double*, int, const char*) override {}
  void sum_over_shards(double*, int, const char*) override {}
  void reduce_replicated_grads(ModelParams<T>&) override {}
  void gather_token_rows(const T* local, T* full, int64_t cols) override;
  std::unique_ptr<Decoder<T>> make_decoder(ModelParams<T>& p, const DecodeOptions& o) override;

 private:
  // Saved per layer (slot = layer; bf16 under the bf16 policy, parallel/stash.h): attention's post-RoPE q
  // and k, v and o; q and k before their per-head norms (models with q/k norms only); the MLP's gate and up
  // projections. The log-sum-exp of every head is a statistic: fp32 (saved_lse_).
  struct Saved {
    Stash<T> q, k, v, o, q_pre, k_pre, g, up;
  };
  AttnShardShape shape_;
  kernels::AttentionShape attn_;
  kernels::RopeTable rope_;
  int64_t batch_ = 0, seq_ = 0, n_ = 0;
  std::vector<int64_t> pos_seq_, pos_tok_;
  Saved saved_;
  std::vector<Buffer<T>> saved_lse_;
  Buffer<T> lse_, loss_, run_max_, run_sum_, target_logit_;
  // Transient: gradients of q, k, v, o; MLP scratch; logits.
  Buffer<T> dq_, dk_, dv_, do_, act_, dact_, dg_, dup_, logits_, dlogits_;
};

}  // namespace tsp
