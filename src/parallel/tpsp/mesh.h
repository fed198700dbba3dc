// Megatron TP, context-parallel SP and the TP×SP mesh (see mesh_strategy.h).
#pragma once

#include <memory>
#include <string>

#include "parallel/registry.h"

namespace tsp {

// name: "tp" (T = comm.size(), Σ = 1), "sp" (T = 1, Σ = comm.size()) or "tpsp" (T x Σ from opts.tp /
// opts.sp).
template <class T>
std::unique_ptr<Strategy<T>> make_mesh_strategy(const std::string& name, Communicator& comm,
                                                const StrategyOptions& opts);

}  // namespace tsp
