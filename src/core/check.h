// Errors: one macro family that names file:line and says what a user can do about it.
//
// TSP_CHECK(cond, fmt, args...) throws tsp::Error on failure. Usage errors (bad config, sizes that do not
// divide, bad rank counts) are thrown as tsp::UsageError: they are deterministic, so every rank detects them
// before any communication and the CLI prints them on every rank and exits non-zero without MPI_Abort.
// Anything else reaching main() is treated as a failure of one rank and aborts the whole MPI job.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace tsp {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A problem with what the user asked for; the same on every rank.
class UsageError : public Error {
 public:
  using Error::Error;
};

namespace detail {
[[noreturn]] inline void throw_check(const char* file, int line, const std::string& msg) {
  throw Error(fmt::format("{} ({}:{})", msg, file, line));
}
}  // namespace detail

}  // namespace tsp

#define TSP_CHECK(cond, ...)                                                               \
  do {                                                                                     \
    if (!(cond)) ::tsp::detail::throw_check(__FILE__, __LINE__, fmt::format(__VA_ARGS__)); \
  } while (0)

// Validation of user input: the message must name the value and what is allowed.
#define TSP_REQUIRE(cond, ...)                                      \
  do {                                                              \
    if (!(cond)) throw ::tsp::UsageError(fmt::format(__VA_ARGS__)); \
  } while (0)
