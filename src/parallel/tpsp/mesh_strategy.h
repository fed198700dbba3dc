// Megatron tensor parallelism, context-parallel sequence parallelism and the 2-D TP×SP mesh as one engine
// (docs/layouts.md): "tp" is the mesh with Σ = 1, "sp" the mesh with T = 1, "tpsp" T×Σ. TP rank t holds
// shard t of every weight matrix (head group t, intermediate shard t, vocabulary rows t: ShardSpec::folded
// with D = T) and the whole group's tokens (or 1/T of them under Megatron-SP, --sequence-parallel); SP group
// s holds zigzag positions s of every sequence and a full copy of the TP shard. Each block's communication
// and its adjoint live in its file: tp_tokens (the TP all-reduces / Megatron-SP gathers), mesh_attention (the
// SP K/V all-gather), mesh_mlp, mesh_vocab (vocabulary-parallel embedding and cross entropy).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "parallel/kv_replication.h"
#include "parallel/strategy.h"
#include "parallel/tpsp/mesh_attention.h"
#include "parallel/tpsp/mesh_layout.h"
#include "parallel/tpsp/mesh_mlp.h"
#include "parallel/tpsp/mesh_vocab.h"
#include "parallel/tpsp/tp_tokens.h"

namespace tsp {

struct MeshShape {
  int tp = 1, sp = 1;  // T and Σ; T·Σ = ranks of the replica
  bool sequence_parallel = false;
};

template <class T>
class MeshStrategy : public Strategy<T> {
 public:
  // Collective over comm (splits it into the TP and SP axes); the shape must already be valid for it.
  MeshStrategy(std::string name, Communicator& comm, MeshShape shape);
  MeshStrategy(const MeshStrategy&) = delete;
  MeshStrategy& operator=(const MeshStrategy&) = delete;

  std::string name() const override { return name_; }
  int ranks() const override { return comm_.size(); }
  Communicator* comm() override { return &comm_; }
  void validate(const ModelConfig& c, int64_t batch, int64_t seq_len) const override;
  ShardSpec shard_spec(const ModelConfig& c) const override;
  int64_t seq_len_multiple() const override;
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

  const MeshShape& shape() const { return shape_; }

 private:
  void require_prepared(const ModelParams<T>& p) const;
  // Megatron-SP is on only where there is a TP axis to shard over.
  bool seq_parallel() const { return shape_.sequence_parallel && shape_.tp > 1; }

  std::string name_;
  Communicator& comm_;
  MeshShape shape_;
  int t_ = 0, s_ = 0;  // my TP and SP indices
  Communicator tp_comm_, sp_comm_;
  MeshLayout layout_;
  const ModelParams<T>* prepared_for_ = nullptr;
  int kv_replicas_ = 1;
  std::unique_ptr<Communicator> kv_holders_;  // TP ranks holding my KV head (null without replication)
  GradWire<T> grad_wire_;                     // the replicated gradients' sums (grad_wire.h)
  // Row i of the gathered local rows belongs at row gather_dest_[i] of [B, S].
  std::vector<int64_t> gather_dest_;
  TpTokens<T> tokens_;
  MeshAttention<T> attn_;
  MeshMlp<T> mlp_;
  MeshVocab<T> vocab_;
};

}  // namespace tsp
