#include "comm/comm_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <vector>

#include "core/check.h"

namespace tsp {

nlohmann::json comm_stats_json(const CommStats& stats) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [phase, labels] : stats)
    for (const auto& [label, c] : labels)
      j[phase][label] = {{"op", c.op},
                         {"calls", c.calls},
                         {"payload_bytes", c.payload_bytes},
                         {"recv_bytes", c.recv_bytes},
                         {"seconds", c.seconds}};
  return j;
}

std::string comm_stats_table(const CommStats& stats) {
  constexpr size_t kCols = 7;
  using Row = std::array<std::string, kCols>;
  constexpr double kMiB = 1024.0 * 1024.0;
  std::vector<Row> rows = {{"phase", "label", "op", "calls", "payload MiB", "recv MiB", "seconds"}};
  for (const auto& [phase, labels] : stats)
    for (const auto& [label, c] : labels)
      rows.push_back({phase, label, c.op, fmt::format("{}", c.calls),
                      fmt::format("{:.2f}", c.payload_bytes / kMiB),
                      fmt::format("{:.2f}", c.recv_bytes / kMiB), fmt::format("{:.6f}", c.seconds)});
  std::array<size_t, kCols> width{};
  for (const Row& r : rows)
    for (size_t i = 0; i < kCols; ++i) width[i] = std::max(width[i], r[i].size());
  // Names read left-aligned, numbers right-aligned so that their digits line up.
  std::string out;
  for (const Row& r : rows) {
    for (size_t i = 0; i < kCols; ++i) {
      if (i > 0) out += "  ";
      out += i < 3 ? fmt::format("{:<{}}", r[i], width[i]) : fmt::format("{:>{}}", r[i], width[i]);
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += '\n';
  }
  return out;
}

CommStats comm_stats_sum(const CommStats& a, const CommStats& b) {
  CommStats sum = a;
  for (const auto& [phase, labels] : b)
    for (const auto& [label, c] : labels) {
      CommCounter& s = sum[phase][label];
      if (s.op.empty()) s.op = c.op;
      TSP_CHECK(s.op == c.op, "cannot sum comm counters of label '{}' in phase '{}': ops {} and {} differ",
                label, phase, s.op, c.op);
      s.calls += c.calls;
      s.payload_bytes += c.payload_bytes;
      s.recv_bytes += c.recv_bytes;
      s.seconds += c.seconds;
    }
  return sum;
}

CommStats comm_stats_minus(const CommStats& a, const CommStats& b) {
  CommStats out;
  for (const auto& [phase, labels] : a)
    for (const auto& [label, c] : labels) {
      CommCounter d = c;
      auto p = b.find(phase);
      if (p != b.end()) {
        auto l = p->second.find(label);
        if (l != p->second.end()) {
          TSP_CHECK(l->second.op == c.op, "comm counters of label '{}' in phase '{}': ops {} and {} differ",
                    label, phase, c.op, l->second.op);
          d.calls -= l->second.calls;
          d.payload_bytes -= l->second.payload_bytes;
          d.recv_bytes -= l->second.recv_bytes;
          d.seconds -= l->second.seconds;
        }
      }
      TSP_CHECK(d.calls >= 0 && d.recv_bytes >= 0,
                "comm_stats_minus: '{}' in phase '{}' is not an earlier snapshot", label, phase);
      if (d.calls > 0) out[phase][label] = d;
    }
  return out;
}

int64_t comm_recv_bytes(const CommStats& stats) {
  int64_t sum = 0;
  for (const auto& [phase, labels] : stats)
    for (const auto& [label, c] : labels) sum += c.recv_bytes;
  return sum;
}

}  // namespace tsp
