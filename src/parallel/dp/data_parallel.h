// Data parallelism around any layout: the job's ranks form N replicas of one layout (replica r = world ranks
// [r·M, (r+1)·M)), each replica takes its own B/N sequences of the global batch, and the gradients are summed
// across replicas so that every replica applies the same update — the global batch's gradient, because the
// loss is normalised by the global target count. The replicas' axis is a second communicator: rank m of
// every replica forms DP group m (Megatron's ordering, model axis innermost so it stays inside a node).
//
// ZeRO-1 (Rajbhandari et al., 2020) shards the AdamW state across the replicas: every parameter block is cut
// into N equal chunks (padded), gradients are reduce-scattered (replica r receives the sum of chunk r), r
// updates chunk r only, and the updated chunks are all-gathered. The traffic equals the all-reduce's
// (reduce-scatter + all-gather) while optimizer memory drops to 1/N.
//
// Communication labels (on the DP axis): dp.grad_allreduce (one all_reduce per parameter block, posted
// non-blocking and waited together), or with ZeRO-1 dp.grad_reducescatter and dp.param_allgather (one per
// block, over the padded chunk); dp.loss_allreduce (the loss sums); dp.token_rows_allgather (eval logits).
#pragma once

#include <memory>
#include <string>

#include "core/check.h"
#include "core/memory.h"
#include "parallel/grad_wire.h"
#include "parallel/registry.h"
#include "parallel/wire_buffer.h"

namespace tsp {

template <class T>
class DataParallel : public Strategy<T> {
 public:
  // world is split into the replicas' model communicators and the DP groups; `name` is built on the former.
  DataParallel(const std::string& name, Communicator& world, const StrategyOptions& opts);

  std::string name() const override { return inner_->name(); }
  int ranks() const override { return inner_->ranks(); }
  Communicator* comm() override { return model_.get(); }
  void validate(const ModelConfig& c, int64_t batch, int64_t seq_len) const override;
  ShardSpec shard_spec(const ModelConfig& c) const override { return inner_->shard_spec(c); }
  int64_t seq_len_multiple() const override { return inner_->seq_len_multiple(); }
  std::vector<int64_t> local_positions(int64_t seq_len) const override {
    return inner_->local_positions(seq_len);
  }
  void prepare(ModelParams<T>& p, int64_t batch, int64_t seq_len) override;

  void embed_forward(ModelParams<T>& p, const int32_t* tokens, T* x) override {
    inner_->embed_forward(p, tokens, x);
  }
  void embed_backward(ModelParams<T>& p, const int32_t* tokens, const T* dx) override {
    inner_->embed_backward(p, tokens, dx);
  }
  void attention_forward(ModelParams<T>& p, int layer, const T* u, T* y) override {
    inner_->attention_forward(p, layer, u, y);
  }
  void attention_backward(ModelParams<T>& p, int layer, const T* u, const T* dy, T* du) override {
    inner_->attention_backward(p, layer, u, dy, du);
  }
  void mlp_forward(ModelParams<T>& p, int layer, const T* u, T* y) override {
    inner_->mlp_forward(p, layer, u, y);
  }
  void mlp_backward(ModelParams<T>& p, int layer, const T* u, const T* dy, T* du) override {
    inner_->mlp_backward(p, layer, u, dy, du);
  }
  double head_forward(ModelParams<T>& p, const T* u, const int32_t* targets, int32_t* argmax) override {
    return inner_->head_forward(p, u, targets, argmax);
  }
  void head_backward(ModelParams<T>& p, const T* u, const int32_t* targets, T scale, T* du) override {
    inner_->head_backward(p, u, targets, scale, du);
  }
  void head_logits(ModelParams<T>& p, const T* u, T* logits) override { inner_->head_logits(p, u, logits); }

  void sum_over_tokens(double* v, int n, const char* label) override;
  void sum_over_shards(double* v, int n, const char* label) override { inner_->sum_over_shards(v, n, label); }
  void reduce_replicated_grads(ModelParams<T>& p) override;
  void gather_token_rows(const T* local, T* full, int64_t cols) override;
  void set_phase(const std::string& phase) override;
  std::unique_ptr<Decoder<T>> make_decoder(ModelParams<T>&, const DecodeOptions&) override {
    throw UsageError(
        fmt::format("--dp {}: inference runs one model replica; batched requests share it "
                    "(data parallelism is for training)",
                    replicas()));
  }

  int replicas() const override { return dp_->size(); }
  int replica() const override { return replica_; }
  Range batch_range(int64_t batch) const override;
  Communicator* model_comm() override { return model_.get(); }
  Range optimizer_range(int64_t numel) const override;
  void sum_over_optimizer_partitions(double* v, int n, const char* label) override;
  void gather_partitions(T* block, int64_t numel, const char* label) override;

 private:
  int64_t chunk(int64_t numel) const { return (numel + dp_->size() - 1) / dp_->size(); }

  std::unique_ptr<Communicator> model_, dp_;
  std::unique_ptr<Strategy<T>> inner_;
  int replica_ = 0;
  bool zero1_ = false;
  int64_t local_batch_ = 0, seq_len_ = 0;
  // ZeRO-1: one block padded to N chunks (send side of the reduce-scatter, receive side of the all-gather)
  // and one chunk, sized for the largest block; the reduce-scatter views them in bf16 under
  // --grad-reduce-dtype bf16 (wire_buffer.h).
  WireBuffer<T> padded_, chunk_;
  // Without ZeRO-1: the gradient all-reduces (grad_wire.h).
  GradWire<T> grad_wire_;
};

template <class T>
std::unique_ptr<Strategy<T>> make_data_parallel(const std::string& name, Communicator& world,
                                                const StrategyOptions& opts);

}  // namespace tsp
