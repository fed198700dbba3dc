// The model the TSP communication and memory tests measure: sizes that split into 1-4 shards (24 heads, 12 KV
// heads, intermediate 96) and a vocabulary of 61, which is not a multiple of any D > 1, so padding is
// counted.
#pragma once

#include <cstdint>

#include "model/config.h"

namespace tsp::test {

inline ModelConfig tsp_test_config(bool tied, int64_t layers) {
  ModelConfig c;
  c.hidden_size = 48;
  c.intermediate_size = 96;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 24;
  c.num_key_value_heads = 12;
  c.head_dim = 4;
  c.vocab_size = 61;
  c.max_position_embeddings = 128;
  c.tie_word_embeddings = tied;
  return c;
}

}  // namespace tsp::test
