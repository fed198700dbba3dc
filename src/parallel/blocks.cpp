#include "parallel/blocks.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/check.h"
#include "core/trace.h"
#include "kernels/bf16.h"
#include "kernels/bias.h"
#include "kernels/frozen_weights.h"
#include "kernels/gemm.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace tsp {

using namespace kernels;

namespace {

// x[n, dim] += b, with b in T or (a shard that travelled in bf16) widened from its bf16 bits first.
template <class T>
void add_bias(T* x, WeightRef<T> b, int64_t n, int64_t dim) {
  if (!b) return;
  if constexpr (std::is_same_v<T, float>) {
    std::vector<float> wide;
    if (b.is_bf16()) {
      wide.resize(size_t(dim));
      from_bf16(b.b, dim, wide.data());
      return bias_forward(x, static_cast<const float*>(wide.data()), n, dim);
    }
    // Under the bf16 policy the held bf16 bias (kernels/frozen_weights.h).
    return bias_forward(x, frozen_as_float(b.f, dim, wide), n, dim);
  }
  bias_forward(x, b.f, n, dim);
}

}  // namespace

template <class T>
void qkv_forward(T* q, T* k, T* v, const T* u, const ConstProjections<T>& w, const int64_t* pos,
                 const AttnShardShape& s, const RopeTable& rope, QkPreNorm<T> pre_norm) {
  const int64_t n = s.n, qd = s.q_dim(), kd = s.kv_dim();
  linear_forward(q, u, w.wq, n, s.hidden, qd);
  linear_forward(k, u, w.wk, n, s.hidden, kd);
  linear_forward(v, u, w.wv, n, s.hidden, kd);
  add_bias(q, w.bq, n, qd);
  add_bias(k, w.bk, n, kd);
  add_bias(v, w.bv, n, kd);
  if (w.q_norm) {
    if (pre_norm.q) std::copy_n(q, n * qd, pre_norm.q);
    rmsnorm_rows_inplace(q, w.q_norm, n * s.q_heads, s.head_dim, s.norm_eps);
  }
  if (w.k_norm) {
    if (pre_norm.k) std::copy_n(k, n * kd, pre_norm.k);
    rmsnorm_rows_inplace(k, w.k_norm, n * s.kv_heads, s.head_dim, s.norm_eps);
  }
  rope_forward(q, pos, n, s.q_heads, s.head_dim, rope);
  rope_forward(k, pos, n, s.kv_heads, s.head_dim, rope);
}

namespace {

// The adjoint of one projection x = norm(u Wᵀ + b) after RoPE: dx (post-RoPE gradient) is consumed.
template <class T>
void projection_backward(T* du, T* dw, T* db, T* dnorm, T* dx, const T* u, WeightRef<T> w, const T* norm,
                         const T* pre_norm, const int64_t* pos, int64_t heads, const AttnShardShape& s,
                         const RopeTable& rope) {
  const int64_t dim = heads * s.head_dim;
  rope_backward(dx, pos, s.n, heads, s.head_dim, rope);
  if (norm) {
    TSP_CHECK(pre_norm != nullptr, "q/k norm backward needs the pre-norm projections (QkPreNorm)");
    rmsnorm_rows_backward_inplace(dx, dnorm, pre_norm, norm, s.n * heads, s.head_dim, s.norm_eps);
  }
  if (db) bias_backward(db, dx, s.n, dim);
  linear_backward(du, dw, dx, u, w, s.n, s.hidden, dim);
}

}  // namespace

template <class T>
void q_backward(T* du, const AttnProjections<T>& g, T* dq, const T* u, const ConstProjections<T>& w,
                const T* q_pre, const int64_t* pos, const AttnShardShape& s, const RopeTable& rope) {
  projection_backward(du, g.wq, w.bq ? g.bq : nullptr, g.q_norm, dq, u, w.wq, w.q_norm, q_pre, pos, s.q_heads,
                      s, rope);
}

template <class T>
void kv_backward(T* du, const AttnProjections<T>& g, T* dk, const T* dv, const T* u,
                 const ConstProjections<T>& w, const T* k_pre, const int64_t* pos, const AttnShardShape& s,
                 const RopeTable& rope) {
  projection_backward(du, g.wk, w.bk ? g.bk : nullptr, g.k_norm, dk, u, w.wk, w.k_norm, k_pre, pos,
                      s.kv_heads, s, rope);
  if (w.bv && g.bv) bias_backward(g.bv, dv, s.n, s.kv_dim());
  linear_backward(du, g.wv, dv, u, w.wv, s.n, s.hidden, s.kv_dim());
}

template <class T>
void qkv_backward(T* du, const AttnProjections<T>& g, T* dq, T* dk, const T* dv, const T* u,
                  const ConstProjections<T>& w, QkPreNorm<T> pre_norm, const int64_t* pos,
                  const AttnShardShape& s, const RopeTable& rope) {
  q_backward(du, g, dq, u, w, pre_norm.q, pos, s, rope);
  kv_backward(du, g, dk, dv, u, w, pre_norm.k, pos, s, rope);
}

template <class T>
void attention_batched_forward(T* o, T* lse, const T* q, const T* k, const T* v, const int64_t* q_pos,
                               const int64_t* k_pos, int64_t batch, const AttentionShape& a) {
  // Nested in the caller's compute span: the flash kernel's share of the attention block (category
  // "kernel", so that summing "compute" spans does not count it twice).
  TraceSpan span("attention.flash_fwd", "kernel");
  const double scale = 1.0 / std::sqrt(double(a.head_dim));
  const int64_t qs = a.nq * a.n_heads * a.head_dim, ks = a.nk * a.n_kv_heads * a.head_dim;
  for (int64_t b = 0; b < batch; ++b)
    attention_forward(o + b * qs, lse + b * a.nq * a.n_heads, q + b * qs, k + b * ks, v + b * ks, q_pos,
                      k_pos, a, scale);
}

template <class T>
void attention_batched_backward(T* dq, T* dk, T* dv, const T* d_o, const T* q, const T* k, const T* v,
                                const T* o, const T* lse, const int64_t* q_pos, const int64_t* k_pos,
                                int64_t batch, const AttentionShape& a) {
  TraceSpan span("attention.flash_bwd", "kernel");
  const double scale = 1.0 / std::sqrt(double(a.head_dim));
  const int64_t qs = a.nq * a.n_heads * a.head_dim, ks = a.nk * a.n_kv_heads * a.head_dim;
  for (int64_t b = 0; b < batch; ++b)
    attention_backward(dq + b * qs, dk + b * ks, dv + b * ks, d_o + b * qs, q + b * qs, k + b * ks,
                       v + b * ks, o + b * qs, lse + b * a.nq * a.n_heads, q_pos, k_pos, a, scale);
}

template <class T>
void mlp_shard_forward(T* y, T* g, T* up, T* act, const T* u, WeightOf<T> w_gate, WeightOf<T> w_up,
                       WeightOf<T> w_down, int64_t n, int64_t h, int64_t i, bool accumulate) {
  linear_forward(g, u, w_gate, n, h, i);
  linear_forward(up, u, w_up, n, h, i);
  swiglu_forward(act, g, up, n * i);
  linear_forward(y, act, w_down, n, i, h, accumulate);
}

template <class T>
void mlp_shard_backward(T* du, T* dw_gate, T* dw_up, T* dw_down, const T* dy, const T* u, WeightOf<T> w_gate,
                        WeightOf<T> w_up, WeightOf<T> w_down, const T* g, const T* up, T* act, T* d_act,
                        T* dg, T* dup, int64_t n, int64_t h, int64_t i) {
  const int64_t ni = n * i;
  swiglu_forward(act, g, up, ni);
  for (int64_t j = 0; j < ni; ++j) d_act[j] = dg[j] = dup[j] = T(0);
  linear_backward(d_act, dw_down, dy, act, w_down, n, i, h);
  swiglu_backward(dg, dup, d_act, g, up, ni);
  linear_backward(du, dw_gate, dg, u, w_gate, n, h, i);
  linear_backward(du, dw_up, dup, u, w_up, n, h, i);
}

#define TSP_INSTANTIATE(T)                                                                                  \
  template void qkv_forward<T>(T*, T*, T*, const T*, const ConstProjections<T>&, const int64_t*,            \
                               const AttnShardShape&, const RopeTable&, QkPreNorm<T>);                      \
  template void q_backward<T>(T*, const AttnProjections<T>&, T*, const T*, const ConstProjections<T>&,      \
                              const T*, const int64_t*, const AttnShardShape&, const RopeTable&);           \
  template void kv_backward<T>(T*, const AttnProjections<T>&, T*, const T*, const T*,                       \
                               const ConstProjections<T>&, const T*, const int64_t*, const AttnShardShape&, \
                               const RopeTable&);                                                           \
  template void qkv_backward<T>(T*, const AttnProjections<T>&, T*, T*, const T*, const T*,                  \
                                const ConstProjections<T>&, QkPreNorm<T>, const int64_t*,                   \
                                const AttnShardShape&, const RopeTable&);                                   \
  template void attention_batched_forward<T>(T*, T*, const T*, const T*, const T*, const int64_t*,          \
                                             const int64_t*, int64_t, const AttentionShape&);               \
  template void attention_batched_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, \
                                              const T*, const int64_t*, const int64_t*, int64_t,            \
                                              const AttentionShape&);                                       \
  template void mlp_shard_forward<T>(T*, T*, T*, T*, const T*, WeightOf<T>, WeightOf<T>, WeightOf<T>,       \
                                     int64_t, int64_t, int64_t, bool);                                      \
  template void mlp_shard_backward<T>(T*, T*, T*, T*, const T*, const T*, WeightOf<T>, WeightOf<T>,         \
                                      WeightOf<T>, const T*, const T*, T*, T*, T*, T*, int64_t, int64_t,    \
                                      int64_t);
TSP_INSTANTIATE(float)
TSP_INSTANTIATE(double)
#undef TSP_INSTANTIATE

}  // namespace tsp

#include "kernels/cross_entropy.h"

namespace tsp {

template <class T>
void head_shard_fold(const OnlineLse<T>& st, T* logits, const T* u, WeightOf<T> w, const int32_t* targets,
                     int64_t n, int64_t h, int64_t v_begin, int64_t v_valid) {
  if (v_valid <= 0) return;
  kernels::linear_forward(logits, u, w, n, h, v_valid);
  kernels::online_lse_fold(st.run_max, st.run_sum, st.target_logit, st.argmax, logits, targets, n, v_begin,
                           v_valid);
}

template <class T>
void head_shard_backward(T* du, T* dw, T* logits, T* dlogits, const T* u, WeightOf<T> w, const T* lse,
                         const int32_t* targets, int64_t n, int64_t h, int64_t v_begin, int64_t v_valid,
                         T scale) {
  if (v_valid <= 0) return;
  kernels::linear_forward(logits, u, w, n, h, v_valid);
  for (int64_t j = 0; j < n * v_valid; ++j) dlogits[j] = T(0);
  kernels::cross_entropy_backward(dlogits, logits, lse, targets, n, v_begin, v_valid, kernels::kIgnoreIndex,
                                  scale);
  kernels::linear_backward(du, dw, dlogits, u, w, n, h, v_valid);
}

template void head_shard_fold<float>(const OnlineLse<float>&, float*, const float*, WeightOf<float>,
                                     const int32_t*, int64_t, int64_t, int64_t, int64_t);
template void head_shard_fold<double>(const OnlineLse<double>&, double*, const double*, WeightOf<double>,
                                      const int32_t*, int64_t, int64_t, int64_t, int64_t);
template void head_shard_backward<float>(float*, float*, float*, float*, const float*, WeightOf<float>,
                                         const float*, const int32_t*, int64_t, int64_t, int64_t, int64_t,
                                         float);
template void head_shard_backward<double>(double*, double*, double*, double*, const double*, WeightOf<double>,
                                          const double*, const int32_t*, int64_t, int64_t, int64_t, int64_t,
                                          double);

}  // namespace tsp
