// The model types and rope_scaling rules of issue 9 at the config level: published config.json files of
// Llama 3.1, Qwen2.5, Qwen3 and Mistral load with HF's defaults and parameter counts and round-trip; what is
// not implemented is refused by name; and the RoPE frequencies follow HF's modeling_rope_utils formulas
// (default, linear, dynamic, llama3, yarn and its attention factor).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/check.h"
#include "model/config.h"
#include "usage_error.h"

namespace tsp {
namespace {

using nlohmann::json;

using testing::usage_error;

void expect_round_trip(const ModelConfig& c) {
  const ModelConfig back = ModelConfig::from_json(json::parse(c.to_json().dump()));
  EXPECT_EQ(back.to_json(), c.to_json());
  EXPECT_EQ(back.rope_scaling, c.rope_scaling);
  EXPECT_EQ(back.model_type, c.model_type);
  EXPECT_EQ(back.attention_qkv_bias, c.attention_qkv_bias);
  EXPECT_EQ(back.qk_norm, c.qk_norm);
  EXPECT_EQ(back.sliding_window, c.sliding_window);
  EXPECT_EQ(back.parameter_count(), c.parameter_count());
}

// meta-llama/Llama-3.1-8B config.json.
const char* kLlama31 = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
  "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0", "use_cache": true, "vocab_size": 128256})";

// Qwen/Qwen2.5-0.5B config.json.
const char* kQwen25 = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24, "model_type": "qwen2",
  "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.40.1", "use_cache": true, "use_mrope": false, "use_sliding_window": false,
  "vocab_size": 151936})";

// Qwen/Qwen3-0.6B config.json.
const char* kQwen3 = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024,
  "initializer_range": 0.02, "intermediate_size": 3072, "max_position_embeddings": 40960,
  "max_window_layers": 28, "model_type": "qwen3", "num_attention_heads": 16, "num_hidden_layers": 28,
  "num_key_value_heads": 8, "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000,
  "sliding_window": null, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.51.0", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})";

// mistralai/Mistral-7B-v0.1 config.json.
const char* kMistral01 = R"({
  "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 32768,
  "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "transformers_version": "4.34.0.dev0", "use_cache": true, "vocab_size": 32000})";

json minimal(const std::string& type) {
  return json{{"model_type", type},       {"hidden_size", 64},
              {"intermediate_size", 128}, {"num_hidden_layers", 2},
              {"num_attention_heads", 4}, {"num_key_value_heads", 2},
              {"vocab_size", 256},        {"max_position_embeddings", 1024},
              {"rms_norm_eps", 1e-6}};
}

// ---------------------------------------------------------------- published configs

TEST(Architectures, Llama31With8KvHeadsAndLlama3Rope) {
  const ModelConfig c = ModelConfig::from_json(json::parse(kLlama31));
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.rope_scaling.type, RopeType::llama3);
  EXPECT_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.parameter_count(), int64_t{8030261248});  // Llama-3.1-8B
  EXPECT_EQ(c.max_sequence_length(), 131072);           // max_position_embeddings is the extended context
  expect_round_trip(c);
  EXPECT_EQ(preset_config("llama3_8b").to_json(), c.to_json());
}

TEST(Architectures, Qwen25HasQkvBiases) {
  const ModelConfig c = ModelConfig::from_json(json::parse(kQwen25));
  EXPECT_EQ(c.model_type, "qwen2");
  EXPECT_TRUE(c.attention_qkv_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.sliding_window, 0);                      // use_sliding_window false
  EXPECT_EQ(c.parameter_count(), int64_t{494032768});  // Qwen2.5-0.5B, tied
  expect_round_trip(c);
  EXPECT_EQ(c.to_json().at("architectures"), json::array({"Qwen2ForCausalLM"}));
}

TEST(Architectures, Qwen3HasPerHeadQkNorms) {
  const ModelConfig c = ModelConfig::from_json(json::parse(kQwen3));
  EXPECT_EQ(c.model_type, "qwen3");
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.attention_qkv_bias);
  EXPECT_EQ(c.head_dim, 128);                          // != hidden / heads = 64
  EXPECT_EQ(c.parameter_count(), int64_t{596049920});  // Qwen3-0.6B, tied
  expect_round_trip(c);
}

TEST(Architectures, MistralSlidingWindowLimitsTheSequenceLength) {
  const ModelConfig v01 = ModelConfig::from_json(json::parse(kMistral01));
  EXPECT_EQ(v01.sliding_window, 4096);
  EXPECT_EQ(v01.parameter_count(), int64_t{7241732096});  // Mistral-7B-v0.1
  EXPECT_EQ(v01.max_sequence_length(), 4096);
  v01.require_sequence_length(4096, "--seq-len 4096");  // within the window: exactly full attention
  const std::string msg = usage_error([&] { v01.require_sequence_length(8192, "--seq-len 8192"); });
  EXPECT_NE(msg.find("--seq-len 8192 exceeds sliding_window 4096"), std::string::npos) << msg;
  expect_round_trip(v01);

  json v03 = json::parse(kMistral01);
  v03["sliding_window"] = nullptr;  // Mistral-7B-v0.3: no window
  EXPECT_EQ(ModelConfig::from_json(v03).max_sequence_length(), 32768);
  json absent = json::parse(kMistral01);
  absent.erase("sliding_window");  // HF's MistralConfig default
  EXPECT_EQ(ModelConfig::from_json(absent).sliding_window, 4096);
}

TEST(Architectures, HfDefaultsPerModelType) {
  auto without_kv = [](const std::string& type, int64_t heads) {
    json j = minimal(type);
    j.erase("num_key_value_heads");
    j["num_attention_heads"] = heads;
    j["hidden_size"] = 16 * heads;
    return ModelConfig::from_json(j).num_key_value_heads;
  };
  EXPECT_EQ(without_kv("llama", 4), 4);  // = heads
  EXPECT_EQ(without_kv("mistral", 16), 8);
  EXPECT_EQ(without_kv("qwen2", 32), 32);
  EXPECT_EQ(without_kv("qwen3", 64), 32);
  EXPECT_EQ(ModelConfig::from_json(minimal("qwen3")).head_dim, 128);  // Qwen3Config's default, not h / heads
  EXPECT_EQ(ModelConfig::from_json(minimal("qwen2")).head_dim, 16);
}

// ---------------------------------------------------------------- refusals

TEST(Architectures, WhatIsNotImplementedIsRefusedByName) {
  struct Case {
    std::string type;
    json patch;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"llama",
       {{"attention_bias", true}},
       "attention_bias = true is not supported for model_type \"llama\""},
      {"qwen3", {{"attention_bias", true}}, "o_proj"},
      {"llama", {{"mlp_bias", true}}, "mlp_bias"},
      {"qwen2", {{"use_sliding_window", true}, {"max_window_layers", 1}}, "sliding window"},
      {"qwen3", {{"layer_types", {"full_attention", "sliding_attention"}}}, "sliding_attention"},
      {"gemma", json::object(),
       "model_type \"gemma\" is not supported (allowed: llama, mistral, qwen2, qwen3)"},
      {"llama", {{"partial_rotary_factor", 0.5}}, "partial_rotary_factor 0.5"},
      {"llama", {{"rope_scaling", {{"rope_type", "longrope"}, {"factor", 2.0}}}}, "rope_type \"longrope\""},
      {"llama", {{"rope_scaling", {{"type", "su"}, {"factor", 2.0}}}}, "LongRoPE"},
      {"llama",
       {{"rope_scaling", {{"rope_type", "linear"}, {"type", "dynamic"}, {"factor", 2.0}}}},
       "\"type\" is"},
      {"llama", {{"rope_scaling", {{"rope_type", "linear"}}}}, "missing required field \"factor\""},
      {"llama",
       {{"rope_scaling", {{"rope_type", "dynamic"}, {"factor", 0.5}}}},
       "factor must be a number >= 1"},
      {"llama", {{"rope_scaling", {{"factor", 2.0}}}}, "missing \"rope_type\""},
      {"llama", {{"rope_scaling", "yarn"}}, "rope_scaling must be an object"},
      {"llama",
       {{"rope_scaling",
         {{"rope_type", "llama3"},
          {"factor", 8.0},
          {"high_freq_factor", 4.0},
          {"original_max_position_embeddings", 8}}}},
       "low_freq_factor"},
      {"llama",
       {{"rope_scaling",
         {{"rope_type", "llama3"},
          {"factor", 8.0},
          {"low_freq_factor", 4.0},
          {"high_freq_factor", 1.0},
          {"original_max_position_embeddings", 8}}}},
       "low_freq_factor < high_freq_factor"},
      {"llama",
       {{"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}, {"attention_factor", -1.0}}}},
       "attention_factor must be positive"},
      {"llama",
       {{"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}, {"partial_rotary_factor", 0.25}}}},
       "partial_rotary_factor"},
      {"llama",
       {{"rope_scaling", {{"rope_type", "linear"}, {"factor", 2.0}}},
        {"rope_parameters", {{"rope_type", "linear"}, {"factor", 4.0}}}},
       "describe different RoPE computations"},
      {"llama",
       {{"head_dim", 2}, {"rope_scaling", {{"rope_type", "dynamic"}, {"factor", 2.0}}}},
       "head_dim > 2"},
  };
  for (const Case& k : cases) {
    json j = minimal(k.type);
    for (const auto& [key, value] : k.patch.items()) j[key] = value;
    const std::string msg = usage_error([&] { ModelConfig::from_json(j); });
    EXPECT_NE(msg.find(k.want), std::string::npos) << j.dump() << "\n -> " << msg;
  }
  // A Qwen window that no layer uses (every layer below max_window_layers) is no window at all.
  json q = minimal("qwen2");
  q["use_sliding_window"] = true;
  q["max_window_layers"] = 2;
  EXPECT_EQ(ModelConfig::from_json(q).sliding_window, 0);
  // Keys a rope type does not use are ignored, as HF does.
  json extra = minimal("llama");
  extra["rope_scaling"] = {
      {"rope_type", "linear"}, {"factor", 2.0}, {"original_max_position_embeddings", 64}};
  EXPECT_EQ(ModelConfig::from_json(extra).rope_scaling.type, RopeType::linear);
}

TEST(Architectures, SwitchesMustMatchTheModelType) {
  ModelConfig c = preset_config("tiny");
  c.qk_norm = true;  // a Llama with Qwen3's norms is no model HF builds
  EXPECT_NE(usage_error([&] { c.validate(); }).find("qwen3"), std::string::npos);
  c.qk_norm = false;
  c.sliding_window = 64;
  EXPECT_NE(usage_error([&] { c.validate(); }).find("mistral"), std::string::npos);
}

// ---------------------------------------------------------------- RoPE frequencies (HF's formulas)

ModelConfig rope_config(const json& rope_scaling, int64_t max_pos = 1024, int64_t head_dim = 16,
                        double theta = 10000.0) {
  json j = minimal("llama");
  j["max_position_embeddings"] = max_pos;
  j["head_dim"] = head_dim;
  j["rope_theta"] = theta;
  j["rope_scaling"] = rope_scaling;
  return ModelConfig::from_json(j);
}

std::vector<double> standard(int64_t d, double theta) {
  std::vector<double> f(size_t(d / 2));
  for (int64_t i = 0; i < d / 2; ++i) f[size_t(i)] = 1.0 / std::pow(theta, double(2 * i) / double(d));
  return f;
}

TEST(RopeScaling, DefaultAndLinear) {
  const ModelConfig c = rope_config(nullptr);
  const kernels::RopeTable t = c.rope_table(4096);
  EXPECT_EQ(t.attention_factor, 1.0);
  const auto ref = standard(16, 10000.0);
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(t.inv_freq[i], ref[i], 1e-15 * ref[i]);

  const ModelConfig lin = rope_config({{"type", "linear"}, {"factor", 4.0}});
  const kernels::RopeTable l = lin.rope_table(10);
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(l.inv_freq[i], ref[i] / 4.0, 1e-15 * ref[i]);
  EXPECT_EQ(lin.max_sequence_length(), 4096);  // factor x max_position_embeddings
  expect_round_trip(lin);
}

TEST(RopeScaling, DynamicGrowsTheBasePastMaxPositions) {
  const ModelConfig c = rope_config({{"rope_type", "dynamic"}, {"factor", 2.0}}, 256, 8);
  const auto ref = standard(8, 10000.0);
  // Up to max_position_embeddings: the unscaled frequencies.
  for (int64_t s : {1, 100, 256}) EXPECT_EQ(c.rope_table(s).inv_freq, c.rope_table(1).inv_freq);
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(c.rope_table(256).inv_freq[i], ref[i], 1e-15);
  // Past it: base' = base (factor s / max - (factor - 1))^(d/(d-2)); here s = 384: (1.5)^(4/3).
  const double base = 10000.0 * std::pow(2.0 * 384 / 256 - 1.0, 8.0 / 6.0);
  const auto want = standard(8, base);
  const kernels::RopeTable t = c.rope_table(384);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(t.inv_freq[i], want[i], 1e-14 * want[i]);
  EXPECT_EQ(t.inv_freq[0], 1.0);  // pair 0 never changes
  EXPECT_LT(t.inv_freq[3], ref[3]);
  EXPECT_EQ(c.max_sequence_length(), 512);
  expect_round_trip(c);
}

TEST(RopeScaling, Llama3KeepsHighFrequenciesAndInterpolatesLowOnes) {
  const ModelConfig c = ModelConfig::from_json(json::parse(kLlama31));
  const kernels::RopeTable t = c.rope_table(1);
  const auto ref = standard(128, 500000.0);
  EXPECT_EQ(t.attention_factor, 1.0);
  int kept = 0, scaled = 0, smoothed = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double wavelen = 2 * M_PI / ref[i];
    if (wavelen < 8192.0 / 4) {
      EXPECT_NEAR(t.inv_freq[i], ref[i], 1e-15 * ref[i]) << i;
      ++kept;
    } else if (wavelen > 8192.0) {
      EXPECT_NEAR(t.inv_freq[i], ref[i] / 8, 1e-15 * ref[i]) << i;
      ++scaled;
    } else {
      const double s = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      EXPECT_NEAR(t.inv_freq[i], (1 - s) * ref[i] / 8 + s * ref[i], 1e-15 * ref[i]) << i;
      EXPECT_LT(t.inv_freq[i], ref[i]);
      EXPECT_GT(t.inv_freq[i], ref[i] / 8);
      ++smoothed;
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(scaled, 0);
  EXPECT_GT(smoothed, 0);
}

TEST(RopeScaling, YarnRampAndAttentionFactor) {
  // Qwen2.5's documented YaRN setting: factor 4 over an original context of 32768, theta 1e6, head_dim 128.
  const ModelConfig c = rope_config(
      {{"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32768}}, 32768, 128, 1e6);
  EXPECT_EQ(c.max_sequence_length(), 131072);
  const kernels::RopeTable t = c.rope_table(1);
  EXPECT_NEAR(t.attention_factor, 0.1 * std::log(4.0) + 1.0, 1e-15);
  // Correction range: floor(d ln(32768 / (32·2π)) / (2 ln 1e6)) = 23, ceil(d ln(32768 / (1·2π)) / ...) = 40.
  const auto ref = standard(128, 1e6);
  for (size_t i = 0; i < ref.size(); ++i) {
    const double ramp = std::clamp((double(i) - 23.0) / (40.0 - 23.0), 0.0, 1.0);
    const double want = ref[i] / 4.0 * ramp + ref[i] * (1.0 - ramp);
    EXPECT_NEAR(t.inv_freq[i], want, 1e-14 * ref[i]) << i;
  }
  EXPECT_EQ(t.inv_freq[23], ref[23]);
  EXPECT_NEAR(t.inv_freq[40], ref[40] / 4, 1e-15 * ref[40]);
  expect_round_trip(c);

  // DeepSeek-style mscale / mscale_all_dim, and an explicit attention_factor.
  const ModelConfig ds = rope_config({{"rope_type", "yarn"},
                                      {"factor", 40.0},
                                      {"mscale", 1.0},
                                      {"mscale_all_dim", 0.5},
                                      {"beta_fast", 32},
                                      {"beta_slow", 1},
                                      {"original_max_position_embeddings", 4096}},
                                     163840, 64);
  EXPECT_NEAR(ds.rope_table(1).attention_factor, (0.1 * std::log(40.0) + 1) / (0.05 * std::log(40.0) + 1),
              1e-15);
  const ModelConfig fixed =
      rope_config({{"rope_type", "yarn"}, {"factor", 2.0}, {"attention_factor", 0.75}, {"truncate", false}});
  EXPECT_EQ(fixed.rope_table(1).attention_factor, 0.75);
  expect_round_trip(ds);
  expect_round_trip(fixed);
}

TEST(RopeScaling, TransformersV5RopeParameters) {
  json j = minimal("llama");
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_type", "linear"}, {"rope_theta", 250000.0}, {"factor", 2.0}};
  const ModelConfig c = ModelConfig::from_json(j);
  EXPECT_EQ(c.rope_theta, 250000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeType::linear);
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1e6}};
  EXPECT_EQ(ModelConfig::from_json(j).rope_scaling.type, RopeType::standard);
  EXPECT_EQ(ModelConfig::from_json(j).rope_theta, 1e6);
}

TEST(RopeScaling, SequenceLimitNamesTheScaledContext) {
  const ModelConfig c = rope_config({{"rope_type", "linear"}, {"factor", 2.0}}, 64);
  c.require_sequence_length(128, "--seq-len 128");
  const std::string msg = usage_error([&] { c.require_sequence_length(130, "--seq-len 130"); });
  EXPECT_NE(msg.find("--seq-len 130 is outside 1..128"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rope_scaling linear factor 2"), std::string::npos) << msg;
  const std::string plain =
      usage_error([] { preset_config("tiny").require_sequence_length(9000, "--seq-len 9000"); });
  EXPECT_NE(plain.find("--seq-len 9000 is outside 1..max_position_embeddings (8192)"), std::string::npos)
      << plain;
}

}  // namespace
}  // namespace tsp
