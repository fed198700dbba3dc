#include "bench/compare.h"

#include <algorithm>
#include <charconv>

#include "bench/decode_bench.h"
#include "core/check.h"
#include "core/memory.h"
#include "core/trace.h"

namespace tsp {

namespace {

constexpr const char* kEntrySyntax =
    "NAME[:TxS][+sp][+kv][+seq] with NAME one of {}; :TxS (tpsp only) sets --tp T --sp S, +sp (tp, tpsp; "
    "also written -sp) sets --sequence-parallel, +kv (tsp) sets --keep-gathered-kv, +seq (tsp) sets "
    "--kv-layout sequence";

int parse_positive(std::string_view text, const std::string& entry) {
  int v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  TSP_REQUIRE(ec == std::errc() && end == text.data() + text.size() && v > 0,
              "--compare entry '{}': '{}' is not a positive integer in :TxS (expected {})", entry, text,
              fmt::format(kEntrySyntax, fmt::join(strategy_names(), ", ")));
  return v;
}

BenchLayout parse_entry(const std::string& entry, const StrategyOptions& base) {
  const std::string syntax = fmt::format(kEntrySyntax, fmt::join(strategy_names(), ", "));
  BenchLayout b;
  b.label = entry;
  b.layout.dp = base.dp;
  b.layout.zero1 = base.zero1;
  const size_t name_end = std::min(entry.size(), entry.find_first_of(":+-"));
  b.strategy = entry.substr(0, name_end);
  const auto names = strategy_names();
  TSP_REQUIRE(std::find(names.begin(), names.end(), b.strategy) != names.end(),
              "--compare entry '{}': unknown layout '{}' (expected {})", entry, b.strategy, syntax);
  std::string_view rest = std::string_view(entry).substr(name_end);
  if (rest.starts_with(':')) {
    const size_t mods = std::min(rest.size(), rest.find_first_of("+-"));
    const std::string_view mesh = rest.substr(1, mods - 1);
    const size_t x = mesh.find('x');
    TSP_REQUIRE(
        b.strategy == "tpsp" && x != std::string_view::npos,
        "--compare entry '{}': a mesh ':TxS' is written after tpsp only, as e.g. tpsp:2x2 (expected {})",
        entry, syntax);
    b.layout.tp = parse_positive(mesh.substr(0, x), entry);
    b.layout.sp = parse_positive(mesh.substr(x + 1), entry);
    rest = rest.substr(mods);
  }
  while (!rest.empty()) {
    const size_t next = std::min(rest.size(), rest.find_first_of("+-", 1));
    const std::string_view mod = rest.substr(1, next - 1);
    if (mod == "sp" && (b.strategy == "tp" || b.strategy == "tpsp")) {
      b.layout.sequence_parallel = true;
    } else if (mod == "kv" && b.strategy == "tsp") {
      b.layout.keep_gathered_kv = true;
    } else if (mod == "seq" && b.strategy == "tsp") {
      b.kv.kv_layout = KvLayout::sequence;
      b.kv.kv_layout_given = true;
    } else {
      throw UsageError(fmt::format("--compare entry '{}': '{}' is not a modifier of {} (expected {})", entry,
                                   rest.substr(0, next), b.strategy, syntax));
    }
    rest = rest.substr(next);
  }
  return b;
}

double ratio(double x, double base) {
  return base > 0 ? x / base : 0.0;
}

}  // namespace

std::vector<BenchLayout> parse_compare_list(const std::string& list, const StrategyOptions& base) {
  std::vector<BenchLayout> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.size(), list.find(',', start));
    std::string entry = list.substr(start, comma - start);
    entry.erase(0, entry.find_first_not_of(' '));
    entry.erase(entry.find_last_not_of(' ') + 1);
    TSP_REQUIRE(!entry.empty(),
                "--compare '{}' has an empty entry (expected a comma-separated list such as "
                "tp,sp,tpsp:2x2,tsp)",
                list);
    out.push_back(parse_entry(entry, base));
    start = comma + 1;
  }
  return out;
}

nlohmann::json run_compare(const BenchOptions& o, const std::vector<BenchLayout>& layouts,
                           Communicator& world) {
  TSP_REQUIRE(!layouts.empty(), "--compare needs at least one layout");
  if (o.decode)
    validate_decode_bench_options(o);
  else
    validate_bench_options(o);
  if (!o.trace.empty()) trace_enable(world.rank());
  nlohmann::json docs = nlohmann::json::array();
  for (const BenchLayout& l : layouts) {
    BenchOptions one = o;
    one.strategy = l.strategy;
    one.layout = l.layout;
    one.label = l.label;
    if (l.kv.kv_layout_given) one.kv = l.kv;
    one.trace.clear();  // one trace per rank for the whole comparison, written below
    const std::string span = "bench.layout " + l.label;
    const double t0 = trace_now_us();
    docs.push_back(run_bench(one, world));
    if (trace_enabled()) trace_record(span, "bench", t0, trace_now_us() - t0);
  }
  const nlohmann::json& base = docs.front();
  nlohmann::json ratios = nlohmann::json::array();
  if (o.decode) {
    for (const auto& d : docs)
      ratios.push_back(
          {{"label", d["label"]},
           {"tpot_s", ratio(d["tpot_s"]["mean"].get<double>(), base["tpot_s"]["mean"].get<double>())},
           {"ttft_s", ratio(d["ttft_s"].get<double>(), base["ttft_s"].get<double>())},
           {"memory_peak_bytes_max",
            ratio(d["memory_peak_bytes_max"].get<double>(), base["memory_peak_bytes_max"].get<double>())},
           {"decode_comm_recv_bytes_per_step_max",
            ratio(d["decode_comm_recv_bytes_per_step_max"].get<double>(),
                  base["decode_comm_recv_bytes_per_step_max"].get<double>())}});
    return {{"baseline", base["label"]},  {"ranks", world.size()}, {"mode", "decode"},
            {"dtype", o.dtype},           {"batch", o.batch},      {"prompt_len", o.prompt_len},
            {"new_tokens", o.new_tokens}, {"layouts", docs},       {"ratios", ratios}};
  }
  for (const auto& d : docs)
    ratios.push_back(
        {{"label", d["label"]},
         {"tokens_per_s", ratio(d["tokens_per_s"].get<double>(), base["tokens_per_s"].get<double>())},
         {"memory_peak_bytes_max",
          ratio(d["memory_peak_bytes_max"].get<double>(), base["memory_peak_bytes_max"].get<double>())},
         {"comm_recv_bytes_per_step_max", ratio(d["comm_recv_bytes_per_step_max"].get<double>(),
                                                base["comm_recv_bytes_per_step_max"].get<double>())}});
  nlohmann::json doc = {{"baseline", base["label"]}, {"ranks", world.size()}, {"mode", base["mode"]},
                        {"dtype", o.dtype},          {"seq_len", o.seq_len},  {"batch", o.batch},
                        {"steps", o.steps},          {"warmup", o.warmup},    {"layouts", docs},
                        {"ratios", ratios}};
  if (!o.trace.empty()) {
    trace_write(trace_path_for_rank(o.trace, world.rank(), world.size()));
    doc["trace"] = o.trace;
    doc["trace_files"] = trace_paths(o.trace, world.size());
  }
  return doc;
}

std::string compare_table(const nlohmann::json& doc) {
  const double mib = 1024.0 * 1024.0;
  if (doc["mode"] == "decode") {
    std::string out =
        fmt::format("{:<16} {:>9} {:>7} {:>9} {:>7} {:>14} {:>7} {:>15} {:>7}\n", "layout", "TPOT ms",
                    "ratio", "TTFT s", "ratio", "peak MiB/rank", "ratio", "comm KiB/step", "ratio");
    for (size_t i = 0; i < doc["layouts"].size(); ++i) {
      const auto& d = doc["layouts"][i];
      const auto& r = doc["ratios"][i];
      out += fmt::format("{:<16} {:>9.3f} {:>7.3f} {:>9.3f} {:>7.3f} {:>14.2f} {:>7.3f} {:>15.2f} {:>7.3f}\n",
                         d["label"].get<std::string>(), 1e3 * d["tpot_s"]["mean"].get<double>(),
                         r["tpot_s"].get<double>(), d["ttft_s"].get<double>(), r["ttft_s"].get<double>(),
                         d["memory_peak_bytes_max"].get<double>() / mib,
                         r["memory_peak_bytes_max"].get<double>(),
                         d["decode_comm_recv_bytes_per_step_max"].get<double>() / 1024.0,
                         r["decode_comm_recv_bytes_per_step_max"].get<double>());
    }
    return out;
  }
  std::string out = fmt::format("{:<16} {:>10} {:>7} {:>14} {:>7} {:>15} {:>7}\n", "layout", "tokens/s",
                                "ratio", "peak MiB/rank", "ratio", "comm MiB/step", "ratio");
  for (size_t i = 0; i < doc["layouts"].size(); ++i) {
    const auto& d = doc["layouts"][i];
    const auto& r = doc["ratios"][i];
    out += fmt::format("{:<16} {:>10.0f} {:>7.3f} {:>14.2f} {:>7.3f} {:>15.2f} {:>7.3f}\n",
                       d["label"].get<std::string>(), d["tokens_per_s"].get<double>(),
                       r["tokens_per_s"].get<double>(), d["memory_peak_bytes_max"].get<double>() / mib,
                       r["memory_peak_bytes_max"].get<double>(),
                       d["comm_recv_bytes_per_step_max"].get<double>() / mib,
                       r["comm_recv_bytes_per_step_max"].get<double>());
  }
  return out;
}

}  // namespace tsp
