#include "train/optimizer.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "core/trace.h"

namespace tsp {

namespace {

// Calls fn(view, begin, end) for the part [begin, end) of every view of `block` that falls inside the
// partition r (element offsets in the block).
template <class Fn>
void each_view_in(const ParamBlock& block, Range r, Fn&& fn) {
  for (const TensorView& v : block.views) {
    const int64_t b = std::max(v.offset, r.begin), e = std::min(v.offset + v.numel(), r.end());
    if (b < e) fn(v, b, e);
  }
}

}  // namespace

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
    const ParamBlock& blk = p_.blocks()[size_t(b)];
    const T* g = p_.grad(b).data();
    double& sum = sums[blk.placement == Placement::sharded ? 0 : 1];
    // A replicated KV head counts once, on its primary holder.
    each_view_in(blk, part_[size_t(b)], [&](const TensorView& v, int64_t begin, int64_t end) {
      if (v.primary) sum += kernels::sum_squares(g + begin, end - begin);
    });
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
    // Weight decay applies to the matrices, not to norm weights and biases (the usual parameter groups).
    T* value = p_.value(b).data();
    T* grad = p_.grad(b).data();
    each_view_in(p_.blocks()[size_t(b)], r, [&](const TensorView& v, int64_t begin, int64_t end) {
      const double wd = v.is_matrix() ? hp_.weight_decay : 0.0;
      kernels::adamw_update(value + begin, grad + begin, m_[size_t(b)].data() + (begin - r.begin),
                            v_[size_t(b)].data() + (begin - r.begin), end - begin, t_, lr, wd, hp_);
    });
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
