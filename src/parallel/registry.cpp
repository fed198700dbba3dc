#include "parallel/registry.h"

#include "core/check.h"
#include "parallel/single/single.h"
#include "parallel/tsp/tsp.h"

namespace tsp {

std::vector<std::string> strategy_names() {
  return {"single", "tsp"};
}

template <class T>
std::unique_ptr<Strategy<T>> make_strategy(const std::string& name, Communicator& comm,
                                           const StrategyOptions& opts) {
  if (name == "single") {
    TSP_REQUIRE(
        comm.size() == 1,
        "--strategy single runs on exactly 1 rank, but this job has {} (use --strategy tsp to spread one "
        "model over several ranks)",
        comm.size());
    return std::make_unique<SingleStrategy<T>>();
  }
  if (name == "tsp") {
    TspOptions t;
    t.keep_gathered_kv = opts.keep_gathered_kv;
    return std::make_unique<TspStrategy<T>>(comm, t);
  }
  throw UsageError(
      fmt::format("unknown --strategy '{}' (allowed: {})", name, fmt::join(strategy_names(), ", ")));
}

template std::unique_ptr<Strategy<float>> make_strategy<float>(const std::string&, Communicator&,
                                                               const StrategyOptions&);
template std::unique_ptr<Strategy<double>> make_strategy<double>(const std::string&, Communicator&,
                                                                 const StrategyOptions&);

}  // namespace tsp
