// Model configuration: presets, the HF config.json mapping (field names, defaults, rejections) and file I/O.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "core/check.h"
#include "model/config.h"

namespace fs = std::filesystem;
using nlohmann::json;
using tsp::ModelConfig;

namespace {

void expect_same(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.num_hidden_layers, b.num_hidden_layers);
  EXPECT_EQ(a.num_attention_heads, b.num_attention_heads);
  EXPECT_EQ(a.num_key_value_heads, b.num_key_value_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.rope_scaling, b.rope_scaling);
  EXPECT_EQ(a.model_type, b.model_type);
  EXPECT_EQ(a.attention_qkv_bias, b.attention_qkv_bias);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.sliding_window, b.sliding_window);
}

// The message of the UsageError that `f` throws ("" if it does not throw one).
template <class F>
std::string usage_error(F&& f) {
  try {
    f();
  } catch (const tsp::UsageError& e) {
    return e.what();
  }
  return "";
}

// TinyLlama-1.1B's config.json as published on the Hugging Face hub: no head_dim, GQA, explicit nulls.
const char* kTinyLlamaJson = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 5632,
  "max_position_embeddings": 2048,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 22,
  "num_key_value_heads": 4,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": null,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.35.0",
  "use_cache": true,
  "vocab_size": 32000
})";

json minimal_json() {
  return json{{"hidden_size", 64},        {"intermediate_size", 192}, {"num_hidden_layers", 2},
              {"num_attention_heads", 4}, {"vocab_size", 256},        {"max_position_embeddings", 512},
              {"rms_norm_eps", 1e-6}};
}

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("tsp_test_config_" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  ~TempDir() { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }

 private:
  fs::path dir_;
};

}  // namespace

TEST(Config, TinyPreset) {
  const ModelConfig c = tsp::preset_config("tiny");
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 192);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.vocab_size, 256);
  EXPECT_EQ(c.max_position_embeddings, 8192);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.q_dim(), 64);
  EXPECT_EQ(c.kv_dim(), 32);
  // embed 256*64, per layer (64*64 + 2*64*32 + 64*64 + 3*64*192 + 2*64), final norm, untied head.
  EXPECT_EQ(c.parameter_count(), 16384 + 2 * (4096 + 4096 + 4096 + 36864 + 128) + 64 + 16384);
}

TEST(Config, SmallPreset) {
  const ModelConfig c = tsp::preset_config("small");
  EXPECT_EQ(c.hidden_size, 128);
  EXPECT_EQ(c.intermediate_size, 384);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.vocab_size, 256);
  EXPECT_EQ(c.max_position_embeddings, 16384);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_FALSE(c.tie_word_embeddings);
}

TEST(Config, Llama7bPresetParameterCount) {
  const ModelConfig c = tsp::preset_config("llama7b");
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.intermediate_size, 16384);
  EXPECT_EQ(c.num_hidden_layers, 32);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_EQ(c.num_key_value_heads, 32);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_FALSE(c.tie_word_embeddings);
  // Per layer 4h^2 (attention) + 3hI (MLP, I = 4h) + 2h (norms) = 268,443,648; times 32 layers, plus
  // embedding and LM head (2 * 32000 * 4096) and the final norm: 8,852,344,832 (~8.85e9).
  EXPECT_EQ(c.parameter_count(), int64_t{8852344832});
  ModelConfig tied = c;
  tied.tie_word_embeddings = true;
  EXPECT_EQ(tied.parameter_count(), int64_t{8852344832} - 32000 * 4096);
}

TEST(Config, UnknownPresetListsNames) {
  const std::string msg = usage_error([] { tsp::preset_config("huge"); });
  EXPECT_NE(msg.find("huge"), std::string::npos) << msg;
  for (const auto& n : tsp::preset_names()) EXPECT_NE(msg.find(n), std::string::npos) << msg;
  EXPECT_EQ(tsp::preset_names(), (std::vector<std::string>{"tiny", "small", "llama7b", "llama3_8b"}));
}

TEST(Config, JsonRoundTripEveryPreset) {
  for (const auto& name : tsp::preset_names()) {
    SCOPED_TRACE(name);
    const ModelConfig c = tsp::preset_config(name);
    expect_same(ModelConfig::from_json(c.to_json()), c);
    // Through text too, as a config.json on disk would be.
    expect_same(ModelConfig::from_json(json::parse(c.to_json().dump(2))), c);
  }
}

TEST(Config, ToJsonUsesHuggingFaceFieldNames) {
  const json j = tsp::preset_config("small").to_json();
  EXPECT_EQ(j.at("architectures"), json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(j.at("model_type"), "llama");
  EXPECT_EQ(j.at("hidden_act"), "silu");
  EXPECT_EQ(j.at("torch_dtype"), "float32");
  EXPECT_EQ(j.at("hidden_size"), 128);
  EXPECT_EQ(j.at("intermediate_size"), 384);
  EXPECT_EQ(j.at("num_hidden_layers"), 2);
  EXPECT_EQ(j.at("num_attention_heads"), 4);
  EXPECT_EQ(j.at("num_key_value_heads"), 4);
  EXPECT_EQ(j.at("head_dim"), 32);
  EXPECT_EQ(j.at("vocab_size"), 256);
  EXPECT_EQ(j.at("max_position_embeddings"), 16384);
  EXPECT_EQ(j.at("rms_norm_eps"), 1e-5);
  EXPECT_EQ(j.at("rope_theta"), 10000.0);
  EXPECT_EQ(j.at("tie_word_embeddings"), false);
  EXPECT_TRUE(j.at("rope_scaling").is_null());
  EXPECT_EQ(j.at("attention_bias"), false);
  EXPECT_EQ(j.at("mlp_bias"), false);
}

TEST(Config, LoadsPublishedHuggingFaceConfig) {
  const ModelConfig c = ModelConfig::from_json(json::parse(kTinyLlamaJson));
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.intermediate_size, 5632);
  EXPECT_EQ(c.num_hidden_layers, 22);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_FALSE(c.tie_word_embeddings);
  // TinyLlama-1.1B: 1,100,048,384 parameters.
  EXPECT_EQ(c.parameter_count(), int64_t{1100048384});
}

TEST(Config, Defaults) {
  const ModelConfig c = ModelConfig::from_json(minimal_json());
  EXPECT_EQ(c.num_key_value_heads, 4);  // = num_attention_heads
  EXPECT_EQ(c.head_dim, 16);            // = hidden_size / num_attention_heads
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);

  json j = minimal_json();
  j["head_dim"] = nullptr;  // HF writes explicit nulls for unset optional fields
  j["num_key_value_heads"] = nullptr;
  j["rope_scaling"] = nullptr;
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  expect_same(ModelConfig::from_json(j), c);
}

TEST(Config, ExplicitHeadDimNeedNotDivideHidden) {
  json j = minimal_json();
  j["head_dim"] = 24;  // q_dim = 96 != hidden_size 64, as in some published models
  j["num_key_value_heads"] = 2;
  j["tie_word_embeddings"] = true;
  j["rope_theta"] = 500000;  // an integer literal is a fine number
  const ModelConfig c = ModelConfig::from_json(j);
  EXPECT_EQ(c.head_dim, 24);
  EXPECT_EQ(c.q_dim(), 96);
  EXPECT_EQ(c.kv_dim(), 48);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.rope_theta, 500000.0);
  expect_same(ModelConfig::from_json(c.to_json()), c);
}

TEST(Config, MissingRequiredFieldIsNamed) {
  for (const char* field : {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                            "vocab_size", "max_position_embeddings", "rms_norm_eps"}) {
    json j = minimal_json();
    j.erase(field);
    const std::string msg = usage_error([&] { ModelConfig::from_json(j); });
    EXPECT_NE(msg.find(field), std::string::npos) << field << ": " << msg;
    EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
  }
}

TEST(Config, WrongTypeIsNamed) {
  const std::vector<std::pair<std::string, json>> cases = {{"hidden_size", "64"},
                                                           {"num_hidden_layers", 2.5},
                                                           {"vocab_size", true},
                                                           {"rms_norm_eps", "1e-5"},
                                                           {"rope_theta", json::array()},
                                                           {"tie_word_embeddings", 1},
                                                           {"num_key_value_heads", "2"},
                                                           {"head_dim", 16.0},
                                                           {"hidden_act", 3},
                                                           {"attention_bias", "false"},
                                                           {"model_type", json::object()},
                                                           {"max_position_embeddings", -1.0}};
  for (const auto& [field, value] : cases) {
    json j = minimal_json();
    j[field] = value;
    const std::string msg = usage_error([&] { ModelConfig::from_json(j); });
    EXPECT_NE(msg.find(field), std::string::npos) << field << " = " << value.dump() << ": " << msg;
  }
}

TEST(Config, UnsupportedFeaturesAreNamed) {
  const std::vector<std::pair<std::string, json>> cases = {
      {"rope_scaling", {{"rope_type", "longrope"}, {"factor", 8.0}}},
      {"attention_bias", true},
      {"mlp_bias", true},
      {"hidden_act", "gelu"},
      {"partial_rotary_factor", 0.5},
      {"model_type", "gemma"}};
  for (const auto& [field, value] : cases) {
    json j = minimal_json();
    j[field] = value;
    const std::string msg = usage_error([&] { ModelConfig::from_json(j); });
    EXPECT_NE(msg.find(field), std::string::npos) << field << ": " << msg;
  }
  EXPECT_NE(usage_error([] { ModelConfig::from_json(json::array()); }), "");
}

TEST(Config, InvalidValuesAreNamed) {
  const std::vector<std::pair<std::string, json>> cases = {
      {"hidden_size", 0},         {"intermediate_size", -5},       {"num_hidden_layers", 0},
      {"num_attention_heads", 0}, {"num_key_value_heads", 3},      {"head_dim", 15},
      {"vocab_size", 0},          {"max_position_embeddings", 0},  {"rms_norm_eps", 0.0},
      {"rope_theta", -1.0},       {"vocab_size", int64_t{1} << 40}};
  for (const auto& [field, value] : cases) {
    json j = minimal_json();
    j[field] = value;
    const std::string msg = usage_error([&] { ModelConfig::from_json(j); });
    EXPECT_NE(msg.find(field), std::string::npos) << field << " = " << value.dump() << ": " << msg;
  }
  // Without head_dim, hidden_size must split evenly over the heads.
  json j = minimal_json();
  j["num_attention_heads"] = 5;
  const std::string msg = usage_error([&] { ModelConfig::from_json(j); });
  EXPECT_NE(msg.find("head_dim"), std::string::npos) << msg;
  EXPECT_NE(msg.find("num_attention_heads"), std::string::npos) << msg;
}

TEST(Config, ValidateDirectly) {
  ModelConfig c = tsp::preset_config("tiny");
  EXPECT_NO_THROW(c.validate());
  c.num_key_value_heads = 3;
  EXPECT_NE(usage_error([&] { c.validate(); }).find("num_key_value_heads"), std::string::npos);
  c = tsp::preset_config("tiny");
  c.head_dim = 0;
  EXPECT_NE(usage_error([&] { c.validate(); }).find("head_dim"), std::string::npos);
}

TEST(Config, SaveAndLoad) {
  TempDir tmp;
  const std::string path = tmp.file("config.json");
  const ModelConfig small = tsp::preset_config("small");
  tsp::save_config(small, path);
  expect_same(tsp::load_config(path), small);
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  // Saving over an existing config replaces it.
  const ModelConfig tiny = tsp::preset_config("tiny");
  tsp::save_config(tiny, path);
  expect_same(tsp::load_config(path), tiny);
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  // The file is plain HF config.json.
  std::ifstream in(path);
  const json j = json::parse(in);
  EXPECT_EQ(j.at("hidden_size"), 64);
}

TEST(Config, LoadErrorsNameThePath) {
  TempDir tmp;
  const std::string missing = tmp.file("nope.json");
  std::string msg = usage_error([&] { tsp::load_config(missing); });
  EXPECT_NE(msg.find(missing), std::string::npos) << msg;

  const std::string bad_json = tmp.file("bad.json");
  std::ofstream(bad_json) << "{\"hidden_size\": 64,";
  msg = usage_error([&] { tsp::load_config(bad_json); });
  EXPECT_NE(msg.find(bad_json), std::string::npos) << msg;

  const std::string bad_field = tmp.file("field.json");
  json j = minimal_json();
  j["mlp_bias"] = true;
  std::ofstream(bad_field) << j.dump();
  msg = usage_error([&] { tsp::load_config(bad_field); });
  EXPECT_NE(msg.find(bad_field), std::string::npos) << msg;
  EXPECT_NE(msg.find("mlp_bias"), std::string::npos) << msg;
}

TEST(Config, SaveErrorNamesThePath) {
  TempDir tmp;
  const std::string path = tmp.file("no_such_dir/config.json");
  try {
    tsp::save_config(tsp::preset_config("tiny"), path);
    FAIL() << "expected an error";
  } catch (const tsp::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}
