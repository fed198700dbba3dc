#include "parallel/tsp/tsp.h"

#include <algorithm>
#include <numeric>
#include <type_traits>

#include "core/check.h"
#include "core/precision.h"
#include "kernels/matmul_precision.h"
#include "parallel/layout.h"
#include "parallel/tsp/decode.h"

namespace tsp {

TspLayout make_tsp_layout(Communicator& comm, int64_t batch, int64_t seq_len) {
  TspLayout L;
  L.comm = &comm;
  L.D = comm.size();
  L.p = comm.rank();
  L.batch = batch;
  L.seq_len = seq_len;
  L.per_seq = seq_len / L.D;
  L.n = batch * L.per_seq;
  L.seq_positions = zigzag_positions(seq_len, L.D, L.p);
  L.token_positions.resize(size_t(L.n));
  for (int64_t i = 0; i < L.n; ++i) L.token_positions[size_t(i)] = L.seq_positions[size_t(i % L.per_seq)];
  L.key_positions.resize(size_t(seq_len));
  std::iota(L.key_positions.begin(), L.key_positions.end(), int64_t(0));
  return L;
}

template <class T>
void require_weight_wire(const TspOptions& o) {
  // The bf16 policy's weights are bf16 already: their shards travel as they are held.
  if (!o.weight_comm_bf16 || bf16_storage<T>()) return;
  TSP_REQUIRE(
      (std::is_same_v<T, float>),
      "--weight-comm-dtype bf16 narrows float32 weights; it needs --dtype float32 (this run is float64)");
  TSP_REQUIRE(
      kernels::matmul_precision() == kernels::MatmulPrecision::bf16,
      "--weight-comm-dtype bf16 needs --matmul-precision bf16 (got {}): only bf16 products consume the "
      "rounded shards without changing the model's products",
      kernels::to_string(kernels::matmul_precision()));
}
template void require_weight_wire<float>(const TspOptions&);
template void require_weight_wire<double>(const TspOptions&);

template <class T>
TspStrategy<T>::TspStrategy(Communicator& comm, TspOptions opts) : comm_(comm), opts_(opts) {}

template <class T>
void TspStrategy<T>::validate(const ModelConfig& c, int64_t batch, int64_t seq_len) const {
  TSP_REQUIRE(batch > 0, "--batch must be positive, got {}", batch);
  c.require_sequence_length(seq_len, fmt::format("--seq-len {}", seq_len));
  require_zigzag_divisible(seq_len, comm_.size(), name());
  // Heads and intermediate channels must split into D equal shards, KV heads too or be replicated.
  (void)shard_spec(c);
}

template <class T>
ShardSpec TspStrategy<T>::shard_spec(const ModelConfig& c) const {
  return ShardSpec::folded(c, comm_.size(), comm_.rank(), name());
}

template <class T>
std::vector<int64_t> TspStrategy<T>::local_positions(int64_t seq_len) const {
  return zigzag_positions(seq_len, comm_.size(), comm_.rank());
}

template <class T>
void TspStrategy<T>::prepare(ModelParams<T>& p, int64_t batch, int64_t seq_len) {
  if (prepared_for_ == &p && layout_.batch == batch && layout_.seq_len == seq_len) return;
  const ModelConfig& c = p.config();
  validate(c, batch, seq_len);
  require_weight_wire<T>(opts_);
  const ShardSpec want = shard_spec(c);
  const ShardSpec& have = p.spec();
  TSP_CHECK(
      have.q_heads == want.q_heads && have.kv_heads == want.kv_heads &&
          have.intermediate == want.intermediate && have.vocab == want.vocab,
      "TspStrategy on rank {} of {}: the parameters hold a different shard than ShardSpec::folded(config, "
      "{}, {}) (build them with strategy.shard_spec(config))",
      comm_.rank(), comm_.size(), comm_.size(), comm_.rank());
  // Release the previous shape's buffers before allocating the new ones, so the peak never holds both.
  attn_ = TspAttention<T>();
  mlp_ = TspMlpRing<T>();
  vocab_ = TspVocabRing<T>();

  layout_ = make_tsp_layout(comm_, batch, seq_len);
  const TspLayout& L = layout_;

  gather_dest_.resize(size_t(batch * seq_len));
  for (int r = 0; r < L.D; ++r) {
    const std::vector<int64_t> pos = zigzag_positions(seq_len, L.D, r);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t j = 0; j < L.per_seq; ++j)
        gather_dest_[size_t((r * batch + b) * L.per_seq + j)] = b * seq_len + pos[size_t(j)];
  }

  const int replicas = ShardSpec::kv_replicas_for(c, L.D);
  if (replicas != kv_replicas_) {
    kv_holders_ = kv_holder_group(comm_, replicas);
    kv_replicas_ = replicas;
  }
  const bool wire16 = opts_.weight_comm_bf16 || bf16_storage<T>();
  // The norms' sum, then the KV heads' (posted together), one after the other through one mirror.
  grad_wire_.prepare(std::max(p.grad(p.norm_block()).size(),
                              kv_replicas_ > 1 ? replicated_kv_grad_elements(p) : int64_t(0)));
  attn_.prepare(L, p, opts_.keep_gathered_kv, true, wire16);
  mlp_.prepare(L, p, true, wire16);
  vocab_.prepare(L, p, true, wire16);
  prepared_for_ = &p;
}

template <class T>
void TspStrategy<T>::require_prepared(const ModelParams<T>& p) const {
  TSP_CHECK(prepared_for_ == &p, "TspStrategy: prepare() was not called for these parameters");
}

template <class T>
void TspStrategy<T>::embed_forward(ModelParams<T>& p, const int32_t* tokens, T* x) {
  require_prepared(p);
  vocab_.embed_forward(p, tokens, x);
}

template <class T>
void TspStrategy<T>::embed_backward(ModelParams<T>& p, const int32_t* tokens, const T* dx) {
  require_prepared(p);
  vocab_.embed_backward(p, tokens, dx);
}

template <class T>
void TspStrategy<T>::attention_forward(ModelParams<T>& p, int layer, const T* u, T* y) {
  require_prepared(p);
  attn_.forward(p, layer, u, y);
}

template <class T>
void TspStrategy<T>::attention_backward(ModelParams<T>& p, int layer, const T* u, const T* dy, T* du) {
  require_prepared(p);
  attn_.backward(p, layer, u, dy, du);
}

template <class T>
void TspStrategy<T>::mlp_forward(ModelParams<T>& p, int layer, const T* u, T* y) {
  require_prepared(p);
  mlp_.forward(p, layer, u, y);
}

template <class T>
void TspStrategy<T>::mlp_backward(ModelParams<T>& p, int layer, const T* u, const T* dy, T* du) {
  require_prepared(p);
  mlp_.backward(p, layer, u, dy, du);
}

template <class T>
double TspStrategy<T>::head_forward(ModelParams<T>& p, const T* u, const int32_t* targets, int32_t* argmax) {
  require_prepared(p);
  return vocab_.head_forward(p, u, targets, argmax);
}

template <class T>
void TspStrategy<T>::head_backward(ModelParams<T>& p, const T* u, const int32_t* targets, T scale, T* du) {
  require_prepared(p);
  vocab_.head_backward(p, u, targets, scale, du);
}

template <class T>
void TspStrategy<T>::head_logits(ModelParams<T>& p, const T* u, T* logits) {
  require_prepared(p);
  vocab_.head_logits(p, u, logits);
}

template <class T>
void TspStrategy<T>::sum_over_tokens(double* v, int n, const char* label) {
  comm_.all_reduce(label, v, int64_t(n));
}

template <class T>
void TspStrategy<T>::sum_over_shards(double* v, int n, const char* label) {
  comm_.all_reduce(label, v, int64_t(n));
}

template <class T>
void TspStrategy<T>::reduce_replicated_grads(ModelParams<T>& p) {
  // Every rank computed the norms' gradients (q/k norms included) from its own tokens; the full gradient is
  // their sum.
  Buffer<T>& g = p.grad(p.norm_block());
  grad_wire_.all_reduce(comm_, "norm.grad_allreduce", g.data(), g.size());
  // Each holder of a replicated KV head received, as owner, the gradient from its own query heads only.
  if (kv_holders_) sum_replicated_kv_grads(p, *kv_holders_, "attn.kv_head_grad_allreduce", grad_wire_);
}

template <class T>
void TspStrategy<T>::gather_token_rows(const T* local, T* full, int64_t cols) {
  TSP_CHECK(!gather_dest_.empty(), "TspStrategy::gather_token_rows before prepare()");
  const TspLayout& L = layout_;
  comm_.all_gather("gather.token_rows", local, full, L.n * cols);
  // full now holds [D, B, per_seq] rows in storage order; put every row at its original position by
  // following the permutation's cycles in place (no second [B·S, cols] buffer).
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
std::unique_ptr<Decoder<T>> TspStrategy<T>::make_decoder(ModelParams<T>& p, const DecodeOptions& o) {
  const ShardSpec want = shard_spec(p.config());
  TSP_CHECK(p.spec().q_heads == want.q_heads && p.spec().kv_heads == want.kv_heads &&
                p.spec().intermediate == want.intermediate && p.spec().vocab == want.vocab,
            "TspStrategy::make_decoder on rank {}: the parameters hold a different shard", comm_.rank());
  require_weight_wire<T>(opts_);
  return std::make_unique<TspDecode<T>>(p, comm_, o.kv_layout, opts_.weight_comm_bf16 || bf16_storage<T>());
}

template class TspStrategy<float>;
template class TspStrategy<double>;

}  // namespace tsp
