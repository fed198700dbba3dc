#include "train/nonfinite.h"

#include <cmath>
#include <limits>
#include <vector>

#include "comm/fault_injection.h"

namespace tsp {

namespace {

// The part of view `v` of block `b` inside this rank's optimizer partition, as [begin, end) in the block.
template <class T>
Range owned_part(const AdamW<T>& opt, int b, const TensorView& v) {
  const Range part = opt.partition(b);
  const int64_t lo = std::max(part.begin, v.offset),
                hi = std::min(part.begin + part.size, v.offset + v.numel());
  return {lo, std::max<int64_t>(0, hi - lo)};
}

}  // namespace

template <class T>
std::string first_nonfinite_grad(const ModelParams<T>& p, const AdamW<T>& opt, Communicator& world) {
  std::vector<int32_t> bad;
  std::vector<const TensorView*> views;
  for (int b = 0; b < p.num_blocks(); ++b)
    for (const auto& v : p.blocks()[size_t(b)].views) {
      const Range r = owned_part(opt, b, v);
      const T* g = p.grad(b).data();
      int32_t flag = 0;
      for (int64_t i = r.begin; i < r.begin + r.size && !flag; ++i) flag = !std::isfinite(g[i]);
      bad.push_back(flag);
      views.push_back(&v);
    }
  if (world.size() > 1) world.all_reduce("train.nonfinite_allreduce", bad.data(), int64_t(bad.size()));
  for (size_t i = 0; i < bad.size(); ++i)
    if (bad[i]) return views[i]->name;
  return "none";
}

template <class T>
void inject_nan_fault(ModelParams<T>& p, const AdamW<T>& opt, bool gradient) {
  for (int b = 0; b < p.num_blocks(); ++b)
    for (const auto& v : p.blocks()[size_t(b)].views) {
      const Range r = gradient ? owned_part(opt, b, v) : Range{v.offset, v.numel()};
      if (r.size == 0 || !fault_wants_nan(gradient ? "nan-grad" : "nan-weight", v.name)) continue;
      (gradient ? p.grad(b) : p.value(b))[r.begin] = std::numeric_limits<T>::quiet_NaN();
      return;
    }
}

template std::string first_nonfinite_grad<float>(const ModelParams<float>&, const AdamW<float>&,
                                                 Communicator&);
template std::string first_nonfinite_grad<double>(const ModelParams<double>&, const AdamW<double>&,
                                                  Communicator&);
template void inject_nan_fault<float>(ModelParams<float>&, const AdamW<float>&, bool);
template void inject_nan_fault<double>(ModelParams<double>&, const AdamW<double>&, bool);

}  // namespace tsp
