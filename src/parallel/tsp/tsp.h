// TSP: folded tensor and sequence parallelism on one axis of D ranks (tsp-spec.md). Rank p holds shard p of
// every weight matrix (head group p, intermediate channels p, vocabulary rows p; norms replicated) AND the
// tokens of zigzag chunks p and 2D-1-p of every sequence. Weights move, activations stay: attention shards
// are broadcast by their owners (attention.h), MLP and vocabulary shards ride a ring (mlp_ring.h,
// vocab_ring.h), and the only all-reduces are the loss sums and the replicated norms' gradients (and, when
// D exceeds the KV heads, the gradients of each replicated KV head over its D / n_kv holders:
// parallel/kv_replication.h).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "parallel/kv_replication.h"
#include "parallel/strategy.h"
#include "parallel/tsp/attention.h"
#include "parallel/tsp/mlp_ring.h"
#include "parallel/tsp/ring.h"
#include "parallel/tsp/vocab_ring.h"

namespace tsp {

struct TspOptions {
  // Keep the gathered K/V of every layer and head group from the forward (activations, 2·B·S·kv_dim per
  // layer) instead of all-gathering them again in the backward.
  bool keep_gathered_kv = false;
  // --weight-comm-dtype bf16: the weight shards (attention broadcasts, MLP and vocabulary rings) travel as
  // bf16, half the bytes and half the buffers; gradients still travel in fp32. Float models under
  // --matmul-precision bf16 only, where the products round the weights to the same bits anyway (ring.h).
  bool weight_comm_bf16 = false;
};

// UsageError unless a bf16 weight wire is allowed for element type T now (float, bf16 products).
template <class T>
void require_weight_wire(const TspOptions& o);

template <class T>
class TspStrategy : public Strategy<T> {
 public:
  explicit TspStrategy(Communicator& comm, TspOptions opts = {});
  // The blocks keep a pointer to layout_.
  TspStrategy(const TspStrategy&) = delete;
  TspStrategy& operator=(const TspStrategy&) = delete;

  std::string name() const override { return "tsp"; }
  int ranks() const override { return comm_.size(); }
  Communicator* comm() override { return &comm_; }
  void validate(const ModelConfig& c, int64_t batch, int64_t seq_len) const override;
  ShardSpec shard_spec(const ModelConfig& c) const override;
  int64_t seq_len_multiple() const override { return 2 * int64_t(comm_.size()); }
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
  void sum_over_tokens(double* v, int n, const char* label) override;
  void sum_over_shards(double* v, int n, const char* label) override;
  void reduce_replicated_grads(ModelParams<T>& p) override;
  void gather_token_rows(const T* local, T* full, int64_t cols) override;
  std::unique_ptr<Decoder<T>> make_decoder(ModelParams<T>& p, const DecodeOptions& o) override;

  const TspOptions& options() const { return opts_; }

 private:
  void require_prepared(const ModelParams<T>& p) const;

  Communicator& comm_;
  TspOptions opts_;
  TspLayout layout_;
  const ModelParams<T>* prepared_for_ = nullptr;
  int kv_replicas_ = 1;
  std::unique_ptr<Communicator> kv_holders_;  // ranks holding my KV head (null without replication)
  GradWire<T> grad_wire_;                     // the replicated gradients' sums (grad_wire.h)
  // Row i of an all-gathered [D, B, per_seq] token block belongs at row gather_dest_[i] of [B, S].
  std::vector<int64_t> gather_dest_;
  TspAttention<T> attn_;
  TspMlpRing<T> mlp_;
  TspVocabRing<T> vocab_;
};

}  // namespace tsp
