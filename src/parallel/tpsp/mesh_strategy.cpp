#include "parallel/tpsp/mesh_strategy.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "core/check.h"
#include "parallel/tpsp/mesh_decode.h"

namespace tsp {

template <class T>
MeshStrategy<T>::MeshStrategy(std::string name, Communicator& comm, MeshShape shape)
    : name_(std::move(name)),
      comm_(comm),
      shape_(shape),
      t_(comm.rank() % shape.tp),
      s_(comm.rank() / shape.tp),
      tp_comm_(comm.split_shared(s_, t_)),
      sp_comm_(comm.split_shared(t_, s_)) {
  TSP_CHECK(shape.tp * shape.sp == comm.size(), "MeshStrategy: {} x {} mesh on {} ranks", shape.tp, shape.sp,
            comm.size());
}

template <class T>
int64_t MeshStrategy<T>::seq_len_multiple() const {
  // Zigzag cuts every sequence into 2Σ chunks; Megatron-SP cuts each SP group's positions into T parts.
  const int64_t zigzag = shape_.sp > 1 ? 2 * int64_t(shape_.sp) : 1;
  return seq_parallel() ? zigzag * shape_.tp : zigzag;
}

template <class T>
void MeshStrategy<T>::validate(const ModelConfig& c, int64_t batch, int64_t seq_len) const {
  TSP_REQUIRE(batch > 0, "--batch must be positive, got {}", batch);
  c.require_sequence_length(seq_len, fmt::format("--seq-len {}", seq_len));
  const int64_t m = seq_len_multiple();
  if (seq_len % m != 0) {
    const std::string why =
        shape_.sp > 1 ? fmt::format("the zigzag layout cuts each sequence into 2*{} = {} chunks (--sp {})",
                                    shape_.sp, 2 * shape_.sp, shape_.sp)
                      : std::string();
    const std::string msp =
        seq_parallel()
            ? fmt::format("{}--sequence-parallel cuts {} into {} equal parts (--tp {})",
                          why.empty() ? "" : " and ", shape_.sp > 1 ? "each chunk pair" : "each sequence",
                          shape_.tp, shape_.tp)
            : std::string();
    const int64_t below = seq_len / m * m, above = below + m;
    throw UsageError(fmt::format("--seq-len {} does not work with --strategy {} ({} x {} mesh): {}{}; {}",
                                 seq_len, name_, shape_.tp, shape_.sp, why, msp,
                                 below > 0 ? fmt::format("nearest valid lengths: {} or {}", below, above)
                                           : fmt::format("the smallest valid length is {}", m)));
  }
  // Heads and intermediate channels must split into T equal shards, KV heads too or be replicated.
  (void)shard_spec(c);
}

template <class T>
ShardSpec MeshStrategy<T>::shard_spec(const ModelConfig& c) const {
  return ShardSpec::folded(c, shape_.tp, t_, name_);
}

template <class T>
std::vector<int64_t> MeshStrategy<T>::local_positions(int64_t seq_len) const {
  return MeshLayout::local_positions_of(seq_len, shape_.sp, s_, shape_.tp, t_, seq_parallel());
}

template <class T>
void MeshStrategy<T>::prepare(ModelParams<T>& p, int64_t batch, int64_t seq_len) {
  if (prepared_for_ == &p && layout_.batch == batch && layout_.seq_len == seq_len) return;
  const ModelConfig& c = p.config();
  validate(c, batch, seq_len);
  const ShardSpec want = shard_spec(c);
  const ShardSpec& have = p.spec();
  TSP_CHECK(
      have.q_heads == want.q_heads && have.kv_heads == want.kv_heads &&
          have.intermediate == want.intermediate && have.vocab == want.vocab,
      "MeshStrategy on rank {}: the parameters hold a different shard than ShardSpec::folded(config, {}, "
      "{}) (build them with strategy.shard_spec(config))",
      comm_.rank(), shape_.tp, t_);
  // Release the previous shape's buffers before allocating the new ones, so the peak never holds both.
  tokens_ = TpTokens<T>();
  attn_ = MeshAttention<T>();
  mlp_ = MeshMlp<T>();
  vocab_ = MeshVocab<T>();

  layout_ = MeshLayout::make(&comm_, &tp_comm_, &sp_comm_, shape_.tp, t_, shape_.sp, s_, seq_parallel(),
                             batch, seq_len);
  const MeshLayout& L = layout_;

  // gather_token_rows all-gathers the local rows over the ranks holding different tokens: the SP axis, or
  // the whole mesh (rank m = s·T + t) under Megatron-SP.
  gather_dest_.clear();
  const int holders = L.seq_parallel ? comm_.size() : L.sp_size;
  for (int r = 0; r < holders; ++r) {
    const int t = L.seq_parallel ? r % L.tp_size : 0, s = L.seq_parallel ? r / L.tp_size : r;
    const std::vector<int64_t> pos =
        MeshLayout::local_positions_of(seq_len, L.sp_size, s, L.tp_size, t, L.seq_parallel);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t j : pos) gather_dest_.push_back(b * seq_len + j);
  }

  const int replicas = ShardSpec::kv_replicas_for(c, shape_.tp);
  if (replicas != kv_replicas_) {
    kv_holders_ = kv_holder_group(tp_comm_, replicas);
    kv_replicas_ = replicas;
  }
  // The replicated gradients' sums go one after the other through one mirror; the SP ones are all in
  // flight together (every block).
  int64_t all_grads = 0;
  for (int b = 0; b < p.num_blocks(); ++b) all_grads += p.grad(b).size();
  grad_wire_.prepare(std::max({sp_comm_.size() > 1 ? all_grads : int64_t(0), p.grad(p.norm_block()).size(),
                               kv_replicas_ > 1 ? replicated_kv_grad_elements(p) : int64_t(0)}));
  tokens_.prepare(L, c.hidden_size);
  attn_.prepare(L, tokens_, p);
  mlp_.prepare(L, tokens_, p);
  vocab_.prepare(L, tokens_, p);
  prepared_for_ = &p;
}

template <class T>
void MeshStrategy<T>::require_prepared(const ModelParams<T>& p) const {
  TSP_CHECK(prepared_for_ == &p, "MeshStrategy: prepare() was not called for these parameters");
}

template <class T>
void MeshStrategy<T>::embed_forward(ModelParams<T>& p, const int32_t* tokens, T* x) {
  require_prepared(p);
  vocab_.embed_forward(p, tokens, x);
}

template <class T>
void MeshStrategy<T>::embed_backward(ModelParams<T>& p, const int32_t* tokens, const T* dx) {
  require_prepared(p);
  vocab_.embed_backward(p, tokens, dx);
}

template <class T>
void MeshStrategy<T>::attention_forward(ModelParams<T>& p, int layer, const T* u, T* y) {
  require_prepared(p);
  attn_.forward(p, layer, u, y);
}

template <class T>
void MeshStrategy<T>::attention_backward(ModelParams<T>& p, int layer, const T* u, const T* dy, T* du) {
  require_prepared(p);
  attn_.backward(p, layer, u, dy, du);
}

template <class T>
void MeshStrategy<T>::mlp_forward(ModelParams<T>& p, int layer, const T* u, T* y) {
  require_prepared(p);
  mlp_.forward(p, layer, u, y);
}

template <class T>
void MeshStrategy<T>::mlp_backward(ModelParams<T>& p, int layer, const T* u, const T* dy, T* du) {
  require_prepared(p);
  mlp_.backward(p, layer, u, dy, du);
}

template <class T>
double MeshStrategy<T>::head_forward(ModelParams<T>& p, const T* u, const int32_t* targets, int32_t* argmax) {
  require_prepared(p);
  return vocab_.head_forward(p, u, targets, argmax);
}

template <class T>
void MeshStrategy<T>::head_backward(ModelParams<T>& p, const T* u, const int32_t* targets, T scale, T* du) {
  require_prepared(p);
  vocab_.head_backward(p, u, targets, scale, du);
}

template <class T>
void MeshStrategy<T>::head_logits(ModelParams<T>& p, const T* u, T* logits) {
  require_prepared(p);
  vocab_.head_logits(p, u, logits);
}

template <class T>
void MeshStrategy<T>::sum_over_tokens(double* v, int n, const char* label) {
  // Without Megatron-SP the ranks of a TP group hold the same tokens: sum over SP only, so that no token is
  // counted T times. With it every rank of the mesh holds different tokens.
  Communicator& holders = seq_parallel() ? comm_ : sp_comm_;
  if (holders.size() > 1) holders.all_reduce(label, v, int64_t(n));
}

template <class T>
void MeshStrategy<T>::sum_over_shards(double* v, int n, const char* label) {
  // Sharded blocks differ across TP and are copies across SP.
  if (tp_comm_.size() > 1) tp_comm_.all_reduce(label, v, int64_t(n));
}

template <class T>
void MeshStrategy<T>::reduce_replicated_grads(ModelParams<T>& p) {
  // Every block is replicated across SP, and each SP group computed its gradient from its own tokens: all
  // of them are summed over SP (posted together, waited together).
  if (sp_comm_.size() > 1) {
    std::vector<typename GradWire<T>::Pending> reqs;
    int64_t slot = 0;
    for (int b = 0; b < p.num_blocks(); ++b) {
      reqs.push_back(grad_wire_.iall_reduce(sp_comm_, "sp.weight_grad_allreduce", p.grad(b).data(),
                                            p.grad(b).size(), slot));
      slot += p.grad(b).size();
    }
    for (auto& r : reqs) grad_wire_.finish(sp_comm_, r);
  }
  // Under Megatron-SP each TP rank saw 1/T of its group's tokens in the norms: sum those over TP too.
  Buffer<T>& g = p.grad(p.norm_block());
  if (seq_parallel()) {
    grad_wire_.all_reduce(tp_comm_, "tp.norm_grad_allreduce", g.data(), g.size());
  } else if (tp_comm_.size() > 1 && p.qk_norm_numel() > 0) {
    // Qwen3's q/k norms act on each head: TP rank t saw its head group only, so they are partial over TP
    // even though the hidden-size norms are not.
    grad_wire_.all_reduce(tp_comm_, "tp.qk_norm_grad_allreduce", g.data() + p.qk_norm_offset(),
                          p.qk_norm_numel());
  }
  // Each TP holder of a replicated KV head computed its gradient from its own query heads only.
  if (kv_holders_) sum_replicated_kv_grads(p, *kv_holders_, "tp.kv_head_grad_allreduce", grad_wire_);
}

template <class T>
void MeshStrategy<T>::gather_token_rows(const T* local, T* full, int64_t cols) {
  TSP_CHECK(!gather_dest_.empty(), "MeshStrategy::gather_token_rows before prepare()");
  const MeshLayout& L = layout_;
  Communicator& holders = seq_parallel() ? comm_ : sp_comm_;
  if (holders.size() > 1) {
    holders.all_gather("gather.token_rows", local, full, L.n_local * cols);
  } else {
    std::memcpy(full, local, sizeof(T) * size_t(L.n_local * cols));
  }
  // Put every row at its original position by following the permutation's cycles in place.
  const size_t rows = gather_dest_.size();
  std::vector<char> placed(rows, 0);
  std::vector<T> carry(static_cast<size_t>(cols));
  for (size_t start = 0; start < rows; ++start) {
    if (placed[start]) continue;
    std::copy_n(full + int64_t(start) * cols, cols, carry.begin());
    size_t i = start;
    do {
      const size_t dest = size_t(gather_dest_[i]);
      std::swap_ranges(carry.begin(), carry.end(), full + int64_t(dest) * cols);
      placed[dest] = 1;
      i = dest;
    } while (i != start);
  }
}

template <class T>
std::unique_ptr<Decoder<T>> MeshStrategy<T>::make_decoder(ModelParams<T>& p, const DecodeOptions& o) {
  TSP_REQUIRE(!o.kv_layout_given,
              "--kv-layout chooses where TSP keeps its KV cache; --strategy {} caches KV heads over TP and "
              "positions over SP",
              name_);
  const ShardSpec want = shard_spec(p.config());
  TSP_CHECK(p.spec().q_heads == want.q_heads && p.spec().kv_heads == want.kv_heads &&
                p.spec().intermediate == want.intermediate && p.spec().vocab == want.vocab,
            "MeshStrategy::make_decoder on rank {}: the parameters hold a different shard", comm_.rank());
  return std::make_unique<MeshDecode<T>>(
      p, DecodeMesh{&comm_, &tp_comm_, &sp_comm_, shape_.tp, t_, shape_.sp, s_, seq_parallel()});
}

template class MeshStrategy<float>;
template class MeshStrategy<double>;

}  // namespace tsp
