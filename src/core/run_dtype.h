// The precisions a run can have (--dtype: float32, bf16 — a float32 model under the bf16 policy,
// core/precision.h — and float64), and the one message every command gives for any other. (The formats of
// checkpoint files are model/dtype.h.)
#pragma once

#include <string>

namespace tsp {

inline bool supported_dtype(const std::string& dtype) {
  return dtype == "float32" || dtype == "float64" || dtype == "bf16";
}

// "--dtype X is not supported (allowed: float32, bf16, float64)".
inline std::string unsupported_dtype_message(const std::string& dtype) {
  return "--dtype " + dtype + " is not supported (allowed: float32, bf16, float64)";
}

}  // namespace tsp
