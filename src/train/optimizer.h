// AdamW over every parameter block a rank holds, with global-norm gradient clipping. Moments mirror the
// parameter blocks (so they shard exactly like the weights and checkpoint under the same names). Under
// ZeRO-1 (parallel/dp/) this rank keeps moments for, and updates, only its partition of every block
// (Strategy::optimizer_range); the strategy then all-gathers the updated parameters.
#pragma once

#include <vector>

#include "kernels/adamw.h"
#include "model/params.h"
#include "parallel/strategy.h"

namespace tsp {

template <class T>
class AdamW {
 public:
  // `partition` (may be null: everything) says which part of every block this rank's optimizer owns.
  AdamW(ModelParams<T>& params, kernels::AdamWHyper hp, const Strategy<T>* partition = nullptr);

  // The global L2 norm of the gradients over the whole model (sharded blocks summed across shards,
  // replicated blocks and replicated KV heads counted once).
  double grad_norm(Strategy<T>& s);
  // Clips the gradients to max_grad_norm (<= 0: no clipping) and applies one AdamW update at `lr`.
  // Weight decay applies to the matrices, not to the norm weights and biases. Returns the pre-clip
  // norm.
  double step(Strategy<T>& s, double lr, double max_grad_norm);
  // The same update with the norm already computed by grad_norm() (the trainer looks at it first, to skip a
  // non-finite step without touching the optimizer state).
  void update(Strategy<T>& s, double lr, double max_grad_norm, double norm);

  int64_t t() const { return t_; }
  void set_t(int64_t t) { t_ = t; }
  // Moments of this rank's partition of a block (the whole block without ZeRO-1, or after unpartition()).
  // Under --optimizer-dtype bf16 the moments are held in bf16 and these are their widened copies, which
  // exist only between unpartition() and repartition() (where checkpoints read and write them).
  Buffer<T>& m(int block) { return m_[size_t(block)]; }
  Buffer<T>& v(int block) { return v_[size_t(block)]; }
  bool bf16_moments() const { return bf16_; }
  Range partition(int block) const { return part_[size_t(block)]; }
  bool partitioned() const;
  // Checkpoints store whole moments in T. unpartition() all-gathers them across the partitions into
  // whole-block buffers (collective over the strategy's DP axis; with gather = false it only allocates
  // zeroed whole buffers for a checkpoint to be read into); repartition() keeps this rank's part again.
  // bf16 moments are widened into those buffers and rounded back (exactly: they are bf16 values).
  void unpartition(Strategy<T>& s, bool gather);
  void repartition();
  const kernels::AdamWHyper& hyper() const { return hp_; }

 private:
  ModelParams<T>& p_;
  kernels::AdamWHyper hp_;
  std::vector<Buffer<T>> m_, v_;
  bool bf16_ = false;                        // --optimizer-dtype bf16 (core/precision.h)
  std::vector<Buffer<uint16_t>> m16_, v16_;  // the moments then (this rank's partitions)
  std::vector<Range> part_;
  bool whole_ = false;  // moments currently whole-block (between unpartition and repartition)
  int64_t t_ = 0;
};

}  // namespace tsp
