// Non-finite steps. A NaN or Inf loss or gradient norm is the same on every rank (both are all-reduced), so
// every rank takes the same decision without extra communication; only then does one more all-reduce find
// the first parameter tensor whose gradient is non-finite on any rank, for the message.
#pragma once

#include <string>

#include "comm/communicator.h"
#include "model/params.h"
#include "train/optimizer.h"

namespace tsp {

// The HF name of the first tensor (in parameter order) with a non-finite gradient element on any rank, or
// "none". Collective over world.
template <class T>
std::string first_nonfinite_grad(const ModelParams<T>& p, const AdamW<T>& opt, Communicator& world);

// TSP_DEBUG_FAULT=action=nan-weight / nan-grad (comm/fault_injection.h): puts a NaN into the first element
// of the named tensor (label) held by this rank, in its weights (before the forward) or its gradient (after
// the backward, inside this rank's optimizer partition).
template <class T>
void inject_nan_fault(ModelParams<T>& p, const AdamW<T>& opt, bool gradient);

}  // namespace tsp
