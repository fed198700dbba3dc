// Strategy names -> implementations. Adding a layout means one folder under parallel/ and one line here.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "parallel/strategy.h"

namespace tsp {

struct StrategyOptions {
  bool keep_gathered_kv = false;  // tsp: keep the all-gathered K/V for the backward instead of re-gathering
};

std::vector<std::string> strategy_names();

// Builds the strategy for this rank on `comm` (all ranks of comm form one model replica). Throws UsageError
// for an unknown name or a rank count the strategy cannot use.
template <class T>
std::unique_ptr<Strategy<T>> make_strategy(const std::string& name, Communicator& comm,
                                           const StrategyOptions& opts = {});

}  // namespace tsp
