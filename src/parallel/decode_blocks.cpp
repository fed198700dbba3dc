#include "parallel/decode_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/check.h"
#include "core/precision.h"
#include "core/trace.h"
#include "kernels/attention_decode.h"
#include "kernels/bf16.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "parallel/blocks.h"

namespace tsp {

void scan_cache(const KvSlots& slots, const DecodeBatch& batch, std::vector<int64_t>& n_slots,
                int64_t* slot_pos) {
  const int64_t n = batch.size(), stride = slots.slots();
  n_slots.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t b = batch.seq[size_t(i)], len = batch.pos[size_t(i)] + 1;
    TSP_CHECK(len <= slots.context, "decode position {} of sequence {} is outside the cache's context {}",
              len - 1, b, slots.context);
    n_slots[size_t(i)] = slots.scan(b, len);
    if (slots.parts > 1)
      for (int64_t s = 0; s < n_slots[size_t(i)]; ++s) slot_pos[i * stride + s] = slots.position(b, s);
  }
}

kernels::RopeTable decode_rope_table(const ModelConfig& c, const DecodeBatch& batch) {
  int64_t longest = 0;
  for (int64_t pos : batch.pos) longest = std::max(longest, pos + 1);
  return c.rope_table(longest);
}

template <class T>
void activation_sum(Communicator& comm, const char* label, T* x, int64_t n) {
  if constexpr (std::is_same_v<T, float>)
    if (bf16_storage<T>()) {
      // Scratch of one decode step's rows, grown once (like the products' bf16 operands, kernels/gemm.cpp).
      thread_local std::vector<uint16_t> wire;
      if (int64_t(wire.size()) < n) wire.resize(size_t(n));
      kernels::to_bf16(x, n, wire.data());
      comm.all_reduce(label, wire.data(), n);
      kernels::from_bf16(wire.data(), n, x);
      return;
    }
  comm.all_reduce(label, x, n);
}
template void activation_sum<float>(Communicator&, const char*, float*, int64_t);
template void activation_sum<double>(Communicator&, const char*, double*, int64_t);

namespace {
template <class T>
void activation_sum(Communicator* comm, const char* label, T* x, int64_t n) {
  if (group_size(comm) > 1) activation_sum(*comm, label, x, n);
}
}  // namespace

template <class T>
void prefill_last_rows(const T* u, const std::vector<int64_t>& positions, const int64_t* last, int64_t batch,
                       int64_t hidden, bool contributes, Communicator* comm, T* rows) {
  std::fill(rows, rows + batch * hidden, T(0));
  const int64_t per = int64_t(positions.size());
  if (contributes)
    for (int64_t j = 0; j < per; ++j)
      for (int64_t b = 0; b < batch; ++b)
        if (positions[size_t(j)] == last[b])
          std::copy_n(u + (b * per + j) * hidden, hidden, rows + b * hidden);
  activation_sum(comm, "prefill.last_rows_allreduce", rows, batch * hidden);
}

template <class T>
void DecodeVocab<T>::prepare(const ModelParams<T>& p, Communicator* tp, int64_t) {
  tp_ = tp;
  hidden_ = p.config().hidden_size;
  vocab_ = p.config().vocab_size;
  row_begin_ = p.spec().vocab.begin;
  shard_rows_ = p.spec().vocab.size;
  valid_rows_ = std::clamp<int64_t>(vocab_ - row_begin_, 0, shard_rows_);
}

template <class T>
void DecodeVocab<T>::embed(ModelParams<T>& p, const int32_t* tokens, int64_t n, T* x) {
  for (int64_t i = 0; i < n; ++i)
    TSP_CHECK(tokens[i] >= 0 && tokens[i] < vocab_, "token id {} is outside the vocabulary [0, {})",
              tokens[i], vocab_);
  std::memset(x, 0, sizeof(T) * size_t(n * hidden_));
  {
    TraceSpan span("decode.embed", "compute");
    kernels::embedding_forward(x, p.value(p.vocab_block()).data() + p.embed_offset(), tokens, n, hidden_,
                               row_begin_, shard_rows_);
  }
  // Each row is non-zero on exactly one rank (its token's vocabulary owner), so the sum is exact.
  activation_sum(tp_, "decode.embed_allreduce", x, n * hidden_);
}

template <class T>
void DecodeVocab<T>::logits(ModelParams<T>& p, const T* u, int64_t n, T* out) {
  TraceSpan span("decode.head", "compute");
  if (valid_rows_ > 0)
    kernels::linear_forward(out, u, p.value(p.vocab_block()).data() + p.lm_head_offset(), n, hidden_,
                            valid_rows_);
}

template <class T>
void DecodeMlp<T>::prepare(const ModelParams<T>& p, Communicator* tp, int64_t max_rows) {
  tp_ = tp;
  hidden_ = p.config().hidden_size;
  inter_ = p.spec().intermediate.size;
  for (Buffer<T>* b : {&g_, &up_, &act_}) *b = Buffer<T>(max_rows * inter_, Mem::workspace);
}

template <class T>
void DecodeMlp<T>::forward(ModelParams<T>& p, int layer, const T* u, int64_t n, T* y) {
  LayerWeights<T> w = p.layer(layer);
  {
    TraceSpan span("decode.mlp", "compute");
    mlp_shard_forward(y, g_.data(), up_.data(), act_.data(), u, w.gate, w.up, w.down, n, hidden_, inter_,
                      false);
  }
  activation_sum(tp_, "decode.mlp_out_allreduce", y, n * hidden_);
}

template <class T>
void DecodeAttention<T>::prepare(const ModelParams<T>& p, Communicator* tp, Communicator* sp,
                                 const KvSlots& slots, KvCache<T>* cache, int64_t max_rows) {
  const ModelConfig& c = p.config();
  tp_ = tp;
  sp_ = sp;
  slots_ = slots;
  cache_ = cache;
  hidden_ = c.hidden_size;
  q_heads_ = p.spec().q_heads.size;
  kv_heads_ = p.spec().kv_heads.size;
  head_dim_ = c.head_dim;
  config_ = &c;
  norm_eps_ = c.rms_norm_eps;
  TSP_CHECK(cache->width() == kv_heads_ * head_dim_ && cache->slots() == slots.slots(),
            "DecodeAttention: the cache rows ({} x {}) do not hold {} KV heads x {} slots", cache->slots(),
            cache->width(), kv_heads_, slots.slots());
  const int64_t qd = q_heads_ * head_dim_, kd = kv_heads_ * head_dim_;
  const int P = group_size(sp);
  slot_pos_ = Buffer<int64_t>(P > 1 ? max_rows * slots.slots() : 0, Mem::workspace);
  q_ = Buffer<T>(max_rows * qd, Mem::workspace);
  k_ = Buffer<T>(max_rows * kd, Mem::workspace);
  v_ = Buffer<T>(max_rows * kd, Mem::workspace);
  o_ = Buffer<T>(max_rows * qd, Mem::workspace);
  lse_ = Buffer<T>(P > 1 ? 0 : max_rows * q_heads_, Mem::workspace);
  parts_ = Buffer<T>(P > 1 ? P * max_rows * (qd + q_heads_) : 0, Mem::communication);
}

template <class T>
void DecodeAttention<T>::begin_step(const DecodeBatch& batch) {
  batch_ = &batch;
  scan_cache(slots_, batch, n_slots_, slot_pos_.data());
  rope_ = decode_rope_table(*config_, batch);
}

template <class T>
void DecodeAttention<T>::forward(ModelParams<T>& p, int layer, const T* u, T* y) {
  TSP_CHECK(batch_, "DecodeAttention::forward before begin_step");
  const DecodeBatch& batch = *batch_;
  const int64_t n = batch.size(), d = head_dim_, qd = q_heads_ * d, kd = kv_heads_ * d;
  const int P = group_size(sp_), me = group_rank(sp_);
  LayerWeights<T> w = p.layer(layer);
  const int64_t block = n * (qd + q_heads_);
  T* o = P > 1 ? parts_.data() + me * block : o_.data();
  T* lse = P > 1 ? o + n * qd : lse_.data();
  {
    TraceSpan span("decode.attn", "compute");
    qkv_forward(q_.data(), k_.data(), v_.data(), u, attn_projections(w), batch.pos.data(),
                AttnShardShape{n, hidden_, q_heads_, kv_heads_, d, norm_eps_}, rope_);
    // The new token's key and value go to the rank caching its position (every rank of a head group when
    // positions are not split).
    for (int64_t i = 0; i < n; ++i) {
      const int64_t b = batch.seq[size_t(i)], pos = batch.pos[size_t(i)];
      if (slots_.owner(b, pos) == me)
        cache_->store(layer, b, slots_.slot(b, pos), 1, k_.data() + i * kd, v_.data() + i * kd, kd, 0, kd);
    }
    const kernels::DecodeAttentionShape as{q_heads_, kv_heads_, d, cache_->width(), cache_->seq_stride()};
    cache_->with_layer(layer, [&](const auto* k, const auto* v) {
      kernels::attention_decode(o, lse, q_.data(), k, v, n, batch.seq.data(), batch.pos.data(),
                                n_slots_.data(), P > 1 ? slot_pos_.data() : nullptr, slots_.slots(), as,
                                1.0 / std::sqrt(double(d)));
    });
  }
  if (P > 1) {
    sp_->all_gather("decode.attn_partial_allgather", o, parts_.data(), block);
    TraceSpan span("decode.attn_merge", "compute");
    kernels::attention_merge(o_.data(), d, static_cast<T*>(nullptr), parts_.data(), block,
                             parts_.data() + n * qd, block, P, n * q_heads_, d);
  }
  {
    TraceSpan span("decode.attn", "compute");
    kernels::linear_forward(y, o_.data(), w.wo, n, qd, hidden_);
  }
  activation_sum(tp_, "decode.attn_out_allreduce", y, n * hidden_);
}

template void prefill_last_rows<float>(const float*, const std::vector<int64_t>&, const int64_t*, int64_t,
                                       int64_t, bool, Communicator*, float*);
template void prefill_last_rows<double>(const double*, const std::vector<int64_t>&, const int64_t*, int64_t,
                                        int64_t, bool, Communicator*, double*);
template class DecodeVocab<float>;
template class DecodeVocab<double>;
template class DecodeMlp<float>;
template class DecodeMlp<double>;
template class DecodeAttention<float>;
template class DecodeAttention<double>;

}  // namespace tsp
