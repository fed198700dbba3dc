// tsp plan's formulas: the spec's §9 rows, the TSP/TP crossover, 1/D scaling, the runtime's measured figures
// (docs/tsp.md, docs/data-parallel.md), applicability, bad input and the JSON fields. The runtime itself is
// compared with predict() per label and per memory category in the MPI tests.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "core/check.h"
#include "plan/plan.h"
#include "plan/report.h"

namespace tsp::plan {
namespace {

// MHA with I = 4h (the paper's analysis), small enough to reason about by hand.
ModelConfig mha_config() {
  ModelConfig c;
  c.hidden_size = 256;
  c.intermediate_size = 1024;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 8;
  c.head_dim = 32;
  c.vocab_size = 1000;
  c.max_position_embeddings = 1 << 20;
  c.validate();
  return c;
}

LayoutSpec layout(Kind k, int tp, int sp = 1, bool seqpar = false) {
  LayoutSpec l;
  l.kind = k;
  l.tp = tp;
  l.sp = sp;
  l.sequence_parallel = seqpar;
  return l;
}

int64_t recv(const Prediction& p, const std::string& phase, const std::string& label) {
  auto ph = p.comm.find(phase);
  if (ph == p.comm.end()) return 0;
  auto it = ph->second.find(label);
  return it == ph->second.end() ? 0 : it->second.recv_bytes;
}

// The per-layer forward traffic of the layer blocks (no vocabulary, no scalars).
int64_t layer_forward(const Prediction& p) {
  int64_t sum = 0;
  for (const char* l : {"attn.weight_bcast", "attn.kv_allgather", "mlp.weight_ring", "tp.attn_out_allreduce",
                        "tp.mlp_out_allreduce", "sp.kv_allgather"})
    sum += recv(p, "forward", l);
  return sum;
}

TEST(Plan, TspForwardEqualsSpecRow) {
  const ModelConfig c = mha_config();
  const int64_t D = 4, B = 2, S = 1024, beta = 4, h = c.hidden_size, L = c.num_hidden_layers;
  const Prediction p = predict(c, layout(Kind::tsp, int(D)), {B, S}, Policy::runtime(beta));
  ASSERT_TRUE(p.applicable) << p.reason;
  const int64_t W_attn = 2 * h * c.q_dim() + 2 * h * c.kv_dim(), W_mlp = 3 * h * c.intermediate_size;
  EXPECT_EQ(layer_forward(p),
            L * beta * ((D - 1) * (W_attn + W_mlp) / D + 2 * (D - 1) * B * S * c.kv_dim() / D));
  EXPECT_EQ(recv(p, "forward", "tp.attn_out_allreduce"), 0);  // TSP has no activation all-reduce
}

TEST(Plan, TpForwardIsFourAllReducedActivationsPerLayer) {
  const ModelConfig c = mha_config();
  const int64_t T = 4, B = 2, S = 512, beta = 2, h = c.hidden_size, L = c.num_hidden_layers;
  Policy bf16 = Policy::runtime(beta);
  const Prediction p = predict(c, layout(Kind::tp, int(T)), {B, S}, bf16);
  ASSERT_TRUE(p.applicable) << p.reason;
  EXPECT_EQ(layer_forward(p), L * 4 * (T - 1) * B * S * h * beta / T);
  // Megatron-SP moves the same activation bytes as all-gather + reduce-scatter.
  const Prediction q = predict(c, layout(Kind::tp, int(T), 1, true), {B, S}, bf16);
  EXPECT_EQ(recv(q, "forward", "tp.attn_in_allgather") + recv(q, "forward", "tp.attn_out_reducescatter"),
            L * 2 * (T - 1) * B * S * h * beta / T);
}

TEST(Plan, MeshForwardEqualsSpecRow) {
  const ModelConfig c = mha_config();
  const int64_t T = 2, Sg = 4, B = 1, S = 2048, beta = 4, h = c.hidden_size, L = c.num_hidden_layers;
  const Prediction p = predict(c, layout(Kind::tpsp, int(T), int(Sg)), {B, S}, Policy::runtime(beta));
  ASSERT_TRUE(p.applicable) << p.reason;
  EXPECT_EQ(layer_forward(p),
            L * beta * (4 * (T - 1) * B * (S / Sg) * h / T + 2 * (Sg - 1) * B * S * c.kv_dim() / T / Sg));
}

TEST(Plan, TspTpCrossoverAtEightH) {
  const ModelConfig c = mha_config();
  const int D = 8;
  auto at = [&](int64_t tokens) {
    const Prediction t = predict(c, layout(Kind::tsp, D), {1, tokens}, Policy::runtime(4));
    const Prediction m = predict(c, layout(Kind::tp, D), {1, tokens}, Policy::runtime(4));
    return std::pair{layer_forward(t), layer_forward(m)};
  };
  const int64_t x = 8 * c.hidden_size;
  EXPECT_EQ(at(x).first, at(x).second);
  EXPECT_GT(at(x / 2).first, at(x / 2).second);  // short context: TSP's weight traffic dominates
  EXPECT_LT(at(x * 2).first, at(x * 2).second);  // long context: TP's activation all-reduces dominate
}

TEST(Plan, TspMemoryScalesAsOneOverD) {
  const ModelConfig c = mha_config();
  const Policy pol = Policy::runtime(4);
  const Prediction p2 = predict(c, layout(Kind::tsp, 2), {1, 4096}, pol);
  const Prediction p4 = predict(c, layout(Kind::tsp, 4), {1, 4096}, pol);
  const Prediction p8 = predict(c, layout(Kind::tsp, 8), {1, 4096}, pol);
  EXPECT_EQ(p2.memory.activations, 2 * p4.memory.activations);
  EXPECT_EQ(p4.memory.activations, 2 * p8.memory.activations);
  EXPECT_EQ(p4.memory.communication, 2 * p8.memory.communication);
  // Parameters: everything but the replicated norms (and the vocabulary's padding: V = 1000 divides by 8).
  const int64_t norms = 4 * (2 * c.num_hidden_layers + 1) * c.hidden_size;
  EXPECT_EQ(p2.memory.parameters - norms, 2 * (p4.memory.parameters - norms));
  EXPECT_EQ(p4.memory.optimizer, 2 * p4.memory.parameters);
}

// docs/tsp.md: small, B = 1, S = 4096, float32, measured per rank at D = 4.
TEST(Plan, TspMatchesMeasuredSmall) {
  const ModelConfig c = preset_config("small");
  const Prediction p = predict(c, layout(Kind::tsp, 4), {1, 4096}, Policy::runtime(4));
  const double MiB = 1024.0 * 1024.0;
  EXPECT_NEAR(p.memory.parameters / MiB, 0.471, 5e-4);
  EXPECT_NEAR(p.memory.activations / MiB, 3.555, 5e-4);
  EXPECT_EQ(p.memory.communication, int64_t(1.875 * MiB));
  EXPECT_EQ(recv(p, "forward", "attn.kv_allgather"), int64_t(6 * MiB));
  EXPECT_EQ(recv(p, "backward", "norm.grad_allreduce"), 2 * 3 * ((2 * 2 + 1) * 128 * 4) / 4);
  EXPECT_EQ(p.comm.at("forward").at("attn.weight_bcast").calls, 2 * 4);
  // D = 1: the collectives still count calls, receive nothing; the rings do not run at all.
  const Prediction one = predict(c, layout(Kind::tsp, 1), {1, 4096}, Policy::runtime(4));
  EXPECT_EQ(one.comm.at("forward").at("attn.weight_bcast").calls, 2);
  EXPECT_EQ(one.comm_bytes("forward"), 0);
  EXPECT_EQ(one.comm.at("forward").count("mlp.weight_ring"), 0u);
  EXPECT_EQ(one.memory.workspace + one.memory.communication, int64_t(78.25 * MiB));
}

// tests/mpi/test_tsp_memory.cpp's single-device formula.
TEST(Plan, SingleSavesEverything) {
  const ModelConfig c = preset_config("tiny");
  const int64_t N = 2 * 24, L = c.num_hidden_layers, h = c.hidden_size, beta = 8;
  const Prediction p = predict(c, layout(Kind::single, 1), {2, 24}, Policy::runtime(int(beta)));
  EXPECT_EQ(
      p.memory.activations,
      beta *
          (N * (2 * L + 1) * (h + 1) +
           L * N * (2 * c.q_dim() + 2 * c.kv_dim() + c.num_attention_heads + 2 * c.intermediate_size) + N));
  EXPECT_EQ(p.memory.communication, 0);
  EXPECT_TRUE(p.comm.empty());
}

// docs/data-parallel.md: tsp on 2 ranks x 2 replicas, small, float32.
TEST(Plan, DataParallelMatchesMeasured) {
  const ModelConfig c = preset_config("small");
  LayoutSpec l = layout(Kind::tsp, 2);
  l.dp = 2;
  const Prediction p = predict(c, l, {1, 512}, Policy::runtime(4));
  EXPECT_EQ(p.memory.optimizer, 1971200);
  EXPECT_EQ(p.memory.communication, 2097152);
  EXPECT_EQ(recv(p, "backward", "dp.grad_allreduce"), 985600);
  EXPECT_EQ(p.comm.at("backward").at("dp.grad_allreduce").calls, 6);
  l.zero1 = true;
  const Prediction z = predict(c, l, {1, 512}, Policy::runtime(4));
  EXPECT_EQ(z.memory.optimizer, 985600);
  EXPECT_EQ(z.memory.communication, 2539520);
  EXPECT_EQ(recv(z, "backward", "dp.grad_reducescatter"), 492800);
  EXPECT_EQ(recv(z, "optimizer", "dp.param_allgather"), 492800);
  EXPECT_EQ(z.comm.at("optimizer").at("dp.optim_partition_allreduce").payload_bytes, 16);
}

TEST(Plan, NotApplicableSaysWhy) {
  const ModelConfig c = preset_config("tiny");  // 4 heads, 2 KV heads, I = 192
  const Prediction heads = predict(c, layout(Kind::tsp, 3), {1, 36}, Policy::runtime(4));
  EXPECT_FALSE(heads.applicable);
  EXPECT_NE(heads.reason.find("num_attention_heads 4 is not divisible by D = 3"), std::string::npos);
  // 2 KV heads on T = 4 are replicated (each on 2 ranks); 3 KV heads on T = 4 can be neither split nor
  // replicated.
  EXPECT_TRUE(predict(c, layout(Kind::tp, 4), {1, 64}, Policy::runtime(4)).applicable);
  ModelConfig odd = c;
  odd.num_attention_heads = 12;
  odd.num_key_value_heads = 3;
  const Prediction kv = predict(odd, layout(Kind::tp, 4), {1, 64}, Policy::runtime(4));
  EXPECT_NE(kv.reason.find("num_key_value_heads 3"), std::string::npos) << kv.reason;
  const Prediction seq = predict(c, layout(Kind::sp, 1, 2), {1, 30}, Policy::runtime(4));
  EXPECT_NE(seq.reason.find("not a multiple of 4"), std::string::npos) << seq.reason;
  const Prediction msp = predict(c, layout(Kind::tpsp, 2, 2, true), {1, 36}, Policy::runtime(4));
  EXPECT_NE(msp.reason.find("not a multiple of 8"), std::string::npos) << msp.reason;
  EXPECT_THROW(predict(c, layout(Kind::tsp, 2), {1, 0}, Policy::runtime(4)), UsageError);
}

TEST(Plan, NamedConstructors) {
  EXPECT_EQ(LayoutSpec::make_tpsp(2, 4, true).runtime_flags(),
            "--strategy tpsp --tp 2 --sp 4 --sequence-parallel");
  EXPECT_EQ(LayoutSpec::make_tsp(4).ranks(), 4);
  EXPECT_EQ(LayoutSpec::make_sp(4).name(), "sp");
  EXPECT_EQ(LayoutSpec::make_tp(2, true).name(), "tp-sp");
}

TEST(Plan, LayoutsCoverEveryFactorisation) {
  std::vector<std::string> names;
  for (const LayoutSpec& l : layouts_for(8, 1, false))
    names.push_back(l.name() +
                    (l.kind == Kind::tpsp ? std::to_string(l.tp) + "x" + std::to_string(l.sp) : ""));
  EXPECT_EQ(names, (std::vector<std::string>{"tp", "tp-sp", "sp", "tpsp2x4", "tpsp-sp2x4", "tpsp4x2",
                                             "tpsp-sp4x2", "tsp"}));
  EXPECT_EQ(layouts_for(1, 1, false).front().name(), "single");
}

TEST(Plan, WhatIfPrecisionAndRecompute) {
  const ModelConfig c = mha_config();
  Policy bf16 = Policy::runtime(2);
  bf16.optimizer_bytes = 4;
  bf16.master_weights = true;
  const Prediction p = predict(c, layout(Kind::tsp, 4), {1, 4096}, bf16);
  EXPECT_EQ(p.memory.optimizer, p.memory.parameters / 2 * (4 + 4 + 4));  // m, v and the master copy
  Policy full = Policy::runtime(4), none = Policy::runtime(4);
  full.recompute = Recompute::full;
  none.recompute = Recompute::none;
  const Prediction f = predict(c, layout(Kind::tsp, 4), {1, 4096}, full);
  const Prediction n = predict(c, layout(Kind::tsp, 4), {1, 4096}, none);
  const Prediction r = predict(c, layout(Kind::tsp, 4), {1, 4096}, Policy::runtime(4));
  EXPECT_LT(f.memory.activations, r.memory.activations);
  EXPECT_LT(r.memory.activations, n.memory.activations);
  EXPECT_GT(f.flops, r.flops);
  EXPECT_GT(r.flops, n.flops);
}

TEST(Plan, BadInputIsAUsageError) {
  EXPECT_EQ(parse_bytes("80GB"), int64_t(80e9));
  EXPECT_EQ(parse_bytes("192GiB"), int64_t(192) << 30);
  EXPECT_EQ(parse_bytes("1.5 MiB"), int64_t(1.5 * 1024 * 1024));
  EXPECT_EQ(parse_bytes("1e9"), int64_t(1e9));
  EXPECT_THROW(parse_bytes("lots"), UsageError);
  EXPECT_THROW(parse_bytes("12XB"), UsageError);
  EXPECT_THROW(parse_bytes("-3GB"), UsageError);
  EXPECT_THROW(device_profile("tpu"), UsageError);
  EXPECT_THROW(parse_recompute("sometimes"), UsageError);
  EXPECT_THROW(device_profile("/nonexistent/device.json"), UsageError);
  EXPECT_THROW(dtype_bytes("--dtype", "fp8"), UsageError);
  try {
    device_profile("tpu");
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("mi300x, h100, cpu-this-machine"), std::string::npos);
  }
}

TEST(Plan, JsonHasTheFields) {
  Request r;
  r.model = preset_config("llama7b");
  r.model_name = "llama7b";
  r.shape = {1, 131072};
  r.ranks = 8;
  r.dtype = "bf16";
  r.device = "mi300x";
  const Result res = run(r);
  const nlohmann::json j = to_json(r, res);
  ASSERT_TRUE(j.contains("strategies"));
  ASSERT_TRUE(j["recommendation"].is_object());
  for (const auto& s : j["strategies"]) {
    for (const char* k : {"name", "tp", "sp", "dp", "applicable", "reason"}) EXPECT_TRUE(s.contains(k)) << k;
    if (!s["applicable"].get<bool>()) continue;
    for (const char* k :
         {"memory_bytes", "comm_bytes", "comm_by_label", "flops", "projected_tokens_per_s", "fits"})
      EXPECT_TRUE(s.contains(k)) << k;
    for (const char* k : {"parameters", "gradients", "optimizer", "activations", "transient", "total"})
      EXPECT_TRUE(s["memory_bytes"].contains(k)) << k;
    EXPECT_TRUE(s["comm_bytes"].contains("forward") && s["comm_bytes"].contains("backward"));
  }
  const std::string table = to_table(r, res);
  EXPECT_NE(table.find("recommendation:"), std::string::npos);
  // TSP at 128K on 8 devices fits an MI300X and is the smallest of all layouts.
  int64_t tsp_total = 0, min_other = INT64_MAX;
  for (const auto& s : j["strategies"]) {
    const int64_t t = s["memory_bytes"]["total"].get<int64_t>();
    (s["name"] == "tsp" ? tsp_total : min_other) = s["name"] == "tsp" ? t : std::min(min_other, t);
  }
  EXPECT_LT(tsp_total, min_other);
}

// Planning a context extension (issue 10): a --seq-len beyond max_position_embeddings is planned, and
// flagged.
TEST(Plan, ContextBeyondMaxPositionsIsPlannedAndFlagged) {
  Request r;
  r.model = preset_config("llama7b");
  r.model_name = "llama7b";
  r.shape = {1, 2 * r.model.max_position_embeddings};
  r.ranks = 8;
  r.dtype = "bf16";
  r.device = "h100";
  const Result res = run(r);
  for (const Row& row : res.rows)
    EXPECT_TRUE(row.pred.applicable) << row.pred.layout.name() << ": " << row.pred.reason;
  EXPECT_GE(res.recommended, 0);
  const nlohmann::json j = to_json(r, res);
  EXPECT_TRUE(j["context_exceeds_max_position_embeddings"].get<bool>());
  EXPECT_NE(to_table(r, res).find(fmt::format(
                "warning: --seq-len {} exceeds the model's context {} (max_position_embeddings {}",
                r.shape.seq_len, r.model.max_position_embeddings, r.model.max_position_embeddings)),
            std::string::npos);
  r.shape.seq_len = r.model.max_position_embeddings;
  EXPECT_FALSE(to_json(r, run(r))["context_exceeds_max_position_embeddings"].get<bool>());
}

// "none" says whether nothing applies or nothing fits; a --tp / --sp naming no factorisation is refused.
TEST(Plan, NoRecommendationSaysWhy) {
  Request r;
  r.model = preset_config("tiny");  // 4 heads, 2 KV heads
  r.model_name = "tiny";
  r.shape = {1, 31};  // odd: no zigzag layout cuts it; heads 4 do not split over 3: nothing applies
  r.ranks = 3;
  Result res = run(r);
  EXPECT_LT(res.recommended, 0);
  EXPECT_NE(no_recommendation_reason(res).find("no layout applies"), std::string::npos);
  EXPECT_NE(to_table(r, res).find("recommendation: none: no layout applies"), std::string::npos);
  EXPECT_NE(to_json(r, res)["no_recommendation_reason"].get<std::string>().find("no layout applies"),
            std::string::npos);
  r.shape = {1, 64};
  r.ranks = 2;
  r.budget = 1000;  // bytes
  res = run(r);
  EXPECT_LT(res.recommended, 0);
  EXPECT_NE(no_recommendation_reason(res).find("no applicable layout fits the memory budget of 1000 B"),
            std::string::npos)
      << no_recommendation_reason(res);
  Request m;
  m.model = preset_config("tiny");
  m.shape = {1, 64};
  m.ranks = 4;
  for (int bad : {3, 4, 1}) {
    m.only_tp = bad;
    try {
      run(m);
      ADD_FAILURE() << "--tp " << bad << " with --ranks 4 was accepted";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("those of --ranks 4: 2x2"), std::string::npos) << e.what();
    }
  }
  m.only_tp = 2;
  EXPECT_NO_THROW(run(m));
  m.only_tp = 0;
  m.only_sp = 3;
  EXPECT_THROW(run(m), UsageError);
  m.ranks = 5;
  m.only_sp = 5;
  try {
    run(m);
    ADD_FAILURE() << "--sp 5 with --ranks 5 was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--ranks 5 has none"), std::string::npos) << e.what();
  }
}

// The GPU profiles hold the capacity the devices really expose; cpu-this-machine is read from this machine.
TEST(Plan, DeviceMemoryIsTheDevicesOwn) {
  EXPECT_EQ(device_profile("h100").memory_bytes, int64_t(81559) << 20);  // nvidia-smi: 81559MiB
  EXPECT_GT(double(device_profile("h100").memory_bytes) / double(int64_t(1) << 30), 79.6);
  EXPECT_EQ(device_profile("mi300x").memory_bytes, int64_t(206141652992));
  const DeviceProfile& here = device_profile("cpu-this-machine");
  EXPECT_GT(here.host_cores, 0);
  EXPECT_GT(here.memory_bytes, int64_t(64) << 20);
  EXPECT_GT(here.matmul_flops_fp32, 1e8);  // measured: anything above 0.1 GFLOP/s is a CPU
  const DeviceProfile one = device_for_ranks(here, 1);
  EXPECT_DOUBLE_EQ(one.matmul_flops_fp32, here.matmul_flops_fp32 * here.host_cores);
  EXPECT_EQ(one.memory_bytes, here.memory_bytes);
  const int many = 2 * here.host_cores;  // more ranks than cores: each gets half a core
  const DeviceProfile half = device_for_ranks(here, many);
  EXPECT_DOUBLE_EQ(half.matmul_flops_fp32, here.matmul_flops_fp32 * 0.5);
  EXPECT_EQ(half.memory_bytes, here.memory_bytes / many);
  EXPECT_EQ(device_for_ranks(device_profile("h100"), 8).memory_bytes, device_profile("h100").memory_bytes);
}

// A device the built-in profiles do not describe, from a JSON file: read, defaulted, validated.
TEST(Plan, DeviceProfileFromFile) {
  const std::string dir = ::testing::TempDir();
  auto write = [&](const std::string& name, const std::string& text) {
    const std::string path = dir + "/" + name;
    std::ofstream(path) << text;
    return path;
  };
  const std::string good = write("my_gpu.json", R"({"matmul_flops_fp32": 6e13, "matmul_flops_bf16": 9e14,
      "matmul_efficiency": 0.5, "link_bytes_per_s": 4e11, "latency_s": 1e-5, "memory_bytes": "141GB"})");
  const DeviceProfile& d = device_profile(good);
  EXPECT_EQ(d.name, "my_gpu");
  EXPECT_DOUBLE_EQ(d.matmul_flops_bf16, 9e14);
  EXPECT_DOUBLE_EQ(d.dp_bytes_per_s, 4e11);  // defaults to the model-axis bandwidth
  EXPECT_EQ(d.memory_bytes, int64_t(141e9));
  EXPECT_EQ(&device_profile(good), &d);  // loaded once
  auto message = [&](const std::string& text) {
    try {
      load_device_profile(write("bad.json", text));
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(
      message(R"({"link_bytes_per_s": 1e9, "memory_bytes": 1e9})").find("\"matmul_flops_fp32\" is missing"),
      std::string::npos);
  EXPECT_NE(message(R"({"matmul_flops_fp32": -1, "link_bytes_per_s": 1e9, "memory_bytes": 1e9})")
                .find("must be positive"),
            std::string::npos);
  EXPECT_NE(message(R"({"matmul_flops_fp32": 1e12, "link_bytes_per_s": 1e9, "memory_bytes": "lots"})")
                .find("\"memory_bytes\""),
            std::string::npos);
  EXPECT_NE(message("not json").find("not valid JSON"), std::string::npos);
}

}  // namespace
}  // namespace tsp::plan
