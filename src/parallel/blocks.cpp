#include "parallel/blocks.h"

#include <cmath>

#include "kernels/gemm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace tsp {

using namespace kernels;

template <class T>
void qkv_forward(T* q, T* k, T* v, const T* u, const T* wq, const T* wk, const T* wv, const int64_t* pos,
                 const AttnShardShape& s, double rope_theta) {
  linear_forward(q, u, wq, s.n, s.hidden, s.q_dim());
  linear_forward(k, u, wk, s.n, s.hidden, s.kv_dim());
  linear_forward(v, u, wv, s.n, s.hidden, s.kv_dim());
  rope_forward(q, pos, s.n, s.q_heads, s.head_dim, rope_theta);
  rope_forward(k, pos, s.n, s.kv_heads, s.head_dim, rope_theta);
}

template <class T>
void q_backward(T* du, T* dwq, T* dq, const T* u, const T* wq, const int64_t* pos, const AttnShardShape& s,
                double rope_theta) {
  rope_backward(dq, pos, s.n, s.q_heads, s.head_dim, rope_theta);
  linear_backward(du, dwq, dq, u, wq, s.n, s.hidden, s.q_dim());
}

template <class T>
void kv_backward(T* du, T* dwk, T* dwv, T* dk, const T* dv, const T* u, const T* wk, const T* wv,
                 const int64_t* pos, const AttnShardShape& s, double rope_theta) {
  rope_backward(dk, pos, s.n, s.kv_heads, s.head_dim, rope_theta);
  linear_backward(du, dwk, dk, u, wk, s.n, s.hidden, s.kv_dim());
  linear_backward(du, dwv, dv, u, wv, s.n, s.hidden, s.kv_dim());
}

template <class T>
void qkv_backward(T* du, T* dwq, T* dwk, T* dwv, T* dq, T* dk, const T* dv, const T* u, const T* wq,
                  const T* wk, const T* wv, const int64_t* pos, const AttnShardShape& s, double rope_theta) {
  q_backward(du, dwq, dq, u, wq, pos, s, rope_theta);
  kv_backward(du, dwk, dwv, dk, dv, u, wk, wv, pos, s, rope_theta);
}

template <class T>
void attention_batched_forward(T* o, T* lse, const T* q, const T* k, const T* v, const int64_t* q_pos,
                               const int64_t* k_pos, int64_t batch, const AttentionShape& a) {
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
  const double scale = 1.0 / std::sqrt(double(a.head_dim));
  const int64_t qs = a.nq * a.n_heads * a.head_dim, ks = a.nk * a.n_kv_heads * a.head_dim;
  for (int64_t b = 0; b < batch; ++b)
    attention_backward(dq + b * qs, dk + b * ks, dv + b * ks, d_o + b * qs, q + b * qs, k + b * ks,
                       v + b * ks, o + b * qs, lse + b * a.nq * a.n_heads, q_pos, k_pos, a, scale);
}

template <class T>
void mlp_shard_forward(T* y, T* g, T* up, T* act, const T* u, const T* w_gate, const T* w_up, const T* w_down,
                       int64_t n, int64_t h, int64_t i, bool accumulate) {
  linear_forward(g, u, w_gate, n, h, i);
  linear_forward(up, u, w_up, n, h, i);
  swiglu_forward(act, g, up, n * i);
  linear_forward(y, act, w_down, n, i, h, accumulate);
}

template <class T>
void mlp_shard_backward(T* du, T* dw_gate, T* dw_up, T* dw_down, const T* dy, const T* u, const T* w_gate,
                        const T* w_up, const T* w_down, const T* g, const T* up, T* act, T* d_act, T* dg,
                        T* dup, int64_t n, int64_t h, int64_t i) {
  const int64_t ni = n * i;
  swiglu_forward(act, g, up, ni);
  for (int64_t j = 0; j < ni; ++j) d_act[j] = dg[j] = dup[j] = T(0);
  linear_backward(d_act, dw_down, dy, act, w_down, n, i, h);
  swiglu_backward(dg, dup, d_act, g, up, ni);
  linear_backward(du, dw_gate, dg, u, w_gate, n, h, i);
  linear_backward(du, dw_up, dup, u, w_up, n, h, i);
}

#define TSP_INSTANTIATE(T)                                                                                  \
  template void qkv_forward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const int64_t*,          \
                               const AttnShardShape&, double);                                              \
  template void q_backward<T>(T*, T*, T*, const T*, const T*, const int64_t*, const AttnShardShape&,        \
                              double);                                                                      \
  template void kv_backward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*, const int64_t*,      \
                               const AttnShardShape&, double);                                              \
  template void qkv_backward<T>(T*, T*, T*, T*, T*, T*, const T*, const T*, const T*, const T*, const T*,   \
                                const int64_t*, const AttnShardShape&, double);                             \
  template void attention_batched_forward<T>(T*, T*, const T*, const T*, const T*, const int64_t*,          \
                                             const int64_t*, int64_t, const AttentionShape&);               \
  template void attention_batched_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, \
                                              const T*, const int64_t*, const int64_t*, int64_t,            \
                                              const AttentionShape&);                                       \
  template void mlp_shard_forward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*, int64_t,       \
                                     int64_t, int64_t, bool);                                               \
  template void mlp_shard_backward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*, const T*,     \
                                      const T*, const T*, T*, T*, T*, T*, int64_t, int64_t, int64_t);
TSP_INSTANTIATE(float)
TSP_INSTANTIATE(double)
#undef TSP_INSTANTIATE

}  // namespace tsp

#include "kernels/cross_entropy.h"

namespace tsp {

template <class T>
void head_shard_fold(const OnlineLse<T>& st, T* logits, const T* u, const T* w, const int32_t* targets,
                     int64_t n, int64_t h, int64_t v_begin, int64_t v_valid) {
  if (v_valid <= 0) return;
  kernels::linear_forward(logits, u, w, n, h, v_valid);
  kernels::online_lse_fold(st.run_max, st.run_sum, st.target_logit, st.argmax, logits, targets, n, v_begin,
                           v_valid);
}

template <class T>
void head_shard_backward(T* du, T* dw, T* logits, T* dlogits, const T* u, const T* w, const T* lse,
                         const int32_t* targets, int64_t n, int64_t h, int64_t v_begin, int64_t v_valid,
                         T scale) {
  if (v_valid <= 0) return;
  kernels::linear_forward(logits, u, w, n, h, v_valid);
  for (int64_t j = 0; j < n * v_valid; ++j) dlogits[j] = T(0);
  kernels::cross_entropy_backward(dlogits, logits, lse, targets, n, v_begin, v_valid, kernels::kIgnoreIndex,
                                  scale);
  kernels::linear_backward(du, dw, dlogits, u, w, n, h, v_valid);
}

template void head_shard_fold<float>(const OnlineLse<float>&, float*, const float*, const float*,
                                     const int32_t*, int64_t, int64_t, int64_t, int64_t);
template void head_shard_fold<double>(const OnlineLse<double>&, double*, const double*, const double*,
                                      const int32_t*, int64_t, int64_t, int64_t, int64_t);
template void head_shard_backward<float>(float*, float*, float*, float*, const float*, const float*,
                                         const float*, const int32_t*, int64_t, int64_t, int64_t, int64_t,
                                         float);
template void head_shard_backward<double>(double*, double*, double*, double*, const double*, const double*,
                                          const double*, const int32_t*, int64_t, int64_t, int64_t, int64_t,
                                          double);

}  // namespace tsp
