// The Hugging Face model types that load as this one decoder (RMSNorm, RoPE, grouped-query attention, SwiGLU
// MLP) and the small differences each brings, with HF's defaults for the fields a config.json may omit:
//
//   model_type  HF class            differences from Llama                       defaults that differ
//   llama       LlamaForCausalLM    -                                            num_key_value_heads = heads
//   mistral     MistralForCausalLM  sliding_window (null: none) limits attention  num_key_value_heads 8,
//                                   to that many keys: runs longer than it are    sliding_window 4096
//                                   refused, shorter ones are exactly Llama's
//   qwen2       Qwen2ForCausalLM    bias on the q, k and v projections            num_key_value_heads 32
//   qwen3       Qwen3ForCausalLM    RMSNorm over head_dim of every q and k head   num_key_value_heads 32,
//                                   (q_norm, k_norm), before RoPE                 head_dim 128
//
// Refused with an error naming the field: attention_bias = true for llama and qwen3 (it also puts a bias on
// o_proj), mlp_bias, a Qwen sliding window that applies to some layer (use_sliding_window with a layer at or
// past max_window_layers, or layer_types naming "sliding_attention"), any other model_type.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace tsp {

struct ModelConfig;

std::vector<std::string> supported_model_types();

// Reads model_type (default "llama") and its switches into c; called by ModelConfig::from_json before the
// sizes, so that the defaults above apply to the fields that follow.
void read_architecture(const nlohmann::json& j, ModelConfig& c);
// HF's default num_key_value_heads and head_dim for c.model_type (0: derived the Llama way).
int64_t default_num_key_value_heads(const std::string& model_type, int64_t num_attention_heads);
int64_t default_head_dim(const std::string& model_type);

// Writes the fields that make transformers build exactly this architecture (architectures, model_type and
// the switches above).
void write_architecture(const ModelConfig& c, nlohmann::json& j);

// UsageError unless c's switches are those of its model_type (every config we write is one HF reads back as
// the same model).
void validate_architecture(const ModelConfig& c);

}  // namespace tsp
