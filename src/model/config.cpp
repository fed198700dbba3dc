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
#include <optional>

#include "core/check.h"
#include "model/architectures.h"
#include "model/json_fields.h"

namespace tsp {

namespace {

using json_fields::get_bool;
using json_fields::get_int;
using json_fields::get_number;
using json_fields::get_string;
using json_fields::present;

// rope_scaling (HF's legacy key) and rope_parameters (transformers 5's, which also carries rope_theta): the
// same computation either way; when both are given they must agree.
void read_rope(const nlohmann::json& j, ModelConfig& c) {
  std::optional<RopeScaling> legacy, v5;
  if (present(j, "rope_scaling")) legacy = RopeScaling::from_json(j.at("rope_scaling"));
  if (present(j, "rope_parameters")) {
    const auto& rp = j.at("rope_parameters");
    TSP_REQUIRE(rp.is_object(), "config.json: rope_parameters must be an object, got {}", rp.dump());
    TSP_REQUIRE(!rp.contains("full_attention") && !rp.contains("sliding_attention"),
                "config.json: per-layer-type rope_parameters are not supported, got {}", rp.dump());
    if (present(rp, "rope_theta"))
      c.rope_theta = get_number(rp, "rope_theta", "config.json: rope_parameters");
    v5 = RopeScaling::from_json(rp);
  }
  TSP_REQUIRE(!legacy || !v5 || *legacy == *v5,
              "config.json: rope_scaling {} and rope_parameters {} describe different RoPE computations",
              j.at("rope_scaling").dump(), j.at("rope_parameters").dump());
  c.rope_scaling = legacy ? *legacy : v5 ? *v5 : RopeScaling{};
}

void require_positive(int64_t v, const char* key) {
  TSP_REQUIRE(v > 0, "model config: {} must be positive, got {}", key, v);
}

}  // namespace

int64_t ModelConfig::parameter_count() const {
  const int64_t h = hidden_size;
  // Per layer: q, k, v, o projections (and Qwen2's q/k/v biases); gate, up, down of the SwiGLU MLP; two
  // RMSNorm weights (and Qwen3's q_norm, k_norm over head_dim).
  const int64_t attention =
      h * q_dim() + 2 * h * kv_dim() + q_dim() * h + (attention_qkv_bias ? q_dim() + 2 * kv_dim() : 0);
  const int64_t mlp = 3 * h * intermediate_size;
  const int64_t per_layer = attention + mlp + 2 * h + (qk_norm ? 2 * head_dim : 0);
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
  TSP_REQUIRE(
      rope_scaling.type != RopeType::dynamic || head_dim > 2,
      "model config: dynamic RoPE scaling needs head_dim > 2 (its base grows as a power d/(d-2)), got "
      "{}",
      head_dim);
  TSP_REQUIRE(rope_scaling.type == RopeType::standard ||
                  (std::isfinite(rope_scaling.factor) && rope_scaling.factor >= 1),
              "model config: rope_scaling factor must be >= 1, got {}", rope_scaling.factor);
  validate_architecture(*this);
}

kernels::RopeTable ModelConfig::rope_table(int64_t seq_len) const {
  return rope_frequencies(rope_scaling, rope_theta, head_dim, max_position_embeddings, seq_len);
}

int64_t ModelConfig::max_sequence_length() const {
  const int64_t context = rope_scaling.context_length(max_position_embeddings);
  return sliding_window > 0 ? std::min(context, sliding_window) : context;
}

void ModelConfig::require_sequence_length(int64_t seq_len, const std::string& what) const {
  TSP_REQUIRE(seq_len > 0, "{} must be positive", what);
  const int64_t context = rope_scaling.context_length(max_position_embeddings);
  if (sliding_window > 0 && seq_len > sliding_window && sliding_window < context)
    throw UsageError(fmt::format(
        "{} exceeds sliding_window {} of this {} config: attention limited to a sliding window is not "
        "implemented, so only sequences of up to {} tokens run (and there it equals full attention)",
        what, sliding_window, model_type, sliding_window));
  if (seq_len > context) {
    if (context == max_position_embeddings)
      throw UsageError(
          fmt::format("{} is outside 1..max_position_embeddings ({})", what, max_position_embeddings));
    throw UsageError(fmt::format(
        "{} is outside 1..{}: the context of max_position_embeddings {} with rope_scaling {} factor {}", what,
        context, max_position_embeddings, rope_scaling.type_name(), rope_scaling.factor));
  }
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j) {
  TSP_REQUIRE(j.is_object(), "config.json: expected a JSON object, got {}", j.type_name());

  // The architecture first: its switches and defaults decide how the sizes below are read, and refusing a
  // foreign config here names the real reason it cannot load.
  ModelConfig c;
  read_architecture(j, c);
  if (present(j, "hidden_act")) {
    std::string act = get_string(j, "hidden_act");
    TSP_REQUIRE(act == "silu", "config.json: hidden_act must be \"silu\" (SwiGLU MLP), got \"{}\"", act);
  }
  if (present(j, "partial_rotary_factor")) {
    const double prf = get_number(j, "partial_rotary_factor");
    TSP_REQUIRE(prf == 1.0,
                "config.json: partial_rotary_factor {} is not supported (Llama-family attention rotates the "
                "whole head: 1.0)",
                prf);
  }

  c.hidden_size = get_int(j, "hidden_size");
  c.intermediate_size = get_int(j, "intermediate_size");
  c.num_hidden_layers = get_int(j, "num_hidden_layers");
  c.num_attention_heads = get_int(j, "num_attention_heads");
  c.num_key_value_heads = present(j, "num_key_value_heads")
                              ? get_int(j, "num_key_value_heads")
                              : default_num_key_value_heads(c.model_type, c.num_attention_heads);
  c.vocab_size = get_int(j, "vocab_size");
  c.max_position_embeddings = get_int(j, "max_position_embeddings");
  c.rms_norm_eps = get_number(j, "rms_norm_eps");
  c.rope_theta = present(j, "rope_theta") ? get_number(j, "rope_theta") : 10000.0;
  read_rope(j, c);
  c.tie_word_embeddings = present(j, "tie_word_embeddings") ? get_bool(j, "tie_word_embeddings") : false;
  if (present(j, "head_dim")) {
    c.head_dim = get_int(j, "head_dim");
  } else if (default_head_dim(c.model_type) > 0) {
    c.head_dim = default_head_dim(c.model_type);
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
  write_architecture(*this, j);
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
  // Spelled out so that transformers builds exactly this model rather than its defaults.
  j["rope_scaling"] = rope_scaling.to_json();
  return j;
}

std::vector<std::string> preset_names() {
  return {"tiny", "small", "llama7b", "llama3_8b"};
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
  } else if (name == "llama3_8b") {
    // meta-llama/Llama-3.1-8B's config.json: 32 query heads share 8 KV heads, so D = 16 replicates each KV
    // head on 2 ranks.
    c.hidden_size = 4096;
    c.intermediate_size = 14336;
    c.num_hidden_layers = 32;
    c.num_attention_heads = 32;
    c.num_key_value_heads = 8;
    c.head_dim = 128;
    c.vocab_size = 128256;
    c.max_position_embeddings = 131072;
    c.rope_theta = 500000.0;
    c.rope_scaling.type = RopeType::llama3;
    c.rope_scaling.factor = 8.0;
    c.rope_scaling.low_freq_factor = 1.0;
    c.rope_scaling.high_freq_factor = 4.0;
    c.rope_scaling.original_max_position_embeddings = 8192;
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
