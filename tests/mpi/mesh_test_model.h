// The model and the layouts the mesh tests (tp, sp, tpsp) run: heads, KV heads and the intermediate size
// split into 1-4 TP shards (24 heads, 12 KV heads, intermediate 96); a vocabulary of 61, which no T > 1
// divides, so vocabulary padding is exercised; S = 24 is a multiple of 2Σ·T for every layout below.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "parallel/registry.h"

namespace tsp::test {

inline ModelConfig mesh_test_config(bool tied, int64_t layers, int64_t heads = 24, int64_t kv_heads = 12) {
  ModelConfig c;
  c.hidden_size = 48;
  c.intermediate_size = 96;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = 4;
  c.vocab_size = 61;
  c.max_position_embeddings = 128;
  c.tie_word_embeddings = tied;
  c.validate();
  return c;
}

struct MeshLayoutCase {
  std::string strategy;
  int tp = 1, sp = 1;  // the mesh shape this case runs (T x Σ = ranks)
  bool sequence_parallel = false;
  std::string label() const {
    return strategy + " " + std::to_string(tp) + "x" + std::to_string(sp) +
           (sequence_parallel ? " +msp" : "");
  }
  StrategyOptions options() const {
    StrategyOptions o;
    if (strategy == "tpsp") {
      o.tp = tp;
      o.sp = sp;
    }
    o.sequence_parallel = sequence_parallel;
    return o;
  }
};

// Every layout the engine runs on `ranks` ranks: tp and tp --sequence-parallel, sp, and every T x Σ mesh
// with both axes > 1 (with and without Megatron-SP).
inline std::vector<MeshLayoutCase> mesh_layouts(int ranks) {
  std::vector<MeshLayoutCase> v = {{"tp", ranks, 1, false}, {"tp", ranks, 1, true}, {"sp", 1, ranks, false}};
  for (int t = 2; t < ranks; ++t)
    if (ranks % t == 0) {
      v.push_back({"tpsp", t, ranks / t, false});
      v.push_back({"tpsp", t, ranks / t, true});
    }
  return v;
}

}  // namespace tsp::test
