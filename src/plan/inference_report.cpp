// tsp plan --inference's report: every serving layout, the recommendation, JSON and the human table.
#include <cmath>

#include "core/check.h"
#include "plan/inference.h"

namespace tsp::plan {

InferenceResult run_inference(const Request& r, const ServeRequestShape& s) {
  TSP_REQUIRE(r.ranks > 0, "--ranks must be positive, got {}", r.ranks);
  TSP_REQUIRE(r.dp == 1, "--inference plans one model replica (got --dp {})", r.dp);
  const Policy pol = policy_of(r);
  const DeviceProfile& dev = device_profile(r.device);
  InferenceResult res;
  res.budget = r.budget > 0 ? r.budget : dev.memory_bytes;
  for (const ServeLayout& lay : serve_layouts_for(r.ranks, r.only_tp, r.only_sp)) {
    InferenceRow row;
    row.pred = predict_inference(r.model, lay, s, pol);
    if (row.pred.applicable) {
      row.proj = project_inference(row.pred, s, pol, dev);
      // The prefill's communication, as the training forward's (an estimate: the prefill rings only the
      // embedding part of the vocabulary).
      const Prediction fwd = predict(r.model, lay.layout, RunShape{s.batch, row.pred.prompt_padded}, pol);
      if (fwd.applicable) {
        auto it = fwd.comm.find("forward");
        if (it != fwd.comm.end())
          for (const auto& [label, e] : it->second)
            row.proj.ttft_s += double(e.recv_bytes) / dev.link_bytes_per_s + double(e.calls) * dev.latency_s;
      }
      row.fits = row.pred.peak() <= res.budget;
    }
    res.rows.push_back(std::move(row));
  }
  for (size_t i = 0; i < res.rows.size(); ++i) {
    const InferenceRow& row = res.rows[i];
    if (!row.pred.applicable || !row.fits) continue;
    // The fastest; between layouts that decode alike (tp and tsp-heads), the one that needs less memory.
    const InferenceRow* best = res.recommended < 0 ? nullptr : &res.rows[size_t(res.recommended)];
    const bool tie = best && std::abs(row.proj.tpot_s - best->proj.tpot_s) <= 1e-9 * best->proj.tpot_s;
    if (!best || (!tie && row.proj.tpot_s < best->proj.tpot_s) ||
        (tie && row.pred.peak() < best->pred.peak()))
      res.recommended = int(i);
  }
  return res;
}

nlohmann::json inference_json(const Request& r, const ServeRequestShape& s, const InferenceResult& res) {
  nlohmann::json strategies = nlohmann::json::array();
  for (const InferenceRow& row : res.rows) {
    const InferencePrediction& p = row.pred;
    nlohmann::json j = {{"name", p.layout.name()},
                        {"kv_layout", p.layout.kv_name()},
                        {"runtime_flags", p.layout.runtime_flags()},
                        {"applicable", p.applicable},
                        {"reason", p.reason}};
    if (p.applicable) {
      nlohmann::json by_label = nlohmann::json::object(), ops = nlohmann::json::object();
      for (const auto& [phase, labels] : p.comm)
        for (const auto& [label, e] : labels) {
          by_label[label] = e.recv_bytes;
          ops[label] = {{"op", e.op},
                        {"calls", e.calls},
                        {"payload_bytes", e.payload_bytes},
                        {"recv_bytes", e.recv_bytes}};
        }
      j["tp"] = p.layout.layout.tp;
      j["sp"] = p.layout.layout.kind == Kind::tsp ? p.layout.layout.tp : p.layout.layout.sp;
      j["prompt_padded"] = p.prompt_padded;
      j["kv_context"] = p.kv_context;
      j["memory_bytes"] = {{"parameters", p.parameters},
                           {"kv_cache", p.kv_cache},
                           {"prefill_transient_estimate", p.prefill_transient},
                           {"decode_transient_estimate", p.decode_transient},
                           {"total", p.peak()}};
      j["decode_comm_bytes_per_step"] = p.decode_recv_bytes();
      j["decode_comm_bytes_per_token"] = p.decode_recv_bytes() / s.batch;
      j["decode_comm_by_label"] = by_label;
      j["decode_comm_ops"] = ops;
      j["decode_flops_per_step"] = p.decode_flops;
      j["decode_bytes_read_per_step"] = p.decode_bytes_read;
      j["projected"] = {{"compute_s", row.proj.compute_s},
                        {"memory_s", row.proj.memory_s},
                        {"comm_s", row.proj.comm_s},
                        {"ttft_s", row.proj.ttft_s}};
      j["projected_time_per_output_token_s"] = row.proj.tpot_s;
      j["projected_output_tokens_per_s"] = row.proj.output_tokens_per_s;
      j["fits"] = row.fits;
    }
    strategies.push_back(j);
  }
  return {{"model", r.model_name},
          {"inference", true},
          {"ranks", r.ranks},
          {"batch", s.batch},
          {"context", s.context},
          {"prompt", s.prompt},
          {"context_exceeds_max_position_embeddings", s.context > r.model.max_sequence_length()},
          {"dtype", r.dtype},
          {"device", r.device},
          {"memory_budget_bytes", res.budget},
          {"strategies", strategies},
          {"recommended", res.recommended >= 0
                              ? nlohmann::json(res.rows[size_t(res.recommended)].pred.layout.name())
                              : nlohmann::json(nullptr)}};
}

std::string inference_table(const Request& r, const ServeRequestShape& s, const InferenceResult& res) {
  std::string out = fmt::format(
      "tsp plan --inference | model {} | batch {} | prompt {} + {} new = context {} | {} rank{} | {} | "
      "device "
      "{}, budget {}\n",
      r.model_name, s.batch, s.prompt, s.context - s.prompt, s.context, r.ranks, r.ranks == 1 ? "" : "s",
      r.dtype, r.device, human_bytes(double(res.budget)));
  if (s.context > r.model.max_sequence_length())
    out += fmt::format(
        "warning: context {} exceeds the model's context {} (max_position_embeddings {}, rope_scaling {}): "
        "a what-if for a context extension (tsp generate stops there)\n",
        s.context, r.model.max_sequence_length(), r.model.max_position_embeddings,
        r.model.rope_scaling.type_name());
  out += fmt::format(
      "{:<13} {:>3} {:>3} {:<14} | {:>10} {:>10} {:>10} {:>10} | {:>12} {:>10} | {:>9} {:>9} | {}\n",
      "layout", "T", "Σ", "kv cache", "weights", "kv cache", "transient", "total", "comm/token", "calls/step",
      "TPOT ms", "TTFT s", "fits");
  for (size_t i = 0; i < res.rows.size(); ++i) {
    const InferenceRow& row = res.rows[i];
    const InferencePrediction& p = row.pred;
    if (!p.applicable) {
      out +=
          fmt::format("{:<13} {:>3} {:>3} {:<14} | not applicable: {}\n", p.layout.name(), p.layout.layout.tp,
                      p.layout.layout.kind == Kind::tsp ? p.layout.layout.tp : p.layout.layout.sp,
                      p.layout.kv_name(), p.reason);
      continue;
    }
    int64_t calls = 0;
    for (const auto& [phase, labels] : p.comm)
      for (const auto& [label, e] : labels) calls += e.calls;
    out += fmt::format(
        "{:<13} {:>3} {:>3} {:<14} | {:>10} {:>10} {:>10} {:>10} | {:>12} {:>10} | {:>9.3f} {:>9.3f} | "
        "{}{}\n",
        p.layout.name(), p.layout.layout.tp,
        p.layout.layout.kind == Kind::tsp ? p.layout.layout.tp : p.layout.layout.sp, p.layout.kv_name(),
        human_bytes(double(p.parameters)), human_bytes(double(p.kv_cache)),
        human_bytes(double(std::max(p.prefill_transient, p.decode_transient))), human_bytes(double(p.peak())),
        human_bytes(double(p.decode_recv_bytes() / s.batch)), calls, 1e3 * row.proj.tpot_s, row.proj.ttft_s,
        row.fits ? "yes" : "no", int(i) == res.recommended ? "  <- recommended" : "");
  }
  out +=
      "(per rank. transient: the larger of the prefill's and the decode's buffers (estimate). comm/token: "
      "bytes "
      "received per generated token, all layers. TPOT: time per output token, max(compute, memory) + "
      "communication; TTFT: the prefill.)\n";
  if (res.recommended >= 0) {
    const InferenceRow& best = res.rows[size_t(res.recommended)];
    out += fmt::format("recommendation: {} ({}), {:.3f} ms per output token projected\n",
                       best.pred.layout.name(), best.pred.layout.runtime_flags(), 1e3 * best.proj.tpot_s);
  } else {
    bool any = false;
    for (const InferenceRow& row : res.rows) any = any || row.pred.applicable;
    out += any ? "recommendation: none: no applicable layout fits the memory budget\n"
               : "recommendation: none: no layout is applicable to this model at this rank count\n";
  }
  return out;
}

}  // namespace tsp::plan
