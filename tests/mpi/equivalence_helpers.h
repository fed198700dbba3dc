// Comparing a parallel layout's model with the single-device reference, shared by the equivalence tests of
// every layout: the same pseudo-random batch on every rank, relative Frobenius errors, and block-by-block
// comparison of a rank's shards with the matching blocks of the full tensors.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "../arch_test_configs.h"
#include "comm/communicator.h"
#include "kernels/cross_entropy.h"
#include "model/params.h"
#include "model/transformer.h"
#include "parallel/single/single.h"
#include "train/optimizer.h"

namespace tsp::test {

// The same pseudo-random batch on every rank: tokens in [0, V), next-token targets with some ignored.
inline void make_batch(int64_t vocab, int64_t batch, int64_t seq, uint32_t seed, std::vector<int32_t>& tokens,
                       std::vector<int32_t>& targets) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> tok(0, int32_t(vocab - 1));
  tokens.resize(size_t(batch * seq));
  targets.resize(size_t(batch * seq));
  for (auto& t : tokens) t = tok(rng);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < seq; ++i) {
      const size_t at = size_t(b * seq + i);
      targets[at] = i + 1 < seq ? tokens[at + 1] : tok(rng);
      if (rng() % 5 == 0) targets[at] = kernels::kIgnoreIndex;
    }
}

template <class T>
double tolerance() {
  return sizeof(T) == sizeof(double) ? 1e-10 : 1e-5;
}

struct ErrorNorm {
  double diff2 = 0, ref2 = 0;
  void add(double a, double ref) {
    diff2 += (a - ref) * (a - ref);
    ref2 += ref * ref;
  }
  bool within(double tol) const { return std::sqrt(diff2) <= tol * std::sqrt(ref2) + 1e-30; }
  double relative() const { return ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2); }
};

// Compares every local view of `local` (TSP shard) with the matching block of the full tensors in `full`
// (single device), values or gradients. Padding rows of the vocabulary must stay exactly zero.
template <class T>
void expect_blocks_match(ModelParams<T>& local, ModelParams<T>& full, bool grads, const std::string& what) {
  const double tol = tolerance<T>();
  const int rank = Communicator::world().rank();
  ASSERT_EQ(local.num_blocks(), full.num_blocks());
  for (int b = 0; b < local.num_blocks(); ++b) {
    const ParamBlock& lb = local.blocks()[size_t(b)];
    const ParamBlock& fb = full.blocks()[size_t(b)];
    const T* lv = grads ? local.grad(b).data() : local.value(b).data();
    const T* fv = grads ? full.grad(b).data() : full.value(b).data();
    ASSERT_EQ(lb.views.size(), fb.views.size());
    for (size_t k = 0; k < lb.views.size(); ++k) {
      const TensorView& v = lb.views[k];
      const TensorView& f = fb.views[k];
      ASSERT_EQ(v.name, f.name);
      ErrorNorm e;
      for (int64_t r = 0; r < v.valid_rows; ++r)
        for (int64_t c = 0; c < v.cols; ++c)
          e.add(double(lv[v.offset + r * v.cols + c]),
                double(fv[f.offset + (v.row_begin + r) * f.cols + v.col_begin + c]));
      EXPECT_TRUE(e.within(tol)) << what << " " << v.name << " on rank " << rank << ": relative error "
                                 << e.relative() << " > " << tol;
      for (int64_t r = v.valid_rows; r < v.rows; ++r)
        for (int64_t c = 0; c < v.cols; ++c)
          ASSERT_EQ(lv[v.offset + r * v.cols + c], T(0)) << what << " " << v.name << " padding row " << r;
    }
  }
}

template <class T>
void expect_vectors_match(const std::vector<T>& a, const std::vector<T>& ref, const std::string& what) {
  ASSERT_EQ(a.size(), ref.size()) << what;
  ErrorNorm e;
  for (size_t i = 0; i < a.size(); ++i) e.add(double(a[i]), double(ref[i]));
  EXPECT_TRUE(e.within(tolerance<T>())) << what << ": relative error " << e.relative();
}

struct MatchOptions {
  bool perturb = false;      // start from perturb_vectors() rather than HF's initial norm weights and biases
  bool second_shape = true;  // after the AdamW step, a second step shape (see below)
};

// One layout against the single-device model on the same seeded model and batch: loss, accuracy counts,
// every gradient, logits in original order, the clipped AdamW step's gradient norm (and the parameters after
// it when `params_after_step`), then a second step shape (one sequence per replica, twice as long) that makes
// the layout reallocate its buffers.
template <class T>
void expect_layout_matches_single(Strategy<T>& layout, const ModelConfig& c, int64_t batch, int64_t seq,
                                  bool params_after_step, const MatchOptions& more = {}) {
  const uint64_t seed = 1234;
  SingleStrategy<T> single;
  ModelParams<T> ref_params(c, single.shard_spec(c));
  ref_params.init(seed);
  Transformer<T> ref(ref_params, single);
  ModelParams<T> params(c, layout.shard_spec(c));
  params.init(seed);
  if (more.perturb) {
    perturb_vectors(ref_params, seed);
    perturb_vectors(params, seed);
  }
  Transformer<T> model(params, layout);

  std::vector<int32_t> tokens, targets;
  make_batch(c.vocab_size, batch, seq, 77, tokens, targets);
  ref_params.zero_grads();
  params.zero_grads();
  const StepResult want = ref.forward(tokens.data(), targets.data(), batch, seq, true);
  const StepResult got = model.forward(tokens.data(), targets.data(), batch, seq, true);
  EXPECT_EQ(got.targets, want.targets);
  EXPECT_EQ(got.correct, want.correct);
  EXPECT_NEAR(got.loss, want.loss, tolerance<T>() * std::abs(want.loss)) << "loss";
  ref.backward();
  model.backward();
  expect_blocks_match(params, ref_params, true, "gradient");

  expect_vectors_match(model.logits(tokens.data(), batch, seq), ref.logits(tokens.data(), batch, seq),
                       "logits");

  // With clipping, so that the global gradient norm over shards (and not over replicated copies) matters.
  AdamW<T> ref_opt(ref_params, kernels::AdamWHyper{});
  AdamW<T> opt(params, kernels::AdamWHyper{}, &layout);
  const double ref_norm = ref_opt.step(single, 1e-3, 0.5);
  const double norm = opt.step(layout, 1e-3, 0.5);
  EXPECT_NEAR(norm, ref_norm, tolerance<T>() * ref_norm) << "gradient norm";
  if (params_after_step) expect_blocks_match(params, ref_params, false, "parameter after AdamW");
  if (!more.second_shape) return;

  const int64_t batch2 = layout.replicas();
  std::vector<int32_t> tokens2, targets2;
  make_batch(c.vocab_size, batch2, 2 * seq, 78, tokens2, targets2);
  ref_params.zero_grads();
  params.zero_grads();
  const StepResult want2 = ref.forward(tokens2.data(), targets2.data(), batch2, 2 * seq);
  const StepResult got2 = model.forward(tokens2.data(), targets2.data(), batch2, 2 * seq);
  EXPECT_NEAR(got2.loss, want2.loss, tolerance<T>() * std::abs(want2.loss)) << "loss, second shape";
  ref.backward();
  model.backward();
  expect_blocks_match(params, ref_params, true, "gradient, second shape");
}

}  // namespace tsp::test
