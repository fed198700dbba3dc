// The seam between the model and a parallel layout. The transformer (model/transformer.h) is the same code
// for every layout: it owns the residual stream of the tokens this rank holds and the RMSNorms (which are
// per-token and need no communication), and calls a Strategy for the blocks whose weights or tokens are
// distributed: embedding, attention, MLP, and the LM head with its loss. Each block takes the normalised
// input u of the local tokens ([N, h], N = batch * local tokens per sequence) and returns the block's output
// for the same tokens; whatever communication that needs (and its adjoint in the backward) lives inside.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "model/config.h"
#include "model/params.h"
#include "parallel/decode.h"
#include "parallel/layout.h"

namespace tsp {

template <class T>
class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual std::string name() const = 0;
  // Ranks that cooperate on one model replica (1 for single).
  virtual int ranks() const = 0;
  // The communicator the strategy talks on (null for single).
  virtual Communicator* comm() = 0;

  // Rejects shapes the layout cannot run (UsageError, identical on every rank, before any communication).
  virtual void validate(const ModelConfig& c, int64_t batch, int64_t seq_len) const = 0;
  // Which parameter shard this rank holds.
  virtual ShardSpec shard_spec(const ModelConfig& c) const = 0;
  // Sequence lengths must be a multiple of this (e.g. 2D for the zigzag layout); eval and generate pad to it.
  virtual int64_t seq_len_multiple() const { return 1; }
  // Global positions, within one sequence, of the tokens this rank holds, in storage order.
  virtual std::vector<int64_t> local_positions(int64_t seq_len) const = 0;
  // Fixes the step shape and allocates the strategy's buffers once for it (reused across steps).
  virtual void prepare(ModelParams<T>& p, int64_t batch, int64_t seq_len) = 0;

  // x[N, h] = embedding of the local tokens.
  virtual void embed_forward(ModelParams<T>& p, const int32_t* tokens, T* x) = 0;
  virtual void embed_backward(ModelParams<T>& p, const int32_t* tokens, const T* dx) = 0;
  // y[N, h] = attention(u) (overwritten); backward: du += d/du, weight gradients accumulated.
  virtual void attention_forward(ModelParams<T>& p, int layer, const T* u, T* y) = 0;
  virtual void attention_backward(ModelParams<T>& p, int layer, const T* u, const T* dy, T* du) = 0;
  virtual void mlp_forward(ModelParams<T>& p, int layer, const T* u, T* y) = 0;
  virtual void mlp_backward(ModelParams<T>& p, int layer, const T* u, const T* dy, T* du) = 0;

  // Cross-entropy of the local tokens' next-token targets against the LM head applied to u (the final
  // norm's output). Returns the SUM of the local losses; argmax (may be null) gets the predicted token of
  // each local position. Saves what head_backward needs.
  virtual double head_forward(ModelParams<T>& p, const T* u, const int32_t* targets, int32_t* argmax) = 0;
  // du += d(scale * sum of local losses)/du; LM-head (and tied embedding) gradients accumulated.
  virtual void head_backward(ModelParams<T>& p, const T* u, const int32_t* targets, T scale, T* du) = 0;
  // logits[N, vocab_size] of the local tokens (materialised for eval/check only).
  virtual void head_logits(ModelParams<T>& p, const T* u, T* logits) = 0;

  // Sums values that are partial over the ranks holding different tokens (loss sums, target counts).
  virtual void sum_over_tokens(double* v, int n, const char* label) = 0;
  // Sums a per-rank value over the ranks holding different parameter shards (squared gradient norms).
  virtual void sum_over_shards(double* v, int n, const char* label) = 0;
  // Sums the gradients of replicated parameters (the norm block) across the ranks that share them.
  virtual void reduce_replicated_grads(ModelParams<T>& p) = 0;
  // rows_full[B*S, cols] on every rank, in original token order, from each rank's local rows [N, cols].
  virtual void gather_token_rows(const T* local, T* full, int64_t cols) = 0;
  // The inference side of the layout — prefill, KV cache, decode (parallel/decode.h) — on parameters built
  // with shard_spec(); throws UsageError for options the layout cannot serve with.
  virtual std::unique_ptr<Decoder<T>> make_decoder(ModelParams<T>& p, const DecodeOptions& o) = 0;
  // Names the phase ("forward", "backward", ...) under which communication is counted.
  virtual void set_phase(const std::string& phase) {
    if (comm()) comm()->set_phase(phase);
  }

  // --- Data parallelism (parallel/dp/): the defaults describe a layout that is its own single replica. ---
  // Model replicas (each holds the whole model in this layout) and this rank's replica index.
  virtual int replicas() const { return 1; }
  virtual int replica() const { return 0; }
  // The sequences of the global batch [batch, S] that this rank's replica processes.
  virtual Range batch_range(int64_t batch) const { return {0, batch}; }
  // The communicator over the ranks of this rank's replica (checkpoints gather shards over it).
  virtual Communicator* model_comm() { return comm(); }
  // ZeRO-1: the elements [begin, end) of a parameter block of `numel` elements whose optimizer state and
  // update this rank owns (all of them without optimizer sharding).
  virtual Range optimizer_range(int64_t numel) const { return {0, numel}; }
  // Sums a per-rank value over the ranks that own different optimizer partitions (no-op without ZeRO-1).
  virtual void sum_over_optimizer_partitions(double* v, int n, const char* label) {
    (void)v, (void)n, (void)label;
  }
  // ZeRO-1: fills every partition of a whole block (numel elements, this rank's partition current) from the
  // partition's owner — the parameters after an optimizer step, or the moments for a checkpoint. No-op
  // without optimizer sharding.
  virtual void gather_partitions(T* block, int64_t numel, const char* label) {
    (void)block, (void)numel, (void)label;
  }
};

}  // namespace tsp
