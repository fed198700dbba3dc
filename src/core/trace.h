// Per-process Chrome-trace timeline (chrome://tracing / Perfetto "Trace Event Format"): complete events
// ("ph":"X") for compute and communication spans. Disabled unless trace_enable() was called; a disabled
// TraceSpan costs one branch.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tsp {

// Starts recording; `pid` is the MPI rank so that per-rank files merge into one view.
void trace_enable(int pid);
bool trace_enabled();
// Microseconds since the process' trace epoch.
double trace_now_us();
void trace_record(std::string_view name, std::string_view category, double start_us, double dur_us);
// Writes the recorded events as one JSON document (atomically: temp file + rename).
void trace_write(const std::string& path);

// The file rank r writes for --trace PATH: PATH itself on one rank; on several, ".rank<r>" inserted before a
// final ".json" (appended otherwise): out.json -> out.rank0.json, out.rank1.json, ...; trace ->
// trace.rank0.json.
std::string trace_path_for_rank(const std::string& path, int rank, int ranks);
// Every rank's file, in rank order.
std::vector<std::string> trace_paths(const std::string& path, int ranks);

class TraceSpan {
 public:
  TraceSpan(std::string_view name, std::string_view category)
      : name_(name), cat_(category), on_(trace_enabled()), t0_(on_ ? trace_now_us() : 0) {}
  ~TraceSpan() {
    if (on_) trace_record(name_, cat_, t0_, trace_now_us() - t0_);
  }
  TraceSpan(const TraceSpan&) = delete;
  TraceSpan& operator=(const TraceSpan&) = delete;

 private:
  std::string_view name_, cat_;
  bool on_;
  double t0_;
};

}  // namespace tsp
