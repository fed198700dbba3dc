#include "parallel/equivalence.h"

#include <cmath>
#include <random>

#include "comm/comm_report.h"
#include "core/check.h"
#include "kernels/cross_entropy.h"
#include "model/params.h"
#include "model/transformer.h"
#include "parallel/registry.h"
#include "parallel/single/single.h"

namespace tsp {

double check_tolerance(const std::string& dtype) {
  if (dtype == "float64") return 1e-10;
  if (dtype == "float32") return 1e-5;
  throw UsageError(fmt::format("--dtype {} is not supported (allowed: float32, float64)", dtype));
}

namespace {

double rel_err(double diff2, double ref2) {
  return ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
}

template <class T>
nlohmann::json check_impl(const CheckOptions& o, Communicator& world) {
  const ModelConfig& c = o.model;
  c.validate();
  TSP_REQUIRE(!o.layout.zero1,
              "tsp check compares gradients, which --zero1 leaves reduced only in each replica's optimizer "
              "partition; ZeRO-1 is checked by training (tests/mpi/test_dp.cpp)");
  auto strategy = make_strategy<T>(o.strategy, world, o.layout);
  strategy->validate(c, o.batch, o.seq_len);
  const int64_t B = o.batch, S = o.seq_len, V = c.vocab_size;

  // The same batch on every rank: random tokens, next-token targets, some ignored.
  std::mt19937_64 rng(o.seed * 7919 + 17);
  std::uniform_int_distribution<int32_t> tok(0, int32_t(V - 1));
  std::vector<int32_t> tokens(size_t(B * S)), targets(size_t(B * S));
  for (auto& t : tokens) t = tok(rng);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < S; ++i)
      targets[size_t(b * S + i)] =
          (i + 1 < S && rng() % 10 != 0) ? tokens[size_t(b * S + i + 1)] : kernels::kIgnoreIndex;

  ModelParams<T> ref(c, ShardSpec::full(c));
  ref.init(o.seed);
  SingleStrategy<T> single;
  Transformer<T> ref_model(ref, single);
  ref.zero_grads();
  const double ref_loss = ref_model.forward(tokens.data(), targets.data(), B, S).loss;
  ref_model.backward();
  std::vector<T> ref_logits = ref_model.logits(tokens.data(), B, S);

  ModelParams<T> par(c, strategy->shard_spec(c));
  par.init(o.seed);
  Transformer<T> model(par, *strategy);
  if (strategy->comm()) strategy->comm()->reset_stats();
  par.zero_grads();
  const double loss = model.forward(tokens.data(), targets.data(), B, S).loss;
  model.backward();
  nlohmann::json comm =
      strategy->comm() ? comm_stats_json(strategy->comm()->stats()) : nlohmann::json::object();
  std::vector<T> logits = model.logits(tokens.data(), B, S);

  double ld = 0, lr = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const double d = double(logits[i]) - double(ref_logits[i]);
    ld += d * d;
    lr += double(ref_logits[i]) * double(ref_logits[i]);
  }

  // Per gradient tensor: squared differences of this rank's block against the same block of the reference,
  // summed over the ranks holding different shards (replicated tensors are compared locally).
  std::vector<std::string> names;
  std::vector<double> partial;  // (diff², ref²) per tensor; sharded ones are summed over the shards below
  std::vector<double> local;    // the same for replicated tensors, compared on this rank alone
  for (int b = 0; b < par.num_blocks(); ++b) {
    const ParamBlock& pb = par.blocks()[size_t(b)];
    const ParamBlock& rb = ref.blocks()[size_t(b)];
    for (size_t vi = 0; vi < pb.views.size(); ++vi) {
      const TensorView& v = pb.views[vi];
      const TensorView& rv = rb.views[vi];
      TSP_CHECK(v.name == rv.name, "block layouts differ: {} vs {}", v.name, rv.name);
      const T* g = par.grad(b).data() + v.offset;
      const T* rg = ref.grad(b).data() + rv.offset;
      double d2 = 0, r2 = 0;
      for (int64_t r = 0; r < v.valid_rows; ++r)
        for (int64_t col = 0; col < v.cols; ++col) {
          const double x = double(g[r * v.cols + col]);
          const double y = double(rg[(v.row_begin + r) * rv.cols + v.col_begin + col]);
          d2 += (x - y) * (x - y);
          r2 += y * y;
        }
      names.push_back(v.name);
      const bool sharded = pb.placement == Placement::sharded;
      partial.insert(partial.end(), {sharded ? d2 : 0.0, sharded ? r2 : 0.0});
      local.insert(local.end(), {sharded ? 0.0 : d2, sharded ? 0.0 : r2});
    }
  }
  if (strategy->comm()) strategy->comm()->set_phase("check");
  strategy->sum_over_shards(partial.data(), int(partial.size()), "check.grad_error_reduce");
  double worst = 0;
  std::string worst_name;
  for (size_t k = 0; k < names.size(); ++k) {
    const double e = rel_err(partial[2 * k] + local[2 * k], partial[2 * k + 1] + local[2 * k + 1]);
    if (e > worst || worst_name.empty()) {
      worst = e;
      worst_name = names[k];
    }
  }
  const double tol = check_tolerance(o.dtype);
  const double loss_err = std::abs(loss - ref_loss) / std::max(std::abs(ref_loss), 1e-300);
  const double logits_err = rel_err(ld, lr);
  const bool pass = loss_err <= tol && logits_err <= tol && worst <= tol;
  return {{"strategy", o.strategy},
          {"ranks", world.size()},
          {"dtype", o.dtype},
          {"seq_len", S},
          {"batch", B},
          {"loss", loss},
          {"reference_loss", ref_loss},
          {"max_rel_err", {{"loss", loss_err}, {"logits", logits_err}, {"grads", worst}}},
          {"worst_grad_tensor", worst_name},
          {"tolerance", tol},
          {"pass", pass},
          {"comm",
           {{"forward", comm.value("forward", nlohmann::json::object())},
            {"backward", comm.value("backward", nlohmann::json::object())}}}};
}

}  // namespace

nlohmann::json run_check(const CheckOptions& o, Communicator& world) {
  check_tolerance(o.dtype);
  if (o.dtype == "float32") return check_impl<float>(o, world);
  return check_impl<double>(o, world);
}

}  // namespace tsp
