#include "parallel/tsp/decode_sequence.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "core/trace.h"
#include "kernels/attention_decode.h"
#include "kernels/gemm.h"
#include "parallel/blocks.h"
#include "parallel/decode_blocks.h"

namespace tsp {

template <class T>
void TspSequenceAttention<T>::prepare(const ModelParams<T>& p, Communicator& comm, const KvSlots& slots,
                                      KvCache<T>* cache, int64_t max_rows) {
  const ModelConfig& c = p.config();
  comm_ = &comm;
  slots_ = slots;
  cache_ = cache;
  D_ = comm.size();
  p_ = comm.rank();
  hidden_ = c.hidden_size;
  heads_ = c.num_attention_heads;
  kv_heads_ = c.num_key_value_heads;
  head_dim_ = c.head_dim;
  heads_s_ = p.spec().q_heads.size;
  kv_heads_s_ = p.spec().kv_heads.size;
  config_ = &c;
  norm_eps_ = c.rms_norm_eps;
  kv_replicas_ = p.spec().kv_replicas;
  TSP_CHECK(
      cache->width() == kv_heads_ * head_dim_ && heads_s_ * D_ == heads_ &&
          kv_heads_s_ * D_ == kv_heads_ * kv_replicas_,
      "TspSequenceAttention: the cache rows ({}) must hold every KV head and the shards one D-th (or one "
      "replicated KV head each)",
      cache->width());
  const int64_t d = head_dim_, qd_s = heads_s_ * d, kd_s = kv_heads_s_ * d;
  slot_pos_ = Buffer<int64_t>(max_rows * slots.slots(), Mem::workspace);
  k_ = Buffer<T>(max_rows * kd_s, Mem::workspace);
  v_ = Buffer<T>(max_rows * kd_s, Mem::workspace);
  q_all_heads_ = Buffer<T>(max_rows * heads_ * d, Mem::workspace);
  o_all_ = Buffer<T>(max_rows * heads_ * d, Mem::workspace);
  lse_all_ = Buffer<T>(max_rows * heads_, Mem::workspace);
  o_ = Buffer<T>(max_rows * qd_s, Mem::workspace);
  // q of my head group is computed straight into my slot of the gather buffer.
  q_gather_ = Buffer<T>(D_ * max_rows * qd_s, Mem::communication);
  kv_send_ = Buffer<T>(max_rows * 2 * kd_s, Mem::communication);
  kv_recv_ = Buffer<T>(D_ * max_rows * 2 * kd_s, Mem::communication);
  part_send_ = Buffer<T>(D_ * max_rows * (qd_s + heads_s_), Mem::communication);
  part_recv_ = Buffer<T>(D_ * max_rows * (qd_s + heads_s_), Mem::communication);
}

template <class T>
void TspSequenceAttention<T>::begin_step(const DecodeBatch& batch) {
  batch_ = &batch;
  scan_cache(slots_, batch, n_slots_, slot_pos_.data());
  rope_ = decode_rope_table(*config_, batch);
  const int64_t n = batch.size(), kv_row = 2 * kv_heads_s_ * head_dim_;
  // Rows grouped by the rank that caches their new position, in rank order (the all_to_all_v's blocks).
  std::vector<int> owner(static_cast<size_t>(n));
  kv_send_counts_.assign(size_t(D_), 0);
  for (int64_t i = 0; i < n; ++i) {
    owner[size_t(i)] = slots_.owner(batch.seq[size_t(i)], batch.pos[size_t(i)]);
    kv_send_counts_[size_t(owner[size_t(i)])] += kv_row;
  }
  kv_send_order_.clear();
  mine_.clear();
  for (int r = 0; r < D_; ++r)
    for (int64_t i = 0; i < n; ++i)
      if (owner[size_t(i)] == r) {
        kv_send_order_.push_back(i);
        if (r == p_) mine_.push_back(i);
      }
  // Every rank computed every row for its head group, so each sends me a block for each row I cache.
  kv_recv_counts_.assign(size_t(D_), int64_t(mine_.size()) * kv_row);
}

template <class T>
void TspSequenceAttention<T>::forward(ModelParams<T>& p, int layer, const T* u, T* y) {
  TSP_CHECK(batch_, "TspSequenceAttention::forward before begin_step");
  const DecodeBatch& batch = *batch_;
  Communicator& comm = *comm_;
  const int64_t n = batch.size(), d = head_dim_, qd_s = heads_s_ * d, kd_s = kv_heads_s_ * d;
  LayerWeights<T> w = p.layer(layer);
  T* q_mine = q_gather_.data() + p_ * n * qd_s;
  {
    TraceSpan span("decode.attn", "compute");
    qkv_forward(q_mine, k_.data(), v_.data(), u, attn_projections(w), batch.pos.data(),
                AttnShardShape{n, hidden_, heads_s_, kv_heads_s_, d, norm_eps_}, rope_);
    for (size_t j = 0; j < kv_send_order_.size(); ++j) {
      const int64_t i = kv_send_order_[j];
      std::copy_n(k_.data() + i * kd_s, kd_s, kv_send_.data() + int64_t(j) * 2 * kd_s);
      std::copy_n(v_.data() + i * kd_s, kd_s, kv_send_.data() + int64_t(j) * 2 * kd_s + kd_s);
    }
  }
  comm.all_gather("decode.q_allgather", q_mine, q_gather_.data(), n * qd_s);
  comm.all_to_all_v("decode.kv_to_owner", kv_send_.data(), kv_send_counts_, kv_recv_.data(), kv_recv_counts_);
  {
    TraceSpan span("decode.attn", "compute");
    // Queries of every head, [n, heads, d]: head group r's block of row i came from rank r.
    for (int r = 0; r < D_; ++r)
      for (int64_t i = 0; i < n; ++i)
        std::copy_n(q_gather_.data() + (r * n + i) * qd_s, qd_s,
                    q_all_heads_.data() + (i * heads_ + r * heads_s_) * d);
    // The keys and values of the tokens I cache, head group r from rank r; a replicated KV head is taken
    // from the first of its head groups (every holder computed the same values).
    const int64_t m = int64_t(mine_.size());
    for (int r = 0; r < D_; r += kv_replicas_)
      for (int64_t j = 0; j < m; ++j) {
        const int64_t i = mine_[size_t(j)], b = batch.seq[size_t(i)], pos = batch.pos[size_t(i)];
        const T* src = kv_recv_.data() + (r * m + j) * 2 * kd_s;
        cache_->store(layer, b, slots_.slot(b, pos), 1, src, src + kd_s, 2 * kd_s, (r / kv_replicas_) * kd_s,
                      kd_s);
      }
    const kernels::DecodeAttentionShape as{heads_, kv_heads_, d, cache_->width(), cache_->seq_stride()};
    cache_->with_layer(layer, [&](const auto* k, const auto* v) {
      kernels::attention_decode(o_all_.data(), lse_all_.data(), q_all_heads_.data(), k, v, n,
                                batch.seq.data(), batch.pos.data(), n_slots_.data(), slot_pos_.data(),
                                slots_.slots(), as, 1.0 / std::sqrt(double(d)));
    });
    // Head group g's partials (outputs, then log-sum-exps) go to rank g.
    const int64_t block = n * (qd_s + heads_s_);
    for (int g = 0; g < D_; ++g) {
      T* dst = part_send_.data() + g * block;
      for (int64_t i = 0; i < n; ++i) {
        std::copy_n(o_all_.data() + (i * heads_ + g * heads_s_) * d, qd_s, dst + i * qd_s);
        std::copy_n(lse_all_.data() + i * heads_ + g * heads_s_, heads_s_, dst + n * qd_s + i * heads_s_);
      }
    }
  }
  const int64_t block = n * (qd_s + heads_s_);
  const std::vector<int64_t> counts(size_t(D_), block);
  comm.all_to_all_v("decode.attn_partial_alltoall", part_send_.data(), counts, part_recv_.data(), counts);
  {
    TraceSpan span("decode.attn", "compute");
    kernels::attention_merge(o_.data(), d, static_cast<T*>(nullptr), part_recv_.data(), block,
                             part_recv_.data() + n * qd_s, block, D_, n * heads_s_, d);
    kernels::linear_forward(y, o_.data(), w.wo, n, qd_s, hidden_);
  }
  activation_sum(comm, "decode.attn_out_allreduce", y, n * hidden_);
}

template class TspSequenceAttention<float>;
template class TspSequenceAttention<double>;

}  // namespace tsp
