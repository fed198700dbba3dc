#include "core/trace.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <vector>

#include "core/check.h"

namespace tsp {

namespace {
struct Event {
  std::string name, cat;
  double ts, dur;
};
std::mutex g_mu;
std::vector<Event> g_events;
bool g_on = false;
int g_pid = 0;
const auto g_epoch = std::chrono::steady_clock::now();
}  // namespace

void trace_enable(int pid) {
  g_on = true;
  g_pid = pid;
}

bool trace_enabled() {
  return g_on;
}

double trace_now_us() {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - g_epoch).count();
}

void trace_record(std::string_view name, std::string_view category, double start_us, double dur_us) {
  std::lock_guard lk(g_mu);
  g_events.push_back({std::string(name), std::string(category), start_us, dur_us});
}

void trace_write(const std::string& path) {
  nlohmann::json events = nlohmann::json::array();
  {
    std::lock_guard lk(g_mu);
    events.push_back({{"name", "process_name"},
                      {"ph", "M"},
                      {"pid", g_pid},
                      {"args", {{"name", fmt::format("rank {}", g_pid)}}}});
    for (const auto& e : g_events) {
      // Communication on its own track so exposed waits stand out next to compute.
      int tid = e.cat == "comm" ? 1 : 0;
      events.push_back({{"name", e.name},
                        {"cat", e.cat},
                        {"ph", "X"},
                        {"ts", e.ts},
                        {"dur", e.dur},
                        {"pid", g_pid},
                        {"tid", tid}});
    }
  }
  nlohmann::json doc = {{"traceEvents", events}, {"displayTimeUnit", "ms"}};
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    TSP_CHECK(static_cast<bool>(f), "cannot write trace file {}", tmp);
    f << doc.dump();
    TSP_CHECK(static_cast<bool>(f), "write failed for trace file {}", tmp);
  }
  TSP_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename {} to {}", tmp, path);
}

std::string trace_path_for_rank(const std::string& path, int rank, int ranks) {
  if (ranks == 1) return path;
  const std::string stem = path.ends_with(".json") ? path.substr(0, path.size() - 5) : path;
  return fmt::format("{}.rank{}.json", stem, rank);
}

std::vector<std::string> trace_paths(const std::string& path, int ranks) {
  std::vector<std::string> out;
  for (int r = 0; r < ranks; ++r) out.push_back(trace_path_for_rank(path, r, ranks));
  return out;
}

}  // namespace tsp
