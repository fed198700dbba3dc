// tsp plan's report: runs the model for every layout, picks the recommendation and renders it.
#include "plan/report.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/check.h"
#include "plan/sizes.h"

namespace tsp::plan {

int dtype_bytes(const std::string& option, const std::string& name) {
  if (name == "float64") return 8;
  if (name == "float32") return 4;
  if (name == "bf16" || name == "bfloat16") return 2;
  throw UsageError(fmt::format("{} '{}' is not a dtype (allowed: float32, bf16, float64)", option, name));
}

Recompute parse_recompute(const std::string& name) {
  for (Recompute r : {Recompute::runtime, Recompute::none, Recompute::selective, Recompute::full})
    if (recompute_name(r) == name) return r;
  throw UsageError(
      fmt::format("--recompute '{}' is not a mode (allowed: runtime, none, selective, full)", name));
}

std::string recompute_name(Recompute r) {
  switch (r) {
    case Recompute::runtime:
      return "runtime";
    case Recompute::none:
      return "none";
    case Recompute::selective:
      return "selective";
    case Recompute::full:
      return "full";
  }
  return "?";
}

Policy policy_of(const Request& r) {
  const int weight = dtype_bytes("--dtype", r.dtype);
  const int moments = dtype_bytes("--optimizer-dtype", r.optimizer_dtype);
  const int grad_wire = dtype_bytes("--grad-reduce-dtype", r.grad_reduce_dtype);
  TSP_REQUIRE(r.master == "auto" || r.master == "on" || r.master == "off",
              "--master-weights '{}' is not allowed (allowed: auto, on, off)", r.master);
  // bf16 is the runtime's policy (--dtype bf16): fp32 compute and gradients beside bf16 weights, saved
  // activations and traffic; float32 and float64 are one size throughout.
  Policy p = weight == 2 ? Policy::runtime_bf16() : Policy::runtime(weight);
  p.optimizer_bytes = moments;
  TSP_REQUIRE(grad_wire <= p.compute_bytes, "--grad-reduce-dtype {} is wider than the gradients ({})",
              r.grad_reduce_dtype, p.compute_bytes == 8 ? "float64" : "float32");
  p.grad_wire_bytes = grad_wire == 2 ? 2 : p.compute_bytes;
  // Mixed precision keeps a full-precision copy of narrower weights for the update (auto).
  p.master_weights = r.master == "on" || (r.master == "auto" && p.weight_bytes < std::max(4, moments));
  p.master_bytes = std::max(4, p.optimizer_bytes);
  p.recompute = parse_recompute(r.recompute);
  if (!r.weight_comm_dtype.empty()) {
    p.weight_wire_bytes = dtype_bytes("--weight-comm-dtype", r.weight_comm_dtype);
    TSP_REQUIRE(p.weight_wire_bytes <= p.compute_bytes,
                "--weight-comm-dtype {} is wider than --dtype {}: the wire can only narrow the weights",
                r.weight_comm_dtype, r.dtype);
  }
  return p;
}

namespace {

// --tp / --sp pick one T x Σ factorisation of the tpsp mesh (T, Σ >= 2, T·Σ = --ranks); a value that names
// none would silently drop every tpsp row, so it is refused with the factorisations there are.
void require_mesh_restriction(const Request& r) {
  std::vector<std::string> shapes;
  for (int T = 2; T <= r.ranks / 2; ++T)
    if (r.ranks % T == 0) shapes.push_back(fmt::format("{}x{}", T, r.ranks / T));
  const std::string have = shapes.empty()
                               ? fmt::format("--ranks {} has none", r.ranks)
                               : fmt::format("those of --ranks {}: {}", r.ranks, fmt::join(shapes, ", "));
  auto fits = [&](int deg) { return deg >= 2 && r.ranks % deg == 0 && r.ranks / deg >= 2; };
  TSP_REQUIRE(
      !r.only_tp || fits(r.only_tp),
      "--tp {} does not restrict the tpsp mesh of --ranks {} to a T x Σ factorisation with T, Σ >= 2 ({}); "
      "leave out --tp to plan them all",
      r.only_tp, r.ranks, have);
  TSP_REQUIRE(
      !r.only_sp || fits(r.only_sp),
      "--sp {} does not restrict the tpsp mesh of --ranks {} to a T x Σ factorisation with T, Σ >= 2 ({}); "
      "leave out --sp to plan them all",
      r.only_sp, r.ranks, have);
  if (r.only_tp && r.only_sp)
    TSP_REQUIRE(r.only_tp * r.only_sp == r.ranks, "--tp {} x --sp {} must equal --ranks {}", r.only_tp,
                r.only_sp, r.ranks);
}

}  // namespace

DeviceProfile device_of(const Request& r) {
  return device_for_ranks(device_profile(r.device), r.ranks * r.dp);
}

bool context_exceeds_model_context(const Request& r) {
  return r.shape.seq_len > r.model.max_sequence_length();
}

std::string no_recommendation_reason(const Result& res) {
  const Row* smallest = nullptr;
  for (const Row& row : res.rows)
    if (row.pred.applicable && (!smallest || row.pred.memory.total() < smallest->pred.memory.total()))
      smallest = &row;
  if (!smallest) return "no layout applies to this model and shape (each row says why)";
  return fmt::format(
      "no applicable layout fits the memory budget of {} per device (the smallest, {}, needs {})",
      human_bytes(double(res.budget)), smallest->pred.layout.name(),
      human_bytes(double(smallest->pred.memory.total())));
}

Result run(const Request& r) {
  TSP_REQUIRE(r.shape.seq_len > 0, "--seq-len must be positive, got {}", r.shape.seq_len);
  TSP_REQUIRE(r.shape.micro_batch > 0, "--batch must be positive, got {}", r.shape.micro_batch);
  TSP_REQUIRE(r.ranks > 0, "--ranks must be positive, got {}", r.ranks);
  TSP_REQUIRE(r.dp > 0, "--dp must be positive, got {}", r.dp);
  TSP_REQUIRE(r.only_tp >= 0 && r.only_sp >= 0, "--tp and --sp must be positive when given");
  require_mesh_restriction(r);
  const Policy pol = policy_of(r);
  const DeviceProfile dev = device_of(r);
  Result res;
  res.budget = r.budget > 0 ? r.budget : dev.memory_bytes;
  for (LayoutSpec lay : layouts_for(r.ranks, r.dp, r.zero1, r.only_tp, r.only_sp)) {
    lay.keep_gathered_kv = r.keep_gathered_kv && lay.kind == Kind::tsp;
    Row row;
    row.pred = predict(r.model, lay, r.shape, pol);
    row.recompute = pol.recompute;
    if (row.pred.applicable) {
      if (row.recompute == Recompute::runtime) row.recompute = runtime_recompute(lay.kind);
      row.proj = project(row.pred, r.shape, pol, dev);
      row.fits = row.pred.memory.total() <= res.budget;
    }
    res.rows.push_back(std::move(row));
  }
  for (size_t i = 0; i < res.rows.size(); ++i) {
    const Row& row = res.rows[i];
    if (!row.pred.applicable || !row.fits) continue;
    if (res.recommended < 0 || row.proj.tokens_per_s > res.rows[size_t(res.recommended)].proj.tokens_per_s)
      res.recommended = int(i);
  }
  return res;
}

namespace {

nlohmann::json row_json(const Row& row) {
  const Prediction& p = row.pred;
  const LayoutSpec& l = p.layout;
  nlohmann::json j = {{"name", l.name()},
                      // TSP folds both onto its D ranks: 1/D of the weights and 1/D of the tokens each.
                      {"tp", l.tp},
                      {"sp", l.kind == Kind::tsp ? l.tp : l.sp},
                      {"tsp", l.kind == Kind::tsp ? l.tp : 1},
                      {"ranks", l.ranks()},
                      {"dp", l.dp},
                      {"zero1", l.zero1},
                      {"sequence_parallel", l.sequence_parallel},
                      {"runtime_flags", l.runtime_flags()},
                      {"applicable", p.applicable},
                      {"reason", p.reason}};
  if (!p.applicable) return j;
  const Memory& m = p.memory;
  j["recompute"] = recompute_name(row.recompute);
  j["memory_bytes"] = {{"parameters", m.parameters},       {"gradients", m.gradients},
                       {"optimizer", m.optimizer},         {"activations", m.activations},
                       {"communication", m.communication}, {"workspace_estimate", m.workspace},
                       {"transient", m.transient()},       {"total", m.total()}};
  nlohmann::json by_label = nlohmann::json::object(), calls = nlohmann::json::object();
  nlohmann::json totals = {{"forward", 0}, {"backward", 0}, {"optimizer", 0}};
  for (const auto& [phase, labels] : p.comm) {
    for (const auto& [label, e] : labels) {
      by_label[phase][label] = e.recv_bytes;
      calls[phase][label] = {
          {"op", e.op}, {"calls", e.calls}, {"payload_bytes", e.payload_bytes}, {"recv_bytes", e.recv_bytes}};
    }
    totals[phase] = p.comm_bytes(phase);
  }
  j["comm_bytes"] = totals;
  j["comm_by_label"] = by_label;
  j["comm_ops"] = calls;
  j["flops"] = p.flops;
  j["projected"] = {{"compute_s", row.proj.compute_s},
                    {"comm_s", row.proj.comm_s},
                    {"exposed_comm_s", row.proj.exposed_comm_s},
                    {"step_s", row.proj.step_s_overlap},
                    {"step_s_no_overlap", row.proj.step_s_no_overlap}};
  j["projected_tokens_per_s"] = row.proj.tokens_per_s;
  j["projected_tokens_per_s_no_overlap"] = row.proj.tokens_per_s_no_overlap;
  j["fits"] = row.fits;
  return j;
}

}  // namespace

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (std::fabs(b) >= 1024 && u < 4) b /= 1024, ++u;
  return u == 0 ? fmt::format("{:.0f} {}", b, units[u]) : fmt::format("{:.2f} {}", b, units[u]);
}

std::string human_rate(double v) {
  const char* units[] = {"", "K", "M", "G", "T", "P", "E"};
  int u = 0;
  while (v >= 1000 && u < 6) v /= 1000, ++u;
  return fmt::format("{:.3g}{}", v, units[u]);
}

nlohmann::json to_json(const Request& r, const Result& res) {
  const Policy pol = policy_of(r);
  const DeviceProfile dev = device_of(r);
  const ModelConfig& c = r.model;
  nlohmann::json strategies = nlohmann::json::array();
  for (const Row& row : res.rows) strategies.push_back(row_json(row));
  nlohmann::json j = {
      {"model",
       {{"name", r.model_name},
        {"parameters", c.parameter_count()},
        {"hidden_size", c.hidden_size},
        {"intermediate_size", c.intermediate_size},
        {"num_hidden_layers", c.num_hidden_layers},
        {"num_attention_heads", c.num_attention_heads},
        {"num_key_value_heads", c.num_key_value_heads},
        {"head_dim", c.head_dim},
        {"vocab_size", c.vocab_size},
        {"max_position_embeddings", c.max_position_embeddings},
        {"tie_word_embeddings", c.tie_word_embeddings}}},
      {"context_exceeds_max_position_embeddings", context_exceeds_model_context(r)},
      {"seq_len", r.shape.seq_len},
      {"micro_batch", r.shape.micro_batch},
      {"global_batch", r.shape.micro_batch * r.dp},
      {"ranks", r.ranks},
      {"dp", r.dp},
      {"devices", r.ranks * r.dp},
      {"zero1", r.zero1 && r.dp > 1},
      {"policy",
       {{"dtype", r.dtype},
        {"optimizer_dtype", r.optimizer_dtype},
        {"grad_reduce_dtype", r.grad_reduce_dtype},
        {"master_weights", pol.master_weights},
        {"recompute", recompute_name(pol.recompute)}}},
      {"device",
       {{"name", dev.name},
        {"description", dev.description},
        {"source", dev.source},
        {"matmul_flops_fp32", dev.matmul_flops_fp32},
        {"matmul_flops_bf16", dev.matmul_flops_bf16},
        {"matmul_efficiency", dev.matmul_efficiency},
        {"link_bytes_per_s", dev.link_bytes_per_s},
        {"dp_bytes_per_s", dev.dp_bytes_per_s},
        {"latency_s", dev.latency_s},
        {"memory_bytes", dev.memory_bytes},
        {"host_cores", dev.host_cores}}},
      {"memory_budget_bytes", res.budget},
      {"strategies", strategies},
  };
  if (res.recommended >= 0) {
    const Row& best = res.rows[size_t(res.recommended)];
    j["recommendation"] = {{"name", best.pred.layout.name()},
                           {"runtime_flags", best.pred.layout.runtime_flags()},
                           {"projected_tokens_per_s", best.proj.tokens_per_s}};
  } else {
    j["recommendation"] = nullptr;
    j["no_recommendation_reason"] = no_recommendation_reason(res);
  }
  return j;
}

std::string to_table(const Request& r, const Result& res) {
  const Policy pol = policy_of(r);
  std::string out = fmt::format(
      "tsp plan | model {} ({} parameters) | batch {} x seq {} per replica | {} rank{} per replica x dp "
      "{}{} | "
      "{}, optimizer {}{}, gradient sums {} | recompute {} | device {}, budget {} ({})\n",
      r.model_name, human_rate(double(r.model.parameter_count())), r.shape.micro_batch, r.shape.seq_len,
      r.ranks, r.ranks == 1 ? "" : "s", r.dp, r.zero1 && r.dp > 1 ? " (ZeRO-1)" : "",
      r.weight_comm_dtype.empty()
          ? r.dtype
          : fmt::format("{} (tsp weights on the wire: {})", r.dtype, r.weight_comm_dtype),
      r.optimizer_dtype, pol.master_weights ? " + master weights" : "", r.grad_reduce_dtype, r.recompute,
      r.device, human_bytes(double(res.budget)), r.budget > 0 ? "--memory-budget" : "the device's memory");
  const DeviceProfile dev = device_of(r);
  if (dev.host_cores > 0) out += fmt::format("device: {}\n", dev.description);
  if (context_exceeds_model_context(r))
    out += fmt::format(
        "warning: --seq-len {} exceeds the model's context {} (max_position_embeddings {}, rope_scaling "
        "{}): planned anyway, as for a context extension; tsp train and bench refuse it until the config "
        "covers it\n",
        r.shape.seq_len, r.model.max_sequence_length(), r.model.max_position_embeddings,
        r.model.rope_scaling.type_name());
  out += fmt::format(
      "{:<9} {:>3} {:>3} | {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} | {:>10} {:>10} | {:>9} | {:>9} {:>9} | "
      "{}\n",
      "layout", "T", "Σ", "params", "grads", "optimizer", "activ.", "transient", "total", "comm fwd",
      "comm bwd", "FLOP/rank", "tok/s", "no-ovl", "fits");
  for (size_t i = 0; i < res.rows.size(); ++i) {
    const Row& row = res.rows[i];
    const LayoutSpec& l = row.pred.layout;
    const int T = l.kind == Kind::tsp ? l.tp : l.tp, S = l.kind == Kind::tsp ? l.tp : l.sp;
    if (!row.pred.applicable) {
      out += fmt::format("{:<9} {:>3} {:>3} | not applicable: {}\n", l.name(), T, S, row.pred.reason);
      continue;
    }
    const Memory& m = row.pred.memory;
    out += fmt::format(
        "{:<9} {:>3} {:>3} | {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} | {:>10} {:>10} | {:>9} | {:>9} {:>9} "
        "| {}{}\n",
        l.name(), T, S, human_bytes(double(m.parameters)), human_bytes(double(m.gradients)),
        human_bytes(double(m.optimizer)), human_bytes(double(m.activations)),
        human_bytes(double(m.transient())), human_bytes(double(m.total())),
        human_bytes(double(row.pred.comm_bytes("forward"))),
        human_bytes(double(row.pred.comm_bytes("backward"))), human_rate(row.pred.flops),
        human_rate(row.proj.tokens_per_s), human_rate(row.proj.tokens_per_s_no_overlap),
        row.fits ? "yes" : "no", int(i) == res.recommended ? "  <- recommended" : "");
  }
  out +=
      "(T, Σ: the tensor and sequence degrees of one replica; tsp folds both into one axis of D = T = Σ "
      "ranks. "
      "Transient = communication buffers + an estimate of the workspace. Communication: bytes received per "
      "rank per step.)\n";
  if (res.recommended >= 0) {
    const Row& best = res.rows[size_t(res.recommended)];
    out += fmt::format("recommendation: {} ({}), {} tokens/s projected\n", best.pred.layout.name(),
                       best.pred.layout.runtime_flags(), human_rate(best.proj.tokens_per_s));
  } else {
    out += "recommendation: none: " + no_recommendation_reason(res) + "\n";
  }
  return out;
}

nlohmann::json sweep_json(const Request& r) {
  const Policy pol = policy_of(r);
  const DeviceProfile base = device_profile(r.device);
  const DeviceProfile dev = device_of(r);
  const int64_t budget = r.budget > 0 ? r.budget : dev.memory_bytes;
  nlohmann::json j = {{"model", r.model_name},
                      {"hidden_size", r.model.hidden_size},
                      {"ranks", r.ranks},
                      {"dp", r.dp},
                      {"micro_batch", r.shape.micro_batch},
                      {"seq_len", r.shape.seq_len},
                      {"dtype", r.dtype},
                      {"device", r.device},
                      {"max_position_embeddings", r.model.max_position_embeddings},
                      {"memory_budget_bytes", budget}};
  auto point = [&](const LayoutSpec& lay, const RunShape& s, const DeviceProfile& d, int64_t bud) {
    const Prediction p = predict(r.model, lay, s, pol);
    nlohmann::json pt = {
        {"seq_len", s.seq_len}, {"tokens", s.micro_batch * s.seq_len}, {"applicable", p.applicable}};
    if (!p.applicable) {
      pt["reason"] = p.reason;
      return pt;
    }
    const Projection pr = project(p, s, pol, d);
    pt["memory_total"] = p.memory.total();
    pt["activations"] = p.memory.activations;
    pt["comm_forward"] = p.comm_bytes("forward");
    pt["comm_backward"] = p.comm_bytes("backward");
    pt["tokens_per_s"] = pr.tokens_per_s;
    pt["fits"] = p.memory.total() <= bud;
    return pt;
  };
  // Sequence lengths: powers of two from 512 to the larger of the request and the model's context.
  std::vector<int64_t> seqs;
  const int64_t top =
      std::min<int64_t>(std::max(r.shape.seq_len, r.model.max_sequence_length()), int64_t(1) << 20);
  for (int64_t s = 512; s <= top; s *= 2) seqs.push_back(s);
  nlohmann::json mem = nlohmann::json::object();
  for (const LayoutSpec& lay : layouts_for(r.ranks, r.dp, r.zero1, r.only_tp, r.only_sp)) {
    const std::string key =
        lay.name() + (lay.kind == Kind::tpsp ? fmt::format(" {}x{}", lay.tp, lay.sp) : "");
    for (int64_t s : seqs) mem[key].push_back(point(lay, {r.shape.micro_batch, s}, dev, budget));
  }
  j["memory_vs_seq"] = mem;
  nlohmann::json comm = nlohmann::json::object();
  for (const LayoutSpec& lay : layouts_for(r.ranks, 1, false, r.only_tp, r.only_sp)) {
    const std::string key =
        lay.name() + (lay.kind == Kind::tpsp ? fmt::format(" {}x{}", lay.tp, lay.sp) : "");
    for (int64_t s : seqs) comm[key].push_back(point(lay, {1, s}, dev, budget));
  }
  j["comm_vs_tokens"] = comm;
  j["crossover_tokens"] = 8 * r.model.hidden_size;
  // Devices: D = 1, 2, 4, ... 64 on the model axis, times dp replicas; the best factorisation per kind.
  nlohmann::json thr = nlohmann::json::object();
  for (int D = 1; D <= 64; D *= 2) {
    // A shared host's ranks split its cores and memory, so each device count has its own per-rank profile.
    const DeviceProfile dD = device_for_ranks(base, D * r.dp);
    const int64_t budget_D = r.budget > 0 ? r.budget : dD.memory_bytes;
    std::map<std::string, std::pair<double, nlohmann::json>> best;  // kind -> (tokens/s if it fits, point)
    for (const LayoutSpec& lay : layouts_for(D, r.dp, r.zero1)) {
      const std::string key = lay.kind == Kind::tpsp ? "tpsp (best T x Σ)" : lay.name();
      nlohmann::json pt = point(lay, r.shape, dD, budget_D);
      pt["devices"] = D * r.dp;
      pt["ranks"] = D;
      const double score =
          pt["applicable"].get<bool>() && pt["fits"].get<bool>() ? pt["tokens_per_s"].get<double>() : -1;
      auto it = best.find(key);
      if (it == best.end() || score > it->second.first) best[key] = {score, pt};
    }
    for (auto& [k, v] : best) thr[k].push_back(v.second);
  }
  j["throughput_vs_devices"] = thr;
  return j;
}

}  // namespace tsp::plan
