// The parameters a rank holds, described in one vocabulary for every layout: each weight is either sharded
// (this rank holds one block of the HF tensor, placed by a ShardSpec) or replicated. Storage is grouped in
// blocks that travel together in TSP's schedules:
//   attention block of layer l: [Wq_s | Wo_s | bq_s | Wk_s | Wv_s | bk_s | bv_s]
//                               (packed: one broadcast moves the whole shard; the biases are Qwen2's and
//                               absent otherwise; the key/value part comes last, so that a replicated KV head
//                               is one contiguous range)
//   MLP block of layer l:       [W_gate_s | W_up_s | W_down_s] (packed: one ring step moves the whole shard)
//   vocabulary block:           [embed_s | lm_head_s]           (lm_head_s absent when tied)
//   norm block (replicated):    [attn_norm_0, mlp_norm_0, ..., attn_norm_{L-1}, mlp_norm_{L-1}, final_norm,
//                                q_norm_0, k_norm_0, ..., q_norm_{L-1}, k_norm_{L-1}]  (q/k norms: Qwen3's,
//                                head_dim each, absent otherwise)
// Column shards (Wo, W_down) are stored contiguously as [h, shard] so a shard is one contiguous matrix.
// Gradients mirror the values block for block; optimizer state (train/optimizer.h) does too.
//
// KV-head replication: when a layout splits the heads D ways but the model has fewer KV heads (n_kv < D,
// D % n_kv == 0), shard p holds query heads [p·n_h/D, (p+1)·n_h/D) and the one KV head p / (D/n_kv) they
// read, as Megatron does when TP exceeds the query groups; D/n_kv ranks hold each KV head. Their gradients
// are partial sums (each holder saw only its query heads): the layout sums them over the holders
// (Strategy::reduce_replicated_grads). The first holder's copy is the primary one (TensorView::primary):
// the one counted in the gradient norm and written to a checkpoint.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/memory.h"
#include "kernels/frozen_weights.h"
#include "model/config.h"
#include "parallel/layout.h"

namespace tsp {

// Which part of every sharded weight this rank holds.
struct ShardSpec {
  Range q_heads, kv_heads, intermediate;
  Range vocab;               // rows of the padded vocabulary; rows >= vocab_size are padding (never used)
  int64_t vocab_padded = 0;  // vocab_size rounded up to a multiple of the number of vocabulary shards
  int kv_replicas = 1;       // shards holding each of my KV heads (D / n_kv under KV-head replication)
  bool kv_primary = true;    // this shard is the first of them

  // Everything (single device, or a layout with replicated weights).
  static ShardSpec full(const ModelConfig& c);
  // Shard p of D of heads, intermediate channels and vocabulary (TSP, Megatron TP). Throws UsageError unless
  // n_heads and intermediate_size divide by D and n_kv_heads divides by D or D by n_kv_heads (replication).
  static ShardSpec folded(const ModelConfig& c, int D, int p, const std::string& strategy);
  // How many shards hold each KV head when the heads are split D ways (1 unless n_kv_heads < D).
  static int kv_replicas_for(const ModelConfig& c, int D);
};

enum class Placement { sharded, replicated };

// A local block of one HF tensor inside a parameter block.
struct TensorView {
  std::string name;                 // HF tensor name, e.g. model.layers.0.self_attn.q_proj.weight
  int64_t offset = 0;               // element offset inside the block
  int64_t rows = 0, cols = 0;       // local block, row-major and contiguous
  std::vector<int64_t> full_shape;  // the HF tensor's shape (1-D for norms)
  int64_t row_begin = 0, col_begin = 0;
  int64_t valid_rows = 0;  // rows present in the HF tensor (< rows only for vocabulary padding)
  // False on every holder of a replicated KV head but the first: the same block is held, and (after the
  // gradient sum over the holders) updated, identically there; count and write it once.
  bool primary = true;
  int64_t numel() const { return rows * cols; }
  bool is_matrix() const { return full_shape.size() == 2; }
};

struct ParamBlock {
  std::string name;  // "layers.3.attn", "layers.3.mlp", "vocab", "norms"
  Placement placement = Placement::sharded;
  std::vector<TensorView> views;
  int64_t numel = 0;
};

// Element offsets of the packed attention and MLP blocks; equal on every rank for equal shards, so a block
// received from another rank is read with the same offsets.
// bq, bk, bv are -1 when the model has no attention biases. Everything from k to the end of the block is the
// key/value part (replicated across its holders under KV-head replication).
struct AttnOffsets {
  int64_t q = 0, o = 0, bq = -1, k = 0, v = 0, bk = -1, bv = -1;
};
struct MlpOffsets {
  int64_t gate = 0, up = 0, down = 0;
};

// One layer's tensors (values or gradients); bq, bk, bv (Qwen2) and q_norm, k_norm (Qwen3) are null when
// the model has none.
template <class T>
struct LayerWeights {
  T *attn_norm, *wq, *wk, *wv, *wo, *mlp_norm, *gate, *up, *down;
  T *bq = nullptr, *bk = nullptr, *bv = nullptr, *q_norm = nullptr, *k_norm = nullptr;
};

template <class T>
class ModelParams {
 public:
  ModelParams(const ModelConfig& c, const ShardSpec& spec, bool with_grads = true);

  const ModelConfig& config() const { return cfg_; }
  const ShardSpec& spec() const { return spec_; }
  const std::vector<ParamBlock>& blocks() const { return blocks_; }
  int num_blocks() const { return int(blocks_.size()); }
  int attn_block(int layer) const { return 2 * layer; }
  int mlp_block(int layer) const { return 2 * layer + 1; }
  int vocab_block() const { return 2 * int(cfg_.num_hidden_layers); }
  int norm_block() const { return vocab_block() + 1; }

  Buffer<T>& value(int block) { return values_[block]; }
  Buffer<T>& grad(int block) { return grads_[block]; }
  const Buffer<T>& value(int block) const { return values_[block]; }
  const Buffer<T>& grad(int block) const { return grads_[block]; }

  const AttnOffsets& attn_offsets() const { return attn_off_; }
  const MlpOffsets& mlp_offsets() const { return mlp_off_; }
  int64_t embed_offset() const { return 0; }
  int64_t lm_head_offset() const {
    return cfg_.tie_word_embeddings ? 0 : spec_.vocab.size * cfg_.hidden_size;
  }

  LayerWeights<T> layer(int l) { return layer_of(values_, l); }
  LayerWeights<T> layer_grad(int l) { return layer_of(grads_, l); }
  T* final_norm() { return values_[norm_block()].data() + 2 * cfg_.num_hidden_layers * cfg_.hidden_size; }
  T* final_norm_grad() { return grads_[norm_block()].data() + 2 * cfg_.num_hidden_layers * cfg_.hidden_size; }
  // Where Qwen3's q/k norms start in the norm block (2·L·head_dim elements from there; none otherwise).
  int64_t qk_norm_offset() const { return (2 * cfg_.num_hidden_layers + 1) * cfg_.hidden_size; }
  int64_t qk_norm_numel() const { return cfg_.qk_norm ? 2 * cfg_.num_hidden_layers * cfg_.head_dim : 0; }

  // Deterministic initialisation that does not depend on the sharding: every element's value is a function
  // of (seed, tensor name, global row, global column), so every layout builds the same model.
  // Matrices ~ N(0, init_std^2); norm weights = 1; biases = 0 (HF's _init_weights).
  void init(uint64_t seed, double init_std = 0.02);
  void zero_grads();

  int64_t local_numel() const;  // elements held here (values)

  // The bf16 policy (--dtype bf16, core/precision.h; float only): the model computes with a bf16 copy of
  // every value block (kernels/frozen_weights.h: registered, so every kernel reads it in place of the
  // values), counted under `parameters`.
  //   Training (with gradients): the values are the fp32 master, counted under `optimizer`; sync_bf16()
  //     rounds them into the copy — the transformer and the generator call it before they read weights, so
  //     an optimizer step, a checkpoint load or an initialisation reaches the copy.
  //   Serving (no gradients): the copy is the only storage (bf16_only()); the values are address space with
  //     no memory behind it (Buffer::address_only), which every read of a weight reaches through the copy.
  //     init() and checkpoint loading write the copy (bf16_block()); sync_bf16() has nothing to do.
  void sync_bf16();
  bool holds_bf16() const { return held_ != nullptr; }
  bool bf16_only() const { return !bf16_blocks_.empty(); }
  uint16_t* bf16_block(int block) { return bf16_blocks_[size_t(block)]; }
  int64_t bf16_bytes() const { return held_ ? held_->bytes() : 0; }

 private:
  LayerWeights<T> layer_of(std::vector<Buffer<T>>& blocks, int l);

  ModelConfig cfg_;
  ShardSpec spec_;
  std::vector<ParamBlock> blocks_;
  std::vector<Buffer<T>> values_, grads_;
  std::unique_ptr<kernels::FrozenBf16Weights> held_;  // the bf16 policy's copy (null otherwise)
  std::vector<uint16_t*> bf16_blocks_;                // serving under the policy: the copy, per block
  AttnOffsets attn_off_;
  MlpOffsets mlp_off_;
};

// A standard normal draw that depends only on its arguments (splitmix64 + Box-Muller).
double counter_normal(uint64_t seed, uint64_t stream, uint64_t index);
uint64_t name_hash(const std::string& s);

}  // namespace tsp
