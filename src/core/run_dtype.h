// The storage precisions a run can have (--dtype: float32, float64), and the one message every command gives
// for any other. (The formats of checkpoint files are model/dtype.h.)
#pragma once

#include <string>

namespace tsp {

inline bool supported_dtype(const std::string& dtype) {
  return dtype == "float32" || dtype == "float64";
}

// "--dtype X is not supported (allowed: float32, float64)", and for the bf16 spellings what runs in bf16
// today: the paper's precision is asked for first, and the answer should say how to get its matrix rate.
inline std::string unsupported_dtype_message(const std::string& dtype) {
  std::string msg = "--dtype " + dtype + " is not supported (allowed: float32, float64)";
  if (dtype == "bf16" || dtype == "bfloat16")
    msg +=
        "; bf16 storage and communication are not implemented yet: --dtype float32 --matmul-precision bf16 "
        "runs the linear layers' and attention's products in bf16 with fp32 accumulation, and --save-dtype "
        "bf16 writes a bf16 checkpoint";
  return msg;
}

}  // namespace tsp
