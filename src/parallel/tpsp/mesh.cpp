#include "parallel/tpsp/mesh.h"

#include "core/check.h"
#include "parallel/tpsp/mesh_strategy.h"

namespace tsp {

namespace {

// The mesh shape from the strategy name and --tp / --sp, checked before any collective so that every rank
// reports the same error.
MeshShape mesh_shape(const std::string& name, int ranks, const StrategyOptions& opts) {
  MeshShape m;
  m.sequence_parallel = opts.sequence_parallel;
  TSP_REQUIRE(opts.tp >= 0 && opts.sp >= 0, "--tp and --sp must be positive (got --tp {} --sp {})", opts.tp,
              opts.sp);
  if (name == "tp") {
    TSP_REQUIRE((opts.tp == 0 || opts.tp == ranks) && opts.sp <= 1,
                "--strategy tp uses all {} ranks of the replica as one TP group (got --tp {} --sp {}; use "
                "--strategy tpsp for a TP x SP mesh)",
                ranks, opts.tp, opts.sp);
    m.tp = ranks;
    return m;
  }
  if (name == "sp") {
    TSP_REQUIRE(!opts.sequence_parallel,
                "--sequence-parallel needs a tensor-parallel axis; --strategy sp has none (use --strategy tp "
                "or tpsp)");
    TSP_REQUIRE((opts.sp == 0 || opts.sp == ranks) && opts.tp <= 1,
                "--strategy sp uses all {} ranks of the replica as one SP group (got --tp {} --sp {}; use "
                "--strategy tpsp for a TP x SP mesh)",
                ranks, opts.tp, opts.sp);
    m.sp = ranks;
    return m;
  }
  TSP_REQUIRE(opts.tp > 0 || opts.sp > 0,
              "--strategy tpsp needs the mesh shape: give --tp T or --sp S (or both) with T x S = {} ranks",
              ranks);
  TSP_REQUIRE(opts.tp == 0 || ranks % opts.tp == 0,
              "--strategy tpsp with --tp {}: {} ranks do not split into TP groups of {} (--tp x --sp must be "
              "{})",
              opts.tp, ranks, opts.tp, ranks);
  TSP_REQUIRE(opts.sp == 0 || ranks % opts.sp == 0,
              "--strategy tpsp with --sp {}: {} ranks do not split into SP groups of {} (--tp x --sp must be "
              "{})",
              opts.sp, ranks, opts.sp, ranks);
  const int tp = opts.tp > 0 ? opts.tp : ranks / opts.sp;
  const int sp = opts.sp > 0 ? opts.sp : ranks / opts.tp;
  TSP_REQUIRE(tp * sp == ranks,
              "--strategy tpsp with --tp {} --sp {}: {} x {} = {}, but the replica has {} ranks", tp, sp, tp,
              sp, tp * sp, ranks);
  m.tp = tp;
  m.sp = sp;
  return m;
}

}  // namespace

template <class T>
std::unique_ptr<Strategy<T>> make_mesh_strategy(const std::string& name, Communicator& comm,
                                                const StrategyOptions& opts) {
  TSP_CHECK(name == "tp" || name == "sp" || name == "tpsp", "make_mesh_strategy: unknown name {}", name);
  return std::make_unique<MeshStrategy<T>>(name, comm, mesh_shape(name, comm.size(), opts));
}

template std::unique_ptr<Strategy<float>> make_mesh_strategy<float>(const std::string&, Communicator&,
                                                                    const StrategyOptions&);
template std::unique_ptr<Strategy<double>> make_mesh_strategy<double>(const std::string&, Communicator&,
                                                                      const StrategyOptions&);

}  // namespace tsp
