#include "parallel/registry.h"

#include "core/check.h"
#include "parallel/dp/data_parallel.h"
#include "parallel/single/single.h"
#include "parallel/tpsp/mesh.h"
#include "parallel/tsp/tsp.h"

namespace tsp {

std::vector<std::string> strategy_names() {
  return {"single", "tp", "sp", "tpsp", "tsp"};
}

template <class T>
std::unique_ptr<Strategy<T>> make_replica_strategy(const std::string& name, Communicator& comm,
                                                   const StrategyOptions& opts) {
  // Options that only one family of layouts reads are refused elsewhere rather than silently ignored.
  if (name == "single" || name == "tsp") {
    TSP_REQUIRE(
        opts.tp == 0 && opts.sp == 0 && !opts.sequence_parallel,
        "--tp, --sp and --sequence-parallel shape the tp / sp / tpsp layouts; --strategy {} has no use "
        "for them (got --tp {} --sp {}{})",
        name, opts.tp, opts.sp, opts.sequence_parallel ? " --sequence-parallel" : "");
  }
  TSP_REQUIRE(!opts.keep_gathered_kv || name == "tsp",
              "--keep-gathered-kv is implemented for --strategy tsp only (got --strategy {})", name);
  const bool wire16 = opts.weight_comm_bf16;
  TSP_REQUIRE(!wire16 || name == "tsp",
              "--weight-comm-dtype bf16 narrows the weight shards TSP moves; --strategy {} moves no weights "
              "(it communicates activations), so it applies to --strategy tsp only",
              name);
  if (name == "single") {
    TSP_REQUIRE(comm.size() == 1,
                "--strategy single runs on exactly 1 rank per replica, but {} ranks would share one model "
                "(use --strategy tsp, tp, sp or tpsp to spread one model over several ranks, or --dp {})",
                comm.size(), comm.size());
    return std::make_unique<SingleStrategy<T>>();
  }
  if (name == "tsp") {
    TspOptions t;
    t.keep_gathered_kv = opts.keep_gathered_kv;
    t.weight_comm_bf16 = wire16;
    require_weight_wire<T>(t);
    return std::make_unique<TspStrategy<T>>(comm, t);
  }
  if (name == "tp" || name == "sp" || name == "tpsp") return make_mesh_strategy<T>(name, comm, opts);
  throw UsageError(
      fmt::format("unknown --strategy '{}' (allowed: {})", name, fmt::join(strategy_names(), ", ")));
}

template <class T>
std::unique_ptr<Strategy<T>> make_strategy(const std::string& name, Communicator& world,
                                           const StrategyOptions& opts) {
  TSP_REQUIRE(opts.dp >= 1, "--dp must be >= 1, got {}", opts.dp);
  TSP_REQUIRE(world.size() % opts.dp == 0,
              "--dp {} does not divide the {} ranks of this job (ranks = dp x ranks per replica)", opts.dp,
              world.size());
  TSP_REQUIRE(!opts.zero1 || opts.dp > 1,
              "--zero1 shards optimizer state across replicas and needs --dp > 1");
  if (opts.dp == 1) {
    // Validate the name before anything collective, so that a typo is reported by every rank.
    return make_replica_strategy<T>(name, world, opts);
  }
  return make_data_parallel<T>(name, world, opts);
}

#define TSP_INSTANTIATE(T)                                                                          \
  template std::unique_ptr<Strategy<T>> make_strategy<T>(const std::string&, Communicator&,         \
                                                         const StrategyOptions&);                   \
  template std::unique_ptr<Strategy<T>> make_replica_strategy<T>(const std::string&, Communicator&, \
                                                                 const StrategyOptions&);
TSP_INSTANTIATE(float)
TSP_INSTANTIATE(double)
#undef TSP_INSTANTIATE

}  // namespace tsp
