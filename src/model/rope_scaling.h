// RoPE frequencies exactly as Hugging Face transformers computes them (modeling_rope_utils.py,
// `_compute_*_parameters`): HF's "default" and the rope_scaling types linear, dynamic (NTK), llama3 and yarn.
// This is the one place where frequencies are derived from a config; every layout (and decode) gets a
// kernels::RopeTable from here (ModelConfig::rope_table) and passes it to the RoPE kernel.
//
// The sequence length a table is built for matters for "dynamic" only. HF recomputes dynamic frequencies for
// seq_len = max(position_ids) + 1 of the current forward whenever that exceeds max_position_embeddings (and
// uses the unscaled ones below it). rope_table(seq_len) is that rule as a pure function of seq_len:
//   - training, eval, check and prefill call it with the step's sequence length S (positions 0..S-1, so
//     S = max position + 1; a batch right-padded to S gets the frequencies of S, as HF's for a padded batch);
//   - a decode step that appends the token at position P should call it with P + 1 for that token's q and
//     k: that is what HF does with a KV cache (its cached keys keep the rotation they were computed with;
//     HF's dynamic RoPE is known to be inconsistent across cache growth for that reason).
// Every other type ignores seq_len.
//
// Computed in double; HF computes inv_freq and the angles in float32, so the two differ by float32 round-off
// of the frequencies, not by formula.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "kernels/rope.h"

namespace tsp {

enum class RopeType { standard, linear, dynamic, llama3, yarn };

struct RopeScaling {
  RopeType type = RopeType::standard;  // HF "default": no rope_scaling
  double factor = 1.0;                 // linear, dynamic, llama3, yarn (required, >= 1)
  // llama3 (all required)
  double low_freq_factor = 0, high_freq_factor = 0;
  // llama3 (required) and yarn (optional: 0 = max_position_embeddings)
  int64_t original_max_position_embeddings = 0;
  // yarn (optional)
  std::optional<double> attention_factor;  // default: derived from factor (and mscale / mscale_all_dim)
  double beta_fast = 32, beta_slow = 1;    // HF: `get(...) or 32`, `or 1`
  std::optional<double> mscale, mscale_all_dim;
  bool truncate = true;

  bool operator==(const RopeScaling&) const = default;
  std::string type_name() const;  // HF's rope_type: "default", "linear", "dynamic", "llama3", "yarn"

  // The rope_scaling object of config.json (HF's legacy key, also read from v5's rope_parameters): rope_type
  // (or the older "type") picks the computation; an unknown type, a missing or invalid parameter is a
  // UsageError naming the field and what is allowed. Keys the type does not use are ignored, as HF does.
  static RopeScaling from_json(const nlohmann::json& j);
  // null for the default type, else the object HF reads back to the same computation.
  nlohmann::json to_json() const;
  // The longest sequence the scaling is meant for (vLLM's derivation of max_model_len):
  // max_position_embeddings for default and llama3 (whose max_position_embeddings is already the extended
  // context); times factor for linear and dynamic; original_max_position_embeddings (else
  // max_position_embeddings) times factor for yarn; never less than max_position_embeddings.
  int64_t context_length(int64_t max_position_embeddings) const;
};

// Inverse frequencies [head_dim / 2] and attention factor of one forward over positions < seq_len.
kernels::RopeTable rope_frequencies(const RopeScaling& s, double rope_theta, int64_t head_dim,
                                    int64_t max_position_embeddings, int64_t seq_len);

}  // namespace tsp
