// The message of the UsageError a callable throws ("(no UsageError)" when it throws none), for tests of
// error messages.
#pragma once

#include <functional>
#include <string>

#include "core/check.h"

namespace tsp::testing {

inline std::string usage_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(no UsageError)";
}

}  // namespace tsp::testing
