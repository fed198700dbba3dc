#include "parallel/tpsp/mesh.h"

#include "core/check.h"

namespace tsp {

template <class T>
std::unique_ptr<Strategy<T>> make_mesh_strategy(const std::string& name, Communicator&,
                                                const StrategyOptions&) {
  throw UsageError(fmt::format("--strategy {} is not built yet", name));
}

template std::unique_ptr<Strategy<float>> make_mesh_strategy<float>(const std::string&, Communicator&,
                                                                    const StrategyOptions&);
template std::unique_ptr<Strategy<double>> make_mesh_strategy<double>(const std::string&, Communicator&,
                                                                      const StrategyOptions&);

}  // namespace tsp
