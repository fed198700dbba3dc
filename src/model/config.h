// Model configuration with Hugging Face config.json field names (LlamaConfig), plus built-in presets.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tsp {

struct ModelConfig {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_attention_heads unless config.json sets head_dim
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;

  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  // Total parameters (embedding, layers, final norm, and the LM head unless tied).
  int64_t parameter_count() const;

  // Throws UsageError naming the field and what is allowed (positive sizes, heads % kv_heads == 0, ...).
  void validate() const;

  // HF LlamaConfig JSON. from_json rejects what the model does not implement (rope_scaling, attention_bias,
  // mlp_bias, hidden_act other than silu) with an error naming the field.
  static ModelConfig from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

// Built-in presets: "tiny" (tests), "small" (demo, benchmarks), "llama7b" (the paper's 7B-class model,
// planning only).
ModelConfig preset_config(std::string_view name);
std::vector<std::string> preset_names();

// config.json on disk.
ModelConfig load_config(const std::string& path);
void save_config(const ModelConfig& c, const std::string& path);  // atomic: temp file + rename

}  // namespace tsp
