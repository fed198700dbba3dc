// Data parallelism around any layout (see data_parallel.cpp).
#pragma once

#include <memory>
#include <string>

#include "parallel/registry.h"

namespace tsp {

template <class T>
std::unique_ptr<Strategy<T>> make_data_parallel(const std::string& name, Communicator& world,
                                                const StrategyOptions& opts);

}  // namespace tsp
