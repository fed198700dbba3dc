#include "train/optimizer.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "core/precision.h"
#include "core/trace.h"
#include "kernels/bf16.h"

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
    : p_(params), hp_(hp), bf16_(tsp::bf16_moments<T>()) {
  for (int b = 0; b < p_.num_blocks(); ++b) {
    const int64_t n = p_.value(b).size();
    part_.push_back(partition ? partition->optimizer_range(n) : Range{0, n});
    const int64_t mine = part_.back().size;
    m_.emplace_back(bf16_ ? 0 : mine, Mem::optimizer);
    v_.emplace_back(bf16_ ? 0 : mine, Mem::optimizer);
    m16_.emplace_back(bf16_ ? mine : 0, Mem::optimizer);
    v16_.emplace_back(bf16_ ? mine : 0, Mem::optimizer);
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
      const int64_t at = begin - r.begin;
      if constexpr (std::is_same_v<T, float>)
        if (bf16_)
          return kernels::adamw_update(value + begin, grad + begin, m16_[size_t(b)].data() + at,
                                       v16_[size_t(b)].data() + at, end - begin, t_, lr, wd, hp_);
      kernels::adamw_update(value + begin, grad + begin, m_[size_t(b)].data() + at, v_[size_t(b)].data() + at,
                            end - begin, t_, lr, wd, hp_);
    });
  }
  for (int b = 0; b < p_.num_blocks(); ++b)
    s.gather_partitions(p_.value(b).data(), p_.value(b).size(), "dp.param_allgather");
}

template <class T>
void AdamW<T>::unpartition(Strategy<T>& s, bool gather) {
  TSP_CHECK(!whole_, "AdamW::unpartition twice");
  whole_ = true;
  if (!partitioned() && !bf16_) return;
  for (int b = 0; b < p_.num_blocks(); ++b) {
    const int64_t n = p_.value(b).size();
    for (int k = 0; k < 2; ++k) {
      std::vector<Buffer<T>>& mom = k == 0 ? m_ : v_;
      Buffer<T> whole(n, Mem::optimizer);
      whole.zero();
      if (gather) {
        const Range r = part_[size_t(b)];
        if constexpr (std::is_same_v<T, float>)
          if (bf16_)
            kernels::from_bf16((k == 0 ? m16_ : v16_)[size_t(b)].data(), r.size, whole.data() + r.begin);
        if (!bf16_) std::copy_n(mom[size_t(b)].data(), r.size, whole.data() + r.begin);
        if (partitioned()) s.gather_partitions(whole.data(), n, "dp.optim_state_allgather");
      }
      mom[size_t(b)] = std::move(whole);
    }
  }
}

template <class T>
void AdamW<T>::repartition() {
  TSP_CHECK(whole_, "AdamW::repartition without unpartition");
  whole_ = false;
  if (!partitioned() && !bf16_) return;
  for (int b = 0; b < p_.num_blocks(); ++b) {
    const Range r = part_[size_t(b)];
    for (int k = 0; k < 2; ++k) {
      std::vector<Buffer<T>>& mom = k == 0 ? m_ : v_;
      if constexpr (std::is_same_v<T, float>)
        if (bf16_) {
          // Rounded back into the bf16 moments (exact for moments that were bf16); the widened copy goes.
          kernels::to_bf16(mom[size_t(b)].data() + r.begin, r.size, (k == 0 ? m16_ : v16_)[size_t(b)].data());
          mom[size_t(b)] = Buffer<T>(0, Mem::optimizer);
          continue;
        }
      Buffer<T> mine(r.size, Mem::optimizer);
      std::copy_n(mom[size_t(b)].data() + r.begin, r.size, mine.data());
      mom[size_t(b)] = std::move(mine);
    }
  }
}

template class AdamW<float>;
template class AdamW<double>;

}  // namespace tsp
