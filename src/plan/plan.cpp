// predict(): applicability of a layout to a model and shape, then the memory, communication and FLOP models.
#include "plan/plan.h"

#include "core/check.h"
#include "plan/sizes.h"

namespace tsp::plan {

std::string LayoutSpec::name() const {
  switch (kind) {
    case Kind::single:
      return "single";
    case Kind::tp:
      return sequence_parallel ? "tp-sp" : "tp";
    case Kind::sp:
      return "sp";
    case Kind::tpsp:
      return sequence_parallel ? "tpsp-sp" : "tpsp";
    case Kind::tsp:
      return "tsp";
  }
  return "?";
}

std::string LayoutSpec::runtime_flags() const {
  std::string s = "--strategy " + std::string(kind == Kind::single ? "single"
                                              : kind == Kind::tp   ? "tp"
                                              : kind == Kind::sp   ? "sp"
                                              : kind == Kind::tpsp ? "tpsp"
                                                                   : "tsp");
  if (kind == Kind::tpsp) s += fmt::format(" --tp {} --sp {}", tp, sp);
  if (sequence_parallel) s += " --sequence-parallel";
  if (keep_gathered_kv) s += " --keep-gathered-kv";
  if (dp > 1) s += fmt::format(" --dp {}", dp);
  if (zero1) s += " --zero1";
  return s;
}

Recompute runtime_recompute(Kind k) {
  // single keeps everything; TSP and the mesh save the norm inputs, o and lse and recompute q, k, v and the
  // MLP's gate/up in the backward (docs/tsp.md, docs/layouts.md).
  return k == Kind::single ? Recompute::none : Recompute::selective;
}

int64_t Prediction::comm_bytes(const std::string& phase) const {
  int64_t sum = 0;
  auto it = comm.find(phase);
  if (it != comm.end())
    for (const auto& [label, e] : it->second) sum += e.recv_bytes;
  return sum;
}

namespace {

// Why the runtime would refuse this layout for this model and shape ("" when it runs it).
std::string not_applicable(const ModelConfig& c, const LayoutSpec& lay, const RunShape& s) {
  const int T = lay.tp, Sg = lay.kind == Kind::tsp ? lay.tp : lay.sp;
  const std::string who = lay.kind == Kind::tsp ? "D" : "T";
  if (lay.kind == Kind::single && lay.ranks() != 1) return "single runs on exactly 1 rank per replica";
  if (T > 1) {
    if (c.num_attention_heads % T)
      return fmt::format("num_attention_heads {} is not divisible by {} = {}", c.num_attention_heads, who, T);
    if (c.num_key_value_heads % T && T % c.num_key_value_heads)
      return fmt::format(
          "num_key_value_heads {} is neither divisible by {} = {} nor a divisor of it (KV-head replication)",
          c.num_key_value_heads, who, T);
    if (c.intermediate_size % T)
      return fmt::format("intermediate_size {} is not divisible by {} = {}", c.intermediate_size, who, T);
  }
  // Zigzag: 2Σ (or 2D) chunks per sequence; Megatron-SP cuts each rank's share into T parts.
  const bool seqpar = lay.sequence_parallel && T > 1;
  const int64_t multiple = (Sg > 1 ? 2 * Sg : 1) * (seqpar ? T : 1);
  if (s.seq_len % multiple)
    return fmt::format(
        "seq_len {} is not a multiple of {}{}{}", s.seq_len, multiple,
        Sg > 1 ? fmt::format(" (2·{} = {} zigzag chunks{}", lay.kind == Kind::tsp ? "D" : "Σ", 2 * Sg,
                             seqpar ? "" : ")")
               : " (",
        seqpar ? fmt::format("{}× T = {} sequence-parallel parts)", Sg > 1 ? ", " : "", T) : "");
  // seq_len > max_position_embeddings is planned anyway (a context extension); the report flags it and the
  // runtime refuses to run it (plan/report.cpp).
  return "";
}

}  // namespace

Prediction predict(const ModelConfig& c, const LayoutSpec& layout, const RunShape& shape,
                   const Policy& policy) {
  TSP_REQUIRE(shape.seq_len > 0, "--seq-len must be positive, got {}", shape.seq_len);
  TSP_REQUIRE(shape.micro_batch > 0, "--batch must be positive, got {}", shape.micro_batch);
  TSP_REQUIRE(layout.tp > 0 && layout.sp > 0 && layout.dp > 0,
              "mesh degrees must be positive (tp {}, sp {}, dp {})", layout.tp, layout.sp, layout.dp);
  TSP_REQUIRE(layout.kind != Kind::tsp || layout.sp == 1, "tsp has one axis: set tp = D and sp = 1");
  Prediction p;
  p.layout = layout;
  p.reason = not_applicable(c, layout, shape);
  p.applicable = p.reason.empty();
  if (!p.applicable) return p;
  const Sizes z = sizes_of(c, layout, shape);
  const Recompute rc =
      policy.recompute == Recompute::runtime ? runtime_recompute(layout.kind) : policy.recompute;
  p.memory = predict_memory(z, layout, policy, rc);
  p.comm = predict_comm(z, layout, policy, rc);
  p.flops = predict_flops(z, layout, rc);
  return p;
}

std::vector<LayoutSpec> layouts_for(int ranks, int dp, bool zero1, int only_tp, int only_sp) {
  TSP_REQUIRE(ranks > 0, "--ranks must be positive, got {}", ranks);
  std::vector<LayoutSpec> out;
  auto push = [&](Kind k, int tp, int sp, bool seqpar) {
    LayoutSpec l;
    l.kind = k;
    l.tp = tp;
    l.sp = sp;
    l.sequence_parallel = seqpar;
    l.dp = dp;
    l.zero1 = zero1 && dp > 1;
    out.push_back(l);
  };
  if (ranks == 1) push(Kind::single, 1, 1, false);
  if (ranks > 1) {
    push(Kind::tp, ranks, 1, false);
    push(Kind::tp, ranks, 1, true);
    push(Kind::sp, 1, ranks, false);
    for (int T = 2; T < ranks; ++T) {
      if (ranks % T || ranks / T < 2) continue;
      if ((only_tp && T != only_tp) || (only_sp && ranks / T != only_sp)) continue;
      push(Kind::tpsp, T, ranks / T, false);
      push(Kind::tpsp, T, ranks / T, true);
    }
  }
  push(Kind::tsp, ranks, 1, false);
  return out;
}

}  // namespace tsp::plan
