// AdamW over every parameter block a rank holds, with global-norm gradient clipping. Moments mirror the
// parameter blocks (so they shard exactly like the weights and checkpoint under the same names).
#pragma once

#include <vector>

#include "kernels/adamw.h"
#include "model/params.h"
#include "parallel/strategy.h"

namespace tsp {

template <class T>
class AdamW {
 public:
  AdamW(ModelParams<T>& params, kernels::AdamWHyper hp);

  // The global L2 norm of the gradients over the whole model (sharded blocks summed across shards,
  // replicated blocks counted once).
  double grad_norm(Strategy<T>& s);
  // Clips the gradients to max_grad_norm (<= 0: no clipping) and applies one AdamW update at `lr`.
  // Weight decay applies to the matrices (sharded blocks), not to the norm weights. Returns the pre-clip
  // norm.
  double step(Strategy<T>& s, double lr, double max_grad_norm);

  int64_t t() const { return t_; }
  void set_t(int64_t t) { t_ = t; }
  Buffer<T>& m(int block) { return m_[size_t(block)]; }
  Buffer<T>& v(int block) { return v_[size_t(block)]; }
  const kernels::AdamWHyper& hyper() const { return hp_; }

 private:
  ModelParams<T>& p_;
  kernels::AdamWHyper hp_;
  std::vector<Buffer<T>> m_, v_;
  int64_t t_ = 0;
};

}  // namespace tsp
