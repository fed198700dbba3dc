#include "parallel/dp/data_parallel.h"

#include "core/check.h"

namespace tsp {

template <class T>
std::unique_ptr<Strategy<T>> make_data_parallel(const std::string& name, Communicator&,
                                                const StrategyOptions&) {
  throw UsageError(fmt::format("--dp around {} is not built yet", name));
}

template std::unique_ptr<Strategy<float>> make_data_parallel<float>(const std::string&, Communicator&,
                                                                    const StrategyOptions&);
template std::unique_ptr<Strategy<double>> make_data_parallel<double>(const std::string&, Communicator&,
                                                                      const StrategyOptions&);

}  // namespace tsp
