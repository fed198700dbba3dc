#include "model/architectures.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "core/check.h"
#include "model/config.h"
#include "model/json_fields.h"

namespace tsp {

namespace {

using json_fields::present;

bool is_qwen(const std::string& t) {
  return t == "qwen2" || t == "qwen3";
}

const char* hf_class(const std::string& t) {
  if (t == "mistral") return "MistralForCausalLM";
  if (t == "qwen2") return "Qwen2ForCausalLM";
  if (t == "qwen3") return "Qwen3ForCausalLM";
  return "LlamaForCausalLM";
}

// HF Qwen configs: layer i uses the sliding window iff use_sliding_window and i >= max_window_layers, unless
// layer_types says otherwise.
bool qwen_window_applies(const nlohmann::json& j) {
  if (present(j, "layer_types")) {
    const auto& lt = j.at("layer_types");
    TSP_REQUIRE(lt.is_array(), "config.json: layer_types must be a list, got {}", lt.dump());
    for (const auto& t : lt)
      if (t == "sliding_attention") return true;
    return false;
  }
  if (!present(j, "use_sliding_window") || !json_fields::get_bool(j, "use_sliding_window")) return false;
  const int64_t layers = json_fields::get_int(j, "num_hidden_layers");
  const int64_t first = present(j, "max_window_layers") ? json_fields::get_int(j, "max_window_layers") : 28;
  return first < layers;
}

}  // namespace

std::vector<std::string> supported_model_types() {
  return {"llama", "mistral", "qwen2", "qwen3"};
}

int64_t default_num_key_value_heads(const std::string& model_type, int64_t num_attention_heads) {
  if (model_type == "mistral") return 8;
  if (is_qwen(model_type)) return 32;
  return num_attention_heads;
}

int64_t default_head_dim(const std::string& model_type) {
  return model_type == "qwen3" ? 128 : 0;
}

void read_architecture(const nlohmann::json& j, ModelConfig& c) {
  c.model_type = present(j, "model_type") ? json_fields::get_string(j, "model_type") : "llama";
  const auto types = supported_model_types();
  TSP_REQUIRE(std::find(types.begin(), types.end(), c.model_type) != types.end(),
              "config.json: model_type \"{}\" is not supported (allowed: {})", c.model_type,
              fmt::join(types, ", "));
  const std::string& t = c.model_type;
  c.attention_qkv_bias = t == "qwen2";
  c.qk_norm = t == "qwen3";
  if ((t == "llama" || t == "qwen3") && present(j, "attention_bias")) {
    TSP_REQUIRE(
        !json_fields::get_bool(j, "attention_bias"),
        "config.json: attention_bias = true is not supported for model_type \"{}\" (it puts a bias on "
        "q_proj, k_proj, v_proj and o_proj; only Qwen2's q/k/v bias is implemented)",
        t);
  }
  if (present(j, "mlp_bias")) {
    TSP_REQUIRE(!json_fields::get_bool(j, "mlp_bias"),
                "config.json: mlp_bias = true is not supported (the MLP projections have no bias)");
  }
  c.sliding_window = 0;
  if (t == "mistral") {
    // HF's MistralConfig default is a 4096-token window; an explicit null means none.
    if (!j.contains("sliding_window")) {
      c.sliding_window = 4096;
    } else if (!j.at("sliding_window").is_null()) {
      c.sliding_window = json_fields::get_int(j, "sliding_window");
      TSP_REQUIRE(c.sliding_window > 0, "config.json: sliding_window must be positive or null, got {}",
                  c.sliding_window);
    }
  }
  if (is_qwen(t)) {
    TSP_REQUIRE(!qwen_window_applies(j),
                "config.json: a sliding window on some layers (use_sliding_window with max_window_layers < "
                "num_hidden_layers, or layer_types with \"sliding_attention\") is not supported; every layer "
                "must attend to the whole context");
  }
}

void write_architecture(const ModelConfig& c, nlohmann::json& j) {
  j["architectures"] = {hf_class(c.model_type)};
  j["model_type"] = c.model_type;
  if (c.model_type == "mistral") {
    j["sliding_window"] = c.sliding_window > 0 ? nlohmann::json(c.sliding_window) : nlohmann::json(nullptr);
  } else if (is_qwen(c.model_type)) {
    j["use_sliding_window"] = false;
  }
  if (c.model_type == "llama" || c.model_type == "qwen3") j["attention_bias"] = false;
  if (c.model_type == "llama") j["mlp_bias"] = false;
}

void validate_architecture(const ModelConfig& c) {
  const auto types = supported_model_types();
  TSP_REQUIRE(std::find(types.begin(), types.end(), c.model_type) != types.end(),
              "model config: model_type \"{}\" is not supported (allowed: {})", c.model_type,
              fmt::join(types, ", "));
  TSP_REQUIRE(c.attention_qkv_bias == (c.model_type == "qwen2"),
              "model config: q/k/v projection biases are Qwen2's (model_type \"qwen2\"), but model_type is "
              "\"{}\" with attention_qkv_bias = {}",
              c.model_type, c.attention_qkv_bias);
  TSP_REQUIRE(c.qk_norm == (c.model_type == "qwen3"),
              "model config: per-head q/k norms are Qwen3's (model_type \"qwen3\"), but model_type is \"{}\" "
              "with qk_norm = {}",
              c.model_type, c.qk_norm);
  TSP_REQUIRE(c.sliding_window >= 0 && (c.sliding_window == 0 || c.model_type == "mistral"),
              "model config: sliding_window {} is only meaningful for model_type \"mistral\" (got \"{}\")",
              c.sliding_window, c.model_type);
}

}  // namespace tsp
