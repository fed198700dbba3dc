#include "train/optimizer.h"

#include <cmath>

#include "core/trace.h"

namespace tsp {

template <class T>
AdamW<T>::AdamW(ModelParams<T>& params, kernels::AdamWHyper hp) : p_(params), hp_(hp) {
  for (int b = 0; b < p_.num_blocks(); ++b) {
    m_.emplace_back(p_.value(b).size(), Mem::optimizer);
    v_.emplace_back(p_.value(b).size(), Mem::optimizer);
  }
}

template <class T>
double AdamW<T>::grad_norm(Strategy<T>& s) {
  double sharded = 0, replicated = 0;
  for (int b = 0; b < p_.num_blocks(); ++b) {
    double ss = kernels::sum_squares(p_.grad(b).data(), p_.grad(b).size());
    (p_.blocks()[size_t(b)].placement == Placement::sharded ? sharded : replicated) += ss;
  }
  s.sum_over_shards(&sharded, 1, "optim.gradnorm_allreduce");
  return std::sqrt(sharded + replicated);
}

template <class T>
double AdamW<T>::step(Strategy<T>& s, double lr, double max_grad_norm) {
  TraceSpan span("optimizer", "compute");
  const double norm = grad_norm(s);
  const double clip = kernels::clip_coefficient(norm, max_grad_norm);
  ++t_;
  for (int b = 0; b < p_.num_blocks(); ++b) {
    Buffer<T>& g = p_.grad(b);
    if (clip < 1.0) kernels::scale_inplace(g.data(), g.size(), clip);
    const double wd = p_.blocks()[size_t(b)].placement == Placement::sharded ? hp_.weight_decay : 0.0;
    kernels::adamw_update(p_.value(b).data(), g.data(), m_[size_t(b)].data(), v_[size_t(b)].data(), g.size(),
                          t_, lr, wd, hp_);
  }
  return norm;
}

template class AdamW<float>;
template class AdamW<double>;

}  // namespace tsp
