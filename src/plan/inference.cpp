// The inference model of tsp plan (docs/inference.md). Formulas mirror the runtime: parallel/kv_cache.h (the
// context rule and the cache's shape), parallel/decode_blocks.h and parallel/tsp/decode_sequence.h (every
// decode label), infer/generator.cpp (the prefill and decode buffers of the loop).
#include "plan/inference.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "plan/sizes.h"

namespace tsp::plan {

namespace {

// Shard factors of a serving layout.
struct Split {
  int64_t Tw = 1;        // weights (heads, intermediate, vocabulary) split T ways (D for tsp)
  int64_t P = 1;         // cache positions split P ways
  int64_t Pctx = 1;      // the context rule's parts (D for both tsp layouts, so that each holds 1/D)
  int64_t multiple = 1;  // the padded prompt's multiple
  int64_t width = 0;     // cache row: KV heads x head_dim held per rank
  int64_t ranks = 1;
};

// KV channels of one head shard of T: kv_dim / T, or head_dim under KV-head replication (T > n_kv).
int64_t kv_shard_width(const ModelConfig& c, int64_t T) {
  return c.num_key_value_heads < T ? c.head_dim : c.kv_dim() / T;
}

Split split_of(const ModelConfig& c, const ServeLayout& s) {
  const LayoutSpec& l = s.layout;
  Split x;
  x.ranks = l.ranks();
  switch (l.kind) {
    case Kind::single:
      break;
    case Kind::tp:
      x.Tw = l.tp;
      break;
    case Kind::sp:
      x.P = x.Pctx = l.sp;
      x.multiple = 2 * l.sp;
      break;
    case Kind::tpsp:
      x.Tw = l.tp;
      x.P = x.Pctx = l.sp;
      x.multiple = 2 * l.sp;
      break;
    case Kind::tsp:
      x.Tw = l.tp;
      x.Pctx = l.tp;
      x.P = s.kv == KvLayout::sequence ? l.tp : 1;
      x.multiple = 2 * l.tp;
      break;
  }
  const bool all_heads = l.kind == Kind::tsp && s.kv == KvLayout::sequence;
  // A head split beyond the KV heads holds one replicated KV head per rank (model/params.h).
  x.width = all_heads ? c.kv_dim() : kv_shard_width(c, x.Tw);
  return x;
}

// Adds one decode label (phase "decode") with explicit received bytes.
void add(CommByLabel& out, const std::string& label, const std::string& op, int64_t calls, int64_t payload,
         int64_t recv) {
  if (calls <= 0) return;
  CommEntry& e = out["decode"][label];
  e.op = op;
  e.calls += calls;
  e.payload_bytes += calls * payload;
  e.recv_bytes += calls * recv;
  e.overlappable = false;  // decode traffic is activations on the critical path
}

std::string not_applicable(const ModelConfig& c, const ServeLayout& s) {
  const LayoutSpec& l = s.layout;
  const int64_t T = l.kind == Kind::sp || l.kind == Kind::single ? 1 : l.tp;
  const std::string who = l.kind == Kind::tsp ? "D" : "T";
  if (l.kind == Kind::single && l.ranks() != 1) return "single runs on exactly 1 rank";
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
  return "";
}

}  // namespace

std::string ServeLayout::name() const {
  if (layout.kind == Kind::tsp) return kv == KvLayout::heads ? "tsp-heads" : "tsp-sequence";
  return layout.name();
}

std::string ServeLayout::kv_name() const {
  switch (layout.kind) {
    case Kind::sp:
      return "sequence";
    case Kind::tpsp:
      return "heads+sequence";
    case Kind::tsp:
      return kv_layout_name(kv);
    default:
      return "heads";
  }
}

std::string ServeLayout::runtime_flags() const {
  std::string f = layout.runtime_flags();
  if (layout.kind == Kind::tsp && kv == KvLayout::sequence) f += " --kv-layout sequence";
  return f;
}

int64_t InferencePrediction::decode_recv_bytes() const {
  int64_t sum = 0;
  auto it = comm.find("decode");
  if (it != comm.end())
    for (const auto& [label, e] : it->second) sum += e.recv_bytes;
  return sum;
}

std::vector<ServeLayout> serve_layouts_for(int ranks, int only_tp, int only_sp) {
  std::vector<ServeLayout> out;
  for (const LayoutSpec& l : layouts_for(ranks, 1, false, only_tp, only_sp)) {
    if (l.sequence_parallel) continue;  // Megatron-SP changes the prefill only; its decode is tp's
    if (l.kind == Kind::tsp) {
      out.push_back({l, KvLayout::heads});
      out.push_back({l, KvLayout::sequence});
    } else {
      out.push_back({l, KvLayout::heads});
    }
  }
  return out;
}

InferencePrediction predict_inference(const ModelConfig& c, const ServeLayout& layout,
                                      const ServeRequestShape& r, const Policy& pol) {
  TSP_REQUIRE(r.batch > 0, "--batch must be positive, got {}", r.batch);
  TSP_REQUIRE(r.prompt > 0 && r.context > r.prompt,
              "--context {} must exceed the prompt ({} tokens): context = prompt + new tokens", r.context,
              r.prompt);
  InferencePrediction p;
  p.layout = layout;
  p.reason = not_applicable(c, layout);
  p.applicable = p.reason.empty();
  if (!p.applicable) return p;
  const Split x = split_of(c, layout);
  // Decode's traffic and buffers are in the compute type; under the bf16 policy the weights and the KV cache
  // are bf16.
  const int64_t beta = pol.compute_bytes, B = r.batch, L = c.num_hidden_layers, h = c.hidden_size;
  const int64_t qd = c.q_dim(), kvd = c.kv_dim(), nh = c.num_attention_heads, I = c.intermediate_size;
  const int64_t V = c.vocab_size, Vp = (V + x.Tw - 1) / x.Tw * x.Tw;
  const int64_t kvs = kv_shard_width(c, x.Tw);  // K (or V) channels of one head shard
  // The runtime's cache: the prompt padded to the layout's multiple, room for every fed position.
  p.prompt_padded = (r.prompt + x.multiple - 1) / x.multiple * x.multiple;
  // The runtime stops a sequence at max_sequence_length() (max_position_embeddings, extended by a
  // context-extending rope_scaling); planning beyond it (a context extension) is allowed and flagged.
  const int64_t max_len = c.max_sequence_length();
  p.exceeds_max_positions = r.context > max_len;
  const int64_t needed = p.exceeds_max_positions ? r.context - 1 : std::min(r.context - 1, max_len);
  p.kv_context = kv_context(p.prompt_padded, needed, int(x.Pctx));
  const int64_t slots = p.kv_context / x.P;
  p.kv_cache = 2 * L * B * slots * x.width * pol.activation_bytes;

  // Parameters: the training model's shard (heads, intermediate, vocabulary over Tw; sp replicates them).
  const Sizes z = sizes_of(c, layout.layout, RunShape{1, x.multiple});
  p.parameters = z.param_elements() * pol.weight_bytes;

  // Decode: one step of n = B rows.
  const int64_t n = B, D = x.Tw;
  const bool seq_tsp = layout.layout.kind == Kind::tsp && layout.kv == KvLayout::sequence;
  const int64_t act = pol.act_wire_bytes;  // the TP sums of activations (bf16 under the bf16 policy)
  if (x.Tw > 1) {
    add(p.comm, "decode.embed_allreduce", "all_reduce", 1, n * h * act, all_reduce_recv(x.Tw, n * h * act));
    add(p.comm, "decode.mlp_out_allreduce", "all_reduce", L, n * h * act, all_reduce_recv(x.Tw, n * h * act));
    add(p.comm, "decode.attn_out_allreduce", "all_reduce", L, n * h * act,
        all_reduce_recv(x.Tw, n * h * act));
    // Greedy: every vocabulary shard's (max, argmax) of every row, as doubles.
    add(p.comm, "decode.pick_allgather", "all_gather", 1, 2 * n * 8, (x.Tw - 1) * 2 * n * 8);
  }
  if (seq_tsp) {
    const int64_t qs = qd / D, ks = kvs, hs = nh / D;
    add(p.comm, "decode.q_allgather", "all_gather", L, n * qs * beta, (D - 1) * n * qs * beta);
    // Each token's key and value, 2·kv_dim/D per head group, go to the one rank caching it: n/D rows per
    // rank on average over the ranks (round-robin owners), so n·(D−1)/D head-group parts sent and received.
    // Exact per rank when n is a multiple of D and the new positions lie past the padded prompt; for n < D
    // the rows' owners take turns, and this is their mean (rounded down to whole bytes).
    const int64_t kv_moved = n * (D - 1) * 2 * ks * beta / D;
    add(p.comm, "decode.kv_to_owner", "all_to_all_v", L, kv_moved, kv_moved);
    add(p.comm, "decode.attn_partial_alltoall", "all_to_all_v", L, (D - 1) * n * (qs + hs) * beta,
        (D - 1) * n * (qs + hs) * beta);
    // The sequence layout posts its exchanges even at D = 1 (local copies, counted as calls).
    if (D == 1) add(p.comm, "decode.attn_out_allreduce", "all_reduce", L, n * h * act, 0);
  } else if (x.P > 1) {
    const int64_t block = n * (qd / x.Tw + nh / x.Tw) * beta;
    add(p.comm, "decode.attn_partial_allgather", "all_gather", L, block, (x.P - 1) * block);
  }

  // Work per rank per decode step at the full context: every weight product of the shard (SP ranks repeat
  // the same rows), and attention over the positions cached here.
  const double ctx = double(r.context);
  const double matrix = double(L) * (double(2 * qd * h + 3 * h * I) / double(x.Tw) + double(2 * kvs * h)) +
                        double(Vp) / double(x.Tw) * double(h);
  const double heads_here = seq_tsp ? double(qd) : double(qd) / double(x.Tw);
  p.decode_flops = 2 * matrix * double(n) + 4.0 * double(L) * double(n) * ctx / double(x.P) * heads_here;
  p.decode_bytes_read = matrix * double(pol.weight_bytes) + 2.0 * double(L) * double(n) * ctx / double(x.P) *
                                                                double(x.width) *
                                                                double(pol.activation_bytes);
  const double S = double(p.prompt_padded);
  const double all_matrix = double(L) * double((2 * qd + 2 * kvd) * h + 3 * h * I) + double(V) * double(h);
  p.prefill_flops =
      (2 * all_matrix * double(B) * S + 2 * double(B) * S * S * double(qd) * double(L)) / double(x.ranks);

  // Transient buffers (estimate of the named ones): the loop's residual stream, the layout's prefill blocks
  // in inference mode, the decode blocks.
  const int64_t Sp = p.prompt_padded, Tw = x.Tw;
  int64_t pre = 0, dec = 0;
  if (layout.layout.kind == Kind::tsp) {
    const int64_t nl = B * Sp / D;                                                 // my prefill tokens
    pre = 3 * nl * h + nl                                                          // x, u, y, rstd
          + 2 * z.attn_block() + D * 2 * nl * kvs + 2 * nl * qd / D + nl * nh / D  // bcast, gather, q, o, lse
          + 2 * B * Sp * kvs                                                       // K, V of one head group
          + 2 * z.mlp_block() + 3 * nl * I / D                                     // ring, gate/up/act
          + 2 * Vp / D * h;                                                        // embedding ring
  } else {
    const int64_t Sg = layout.layout.kind == Kind::single || layout.layout.kind == Kind::tp ? 1 : x.P;
    const int64_t ng = B * Sp / Sg;                // the SP group's prefill tokens
    pre = 3 * ng * h + ng + (Tw > 1 ? ng * h : 0)  // x, u, y, rstd, TP partial
          + (Sg > 1 ? Sg * 2 * ng * kvs : 0) + 2 * ng * qd / Tw + ng * nh / Tw  // gather, q, o, lse
          + 2 * B * Sp * kvs                                                    // K, V of my head group
          + 3 * ng * I / Tw;                                                    // gate/up/act
  }
  dec = 4 * n * h + 3 * n * I / Tw + n * (Vp / Tw);  // x, u, y, rstd; MLP scratch; logits
  if (seq_tsp)  // k, v; queries and outputs of every head, lse; o; q gather; kv send/recv; partials
    dec += 2 * n * kvs + 2 * n * qd + n * nh + n * qd / D + n * qd + 2 * n * kvs + D * 2 * n * kvs +
           2 * D * n * (qd / D + nh / D);
  else  // q, o; k, v; lse or the SP partials
    dec += 2 * n * qd / Tw + 2 * n * kvs + (x.P > 1 ? x.P * n * (qd / Tw + nh / Tw) : n * nh / Tw);
  p.prefill_transient = pre * beta;
  // Slot positions of the positions placement are int64.
  p.decode_transient = dec * beta + (x.P > 1 ? n * slots * 8 : 0);
  return p;
}

InferenceProjection project_inference(const InferencePrediction& p, const ServeRequestShape& s,
                                      const Policy& policy, const DeviceProfile& dev) {
  InferenceProjection r;
  const double rate = policy.weight_bytes == 2   ? dev.matmul_flops_bf16
                      : policy.weight_bytes == 8 ? dev.matmul_flops_fp32 / 2
                                                 : dev.matmul_flops_fp32;
  r.compute_s = p.decode_flops / (rate * dev.matmul_efficiency);
  r.memory_s = dev.memory_bytes_per_s > 0 ? p.decode_bytes_read / dev.memory_bytes_per_s : 0;
  for (const auto& [phase, labels] : p.comm)
    for (const auto& [label, e] : labels)
      r.comm_s += double(e.recv_bytes) / dev.link_bytes_per_s + double(e.calls) * dev.latency_s;
  r.tpot_s = std::max(r.compute_s, r.memory_s) + r.comm_s;
  r.output_tokens_per_s = double(s.batch) / r.tpot_s;
  r.ttft_s = p.prefill_flops / (rate * dev.matmul_efficiency);
  return r;
}

}  // namespace tsp::plan
