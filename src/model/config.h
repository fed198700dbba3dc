// Model configuration with Hugging Face config.json field names (LlamaConfig and the model types that load
// as the same decoder: model/architectures.h), plus built-in presets.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/rope.h"
#include "model/rope_scaling.h"

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
  RopeScaling rope_scaling;  // HF's rope_scaling (type "default": none)
  bool tie_word_embeddings = false;
  // The architecture (model/architectures.h): HF model_type and what it switches on.
  std::string model_type = "llama";  // "llama", "mistral", "qwen2", "qwen3"
  bool attention_qkv_bias = false;   // qwen2: bias on the q, k and v projections (sharded with their heads)
  bool qk_norm = false;              // qwen3: RMSNorm over head_dim of every q and k head, before RoPE
  int64_t sliding_window = 0;        // mistral: attention window in tokens (0: none); longer runs are refused

  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  // Total parameters (embedding, layers, final norm, and the LM head unless tied).
  int64_t parameter_count() const;

  // The RoPE frequencies of a forward over positions < seq_len (model/rope_scaling.h: only "dynamic"
  // depends on seq_len).
  kernels::RopeTable rope_table(int64_t seq_len) const;
  // The longest sequence this model runs exactly as HF computes it: the context its rope_scaling is meant
  // for (RopeScaling::context_length), and never past a sliding_window (which would limit attention: not
  // implemented, so such runs are refused rather than computed differently).
  int64_t max_sequence_length() const;
  // UsageError unless 1 <= seq_len <= max_sequence_length(), naming what limits it. `what` names the
  // quantity for the message (e.g. "--seq-len 9000", "a sequence of 9000 tokens").
  void require_sequence_length(int64_t seq_len, const std::string& what) const;

  // Throws UsageError naming the field and what is allowed (positive sizes, heads % kv_heads == 0, ...).
  void validate() const;

  // HF config.json. from_json rejects what the model does not implement (an unknown model_type, attention or
  // MLP biases other than Qwen2's, hidden_act other than silu, partial rotary embeddings, a rope_scaling type
  // it does not know, a Qwen sliding window) with an error naming the field.
  static ModelConfig from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

// Built-in presets: "tiny" (tests), "small" (demo, benchmarks), "llama7b" (the paper's 7B-class model,
// planning only), "llama3_8b" (Llama-3.1-8B's shape: 8 KV heads, llama3 rope scaling; planning only).
ModelConfig preset_config(std::string_view name);
std::vector<std::string> preset_names();

// config.json on disk.
ModelConfig load_config(const std::string& path);
void save_config(const ModelConfig& c, const std::string& path);  // atomic: temp file + rename

}  // namespace tsp
