// Tiny models of every architecture switch and rope_scaling type, for the unit, equivalence and planner
// tests: hidden 48, 12 query heads of dim 4 (12 divides by 1-4), intermediate 96, a vocabulary of 61 (no
// D > 1 divides it: padding), a context of 64 positions. The context-extending rope types (linear, dynamic,
// yarn) get max_position_embeddings 16 and factor 4, so that sequences of 24-48 tokens run past 16
// positions (where dynamic RoPE recomputes its base). With 1 or 2 KV heads the parallel layouts replicate KV
// heads at D = 2-4 (model/params.h).
#pragma once

#include <string>
#include <vector>

#include "model/config.h"
#include "model/params.h"

namespace tsp::test {

struct ArchCase {
  std::string name;
  ModelConfig config;
};

inline ModelConfig arch_base_config(int64_t kv_heads, int64_t layers = 2, bool tied = false) {
  ModelConfig c;
  c.hidden_size = 48;
  c.intermediate_size = 96;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 12;
  c.num_key_value_heads = kv_heads;
  c.head_dim = 4;
  c.vocab_size = 61;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = tied;
  return c;
}

inline ModelConfig with_model_type(ModelConfig c, const std::string& type) {
  c.model_type = type;
  c.attention_qkv_bias = type == "qwen2";
  c.qk_norm = type == "qwen3";
  c.sliding_window = type == "mistral" ? 64 : 0;  // longer than every test sequence: exactly Llama
  return c;
}

inline ModelConfig with_rope(ModelConfig c, RopeType type) {
  RopeScaling& r = c.rope_scaling;
  r = RopeScaling{};
  r.type = type;
  switch (type) {
    case RopeType::standard:
      break;
    case RopeType::linear:
    case RopeType::dynamic:
      r.factor = 4.0;
      c.max_position_embeddings = 16;
      break;
    case RopeType::llama3:
      // head_dim 4 at theta 10000: wavelengths 2π (between 8/4 and 8/1: smoothed) and 628 (> 8: divided by
      // factor).
      r.factor = 8.0;
      r.low_freq_factor = 1.0;
      r.high_freq_factor = 4.0;
      r.original_max_position_embeddings = 8;
      break;
    case RopeType::yarn:
      r.factor = 4.0;
      r.original_max_position_embeddings = 16;
      c.max_position_embeddings = 16;
      // The ramp puts pair 0 at the original frequency and pair 1 at the interpolated one.
      r.beta_fast = 8;
      r.beta_slow = 0.5;
      break;
  }
  c.validate();
  return c;
}

// Every switch at least once, each with 1 or 2 KV heads (replicated at D > kv_heads).
inline std::vector<ArchCase> arch_cases() {
  return {
      {"qwen2_bias_kv1", with_model_type(arch_base_config(1), "qwen2")},
      {"qwen3_qknorm_kv2", with_model_type(arch_base_config(2), "qwen3")},
      {"qwen3_qknorm_kv1_tied_yarn",
       with_rope(with_model_type(arch_base_config(1, 2, true), "qwen3"), RopeType::yarn)},
      {"mistral_kv2_llama3", with_rope(with_model_type(arch_base_config(2), "mistral"), RopeType::llama3)},
      {"llama_kv1_linear", with_rope(arch_base_config(1), RopeType::linear)},
      {"llama_kv2_dynamic", with_rope(arch_base_config(2), RopeType::dynamic)},
  };
}

// Moves every 1-D tensor (norm weights, q/k norms, biases) off its initial value (1 or 0) by a draw that
// depends only on (seed, tensor name, index in the HF tensor), so that every layout holds the same model and
// the vector parameters' forward paths are exercised, not only their gradients.
template <class T>
void perturb_vectors(ModelParams<T>& p, uint64_t seed) {
  for (int b = 0; b < p.num_blocks(); ++b)
    for (const TensorView& v : p.blocks()[size_t(b)].views) {
      if (v.is_matrix()) continue;
      T* x = p.value(b).data() + v.offset;
      for (int64_t j = 0; j < v.cols; ++j)
        x[j] += T(0.2 * counter_normal(seed, name_hash(v.name), uint64_t(v.col_begin + j)));
    }
}

}  // namespace tsp::test
