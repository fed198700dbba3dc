#include "train/optimizer.h"

#include <cmath>

#include "core/check.h"
#include "core/trace.h"

namespace tsp {

template <class T>
AdamW<T>::AdamW(ModelParams<T>& params, kernels::AdamWHyper hp, const Strategy<T>* partition)
    : p_(params), hp_(hp) {
  for (int b = 0; b < p_.num_blocks(); ++b) {
    const int64_t n = p_.value(b).size();
    part_.push_back(partition ? partition->optimizer_range(n) : Range{0, n});
    m_.emplace_back(part_.back().size, Mem::optimizer);
    v_.emplace_back(part_.back().size, Mem::optimizer);
  }
}

template <class T>
bool AdamW<T>::partitioned() const {
  for (int b = 0; b < p_.num_blocks(); ++b)
    if (part_[size_t(b)].size != p_.value(b).size()) return true;
  return false;
}

template <class T>
double AdamW<T>::grad_norm(Strategy<T>& s) {
  double sums[2] = {0, 0};  // sharded blocks, replicated blocks
  for (int b = 0; b < p_.num_blocks(); ++b) {
    const Range r = part_[size_t(b)];
    const double ss = kernels::sum_squares(p_.grad(b).data() + r.begin, r.size);
    sums[p_.blocks()[size_t(b)].placement == Placement::sharded ? 0 : 1] += ss;
  }
  s.sum_over_shards(&sums[0], 1, "optim.gradnorm_allreduce");
  s.sum_over_optimizer_partitions(sums, 2, "dp.optim_partition_allreduce");
  return std::sqrt(sums[0] + sums[1]);
}

template <class T>
double AdamW<T>::step(Strategy<T>& s, double lr, double max_grad_norm) {
  const double norm = grad_norm(s);
  update(s, lr, max_grad_norm, norm);
  return norm;
}

template <class T>
void AdamW<T>::update(Strategy<T>& s, double lr, double max_grad_norm, double norm) {
  TraceSpan span("optimizer", "compute");
  TSP_CHECK(!whole_, "AdamW::step between unpartition() and repartition()");
  const double clip = kernels::clip_coefficient(norm, max_grad_norm);
  ++t_;
  for (int b = 0; b < p_.num_blocks(); ++b) {
    const Range r = part_[size_t(b)];
    T* g = p_.grad(b).data() + r.begin;
    if (clip < 1.0) kernels::scale_inplace(g, r.size, clip);
    const double wd = p_.blocks()[size_t(b)].placement == Placement::sharded ? hp_.weight_decay : 0.0;
    kernels::adamw_update(p_.value(b).data() + r.begin, g, m_[size_t(b)].data(), v_[size_t(b)].data(), r.size,
                          t_, lr, wd, hp_);
  }
  for (int b = 0; b < p_.num_blocks(); ++b)
    s.gather_partitions(p_.value(b).data(), p_.value(b).size(), "dp.param_allgather");
}

template <class T>
void AdamW<T>::unpartition(Strategy<T>& s, bool gather) {
  TSP_CHECK(!whole_, "AdamW::unpartition twice");
  whole_ = true;
  if (!partitioned()) return;
  for (int b = 0; b < p_.num_blocks(); ++b) {
    const int64_t n = p_.value(b).size();
    for (std::vector<Buffer<T>>* mom : {&m_, &v_}) {
      Buffer<T> whole(n, Mem::optimizer);
      whole.zero();
      if (gather) {
        const Range r = part_[size_t(b)];
        std::copy_n((*mom)[size_t(b)].data(), r.size, whole.data() + r.begin);
        s.gather_partitions(whole.data(), n, "dp.optim_state_allgather");
      }
      (*mom)[size_t(b)] = std::move(whole);
    }
  }
}

template <class T>
void AdamW<T>::repartition() {
  TSP_CHECK(whole_, "AdamW::repartition without unpartition");
  whole_ = false;
  if (!partitioned()) return;
  for (int b = 0; b < p_.num_blocks(); ++b) {
    const Range r = part_[size_t(b)];
    for (std::vector<Buffer<T>>* mom : {&m_, &v_}) {
      Buffer<T> mine(r.size, Mem::optimizer);
      std::copy_n((*mom)[size_t(b)].data() + r.begin, r.size, mine.data());
      (*mom)[size_t(b)] = std::move(mine);
    }
  }
}

template class AdamW<float>;
template class AdamW<double>;

}  // namespace tsp
