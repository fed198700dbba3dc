#include "model/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

#include "core/check.h"

namespace tsp {

namespace {

// HF writes some optional fields as explicit nulls (e.g. "head_dim": null); treat those like absent.
bool present(const nlohmann::json& j, const char* key) {
  return j.contains(key) && !j.at(key).is_null();
}

int64_t get_int(const nlohmann::json& j, const char* key) {
  TSP_REQUIRE(j.contains(key), "config.json: missing required field \"{}\"", key);
  const auto& v = j.at(key);
  TSP_REQUIRE(v.is_number_integer(), "config.json: field \"{}\" must be an integer, got {}", key, v.dump());
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    TSP_REQUIRE(u <= uint64_t(std::numeric_limits<int64_t>::max()),
                "config.json: field \"{}\" = {} is too large", key, u);
    return int64_t(u);
  }
  return v.get<int64_t>();
}

double get_number(const nlohmann::json& j, const char* key) {
  TSP_REQUIRE(j.contains(key), "config.json: missing required field \"{}\"", key);
  const auto& v = j.at(key);
  TSP_REQUIRE(v.is_number(), "config.json: field \"{}\" must be a number, got {}", key, v.dump());
  return v.get<double>();
}

bool get_bool(const nlohmann::json& j, const char* key) {
  const auto& v = j.at(key);
  TSP_REQUIRE(v.is_boolean(), "config.json: field \"{}\" must be true or false, got {}", key, v.dump());
  return v.get<bool>();
}

std::string get_string(const nlohmann::json& j, const char* key) {
  const auto& v = j.at(key);
  TSP_REQUIRE(v.is_string(), "config.json: field \"{}\" must be a string, got {}", key, v.dump());
  return v.get<std::string>();
}

void require_positive(int64_t v, const char* key) {
  TSP_REQUIRE(v > 0, "model config: {} must be positive, got {}", key, v);
}

}  // namespace

int64_t ModelConfig::parameter_count() const {
  const int64_t h = hidden_size;
  // Per layer: q, k, v, o projections; gate, up, down of the SwiGLU MLP; two RMSNorm weights.
  const int64_t attention = h * q_dim() + 2 * h * kv_dim() + q_dim() * h;
  const int64_t mlp = 3 * h * intermediate_size;
  const int64_t per_layer = attention + mlp + 2 * h;
  const int64_t embedding = vocab_size * h;
  const int64_t lm_head = tie_word_embeddings ? 0 : vocab_size * h;
  return embedding + num_hidden_layers * per_layer + h + lm_head;
}

void ModelConfig::validate() const {
  require_positive(hidden_size, "hidden_size");
  require_positive(intermediate_size, "intermediate_size");
  require_positive(num_hidden_layers, "num_hidden_layers");
  require_positive(num_attention_heads, "num_attention_heads");
  require_positive(num_key_value_heads, "num_key_value_heads");
  require_positive(head_dim, "head_dim");
  require_positive(vocab_size, "vocab_size");
  require_positive(max_position_embeddings, "max_position_embeddings");
  TSP_REQUIRE(num_attention_heads % num_key_value_heads == 0,
              "model config: num_attention_heads ({}) must be a multiple of num_key_value_heads ({}) for "
              "grouped-query attention",
              num_attention_heads, num_key_value_heads);
  // RoPE rotates pairs of channels (HF's rotate_half splits head_dim in two halves).
  TSP_REQUIRE(head_dim % 2 == 0, "model config: head_dim must be even for rotary embeddings, got {}",
              head_dim);
  // Token ids travel as int32.
  TSP_REQUIRE(vocab_size <= std::numeric_limits<int32_t>::max(),
              "model config: vocab_size must fit in int32, got {}", vocab_size);
  TSP_REQUIRE(std::isfinite(rms_norm_eps) && rms_norm_eps > 0,
              "model config: rms_norm_eps must be a positive finite number, got {}", rms_norm_eps);
  TSP_REQUIRE(std::isfinite(rope_theta) && rope_theta > 0,
              "model config: rope_theta must be a positive finite number, got {}", rope_theta);
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j) {
  TSP_REQUIRE(j.is_object(), "config.json: expected a JSON object, got {}", j.type_name());

  // Reject architectural switches this implementation does not have, before reading sizes, so the message
  // names the real reason a foreign config cannot load.
  if (present(j, "model_type")) {
    std::string mt = get_string(j, "model_type");
    TSP_REQUIRE(mt == "llama", "config.json: model_type must be \"llama\", got \"{}\"", mt);
  }
  if (present(j, "hidden_act")) {
    std::string act = get_string(j, "hidden_act");
    TSP_REQUIRE(act == "silu", "config.json: hidden_act must be \"silu\" (SwiGLU MLP), got \"{}\"", act);
  }
  TSP_REQUIRE(!present(j, "rope_scaling"),
              "config.json: rope_scaling is not supported (must be null or absent), got {}",
              j.at("rope_scaling").dump());
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    if (present(j, key)) {
      TSP_REQUIRE(!get_bool(j, key), "config.json: {} = true is not supported (projections have no bias)",
                  key);
    }
  }

  ModelConfig c;
  c.hidden_size = get_int(j, "hidden_size");
  c.intermediate_size = get_int(j, "intermediate_size");
  c.num_hidden_layers = get_int(j, "num_hidden_layers");
  c.num_attention_heads = get_int(j, "num_attention_heads");
  c.num_key_value_heads =
      present(j, "num_key_value_heads") ? get_int(j, "num_key_value_heads") : c.num_attention_heads;
  c.vocab_size = get_int(j, "vocab_size");
  c.max_position_embeddings = get_int(j, "max_position_embeddings");
  c.rms_norm_eps = get_number(j, "rms_norm_eps");
  c.rope_theta = present(j, "rope_theta") ? get_number(j, "rope_theta") : 10000.0;
  c.tie_word_embeddings = present(j, "tie_word_embeddings") ? get_bool(j, "tie_word_embeddings") : false;
  if (present(j, "head_dim")) {
    c.head_dim = get_int(j, "head_dim");
  } else {
    require_positive(c.hidden_size, "hidden_size");
    require_positive(c.num_attention_heads, "num_attention_heads");
    TSP_REQUIRE(
        c.hidden_size % c.num_attention_heads == 0,
        "config.json: hidden_size ({}) must be divisible by num_attention_heads ({}) when head_dim is "
        "not given",
        c.hidden_size, c.num_attention_heads);
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  c.validate();
  return c;
}

nlohmann::json ModelConfig::to_json() const {
  nlohmann::json j;
  j["architectures"] = {"LlamaForCausalLM"};
  j["model_type"] = "llama";
  j["hidden_act"] = "silu";
  j["torch_dtype"] = "float32";
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = head_dim;
  j["vocab_size"] = vocab_size;
  j["max_position_embeddings"] = max_position_embeddings;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  j["tie_word_embeddings"] = tie_word_embeddings;
  // Spelled out so that transformers' LlamaConfig builds exactly this model rather than its defaults.
  j["rope_scaling"] = nullptr;
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  return j;
}

std::vector<std::string> preset_names() {
  return {"tiny", "small", "llama7b"};
}

ModelConfig preset_config(std::string_view name) {
  ModelConfig c;
  if (name == "tiny") {
    c.hidden_size = 64;
    c.intermediate_size = 192;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 16;
    c.vocab_size = 256;
    c.max_position_embeddings = 8192;
  } else if (name == "small") {
    // Sized for the 2-core demo: it learns the long-context recall task (to 2048 tokens) in about a thousand
    // steps; heads, KV heads and intermediate size divide by 2 and 4 for the parallel layouts.
    c.hidden_size = 128;
    c.intermediate_size = 384;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 4;
    c.head_dim = 32;
    c.vocab_size = 256;
    c.max_position_embeddings = 16384;
  } else if (name == "llama7b") {
    // The paper's 7B-class model; its analysis uses I = 4h, which makes it ~8.85e9 parameters untied.
    c.hidden_size = 4096;
    c.intermediate_size = 16384;
    c.num_hidden_layers = 32;
    c.num_attention_heads = 32;
    c.num_key_value_heads = 32;
    c.head_dim = 128;
    c.vocab_size = 32000;
    c.max_position_embeddings = 131072;
    c.rope_theta = 500000.0;
  } else {
    throw UsageError(
        fmt::format("unknown model preset \"{}\"; choose one of: {}", name, fmt::join(preset_names(), ", ")));
  }
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = false;
  c.validate();
  return c;
}

ModelConfig load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TSP_REQUIRE(in.good(), "cannot open model config '{}': {}", path, std::strerror(errno));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(fmt::format("model config '{}' is not valid JSON: {}", path, e.what()));
  }
  try {
    return ModelConfig::from_json(j);
  } catch (const UsageError& e) {
    throw UsageError(fmt::format("{}: {}", path, e.what()));
  }
}

void save_config(const ModelConfig& c, const std::string& path) {
  c.validate();
  const std::string text = c.to_json().dump(2) + "\n";
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  TSP_CHECK(f != nullptr, "cannot create '{}': {}", tmp, std::strerror(errno));
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok = std::fflush(f) == 0 && ok;
  ok = ::fsync(fileno(f)) == 0 && ok;
  const int saved_errno = errno;
  ok = std::fclose(f) == 0 && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    TSP_CHECK(false, "cannot write model config '{}': {}", tmp, std::strerror(saved_errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    TSP_CHECK(false, "cannot rename '{}' to '{}': {}", tmp, path, std::strerror(e));
  }
}

}  // namespace tsp
