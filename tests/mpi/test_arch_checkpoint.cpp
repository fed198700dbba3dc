// mpi-ranks: 1 2 4
// Checkpoints of the new architectures with replicated KV heads: after a training step under tsp every
// holder of a KV head keeps a bit-identical copy (the gradient was summed over the holders); the checkpoint
// holds each HF tensor once with its HF name and shape (q_proj.bias, q_norm.weight, a 1-KV-head k_proj), it
// loads as the single-device model that took the same step, and loads back under tp (another layout that
// replicates) to the same shards.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "../arch_test_configs.h"
#include "equivalence_helpers.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "parallel/registry.h"
#include "scratch_helpers.h"

namespace tsp {
namespace {

namespace fs = std::filesystem;

// One training step (forward, backward, AdamW) of `layout` from the perturbed seeded model.
void one_step(Strategy<double>& layout, ModelParams<double>& p, AdamW<double>& opt) {
  const ModelConfig& c = p.config();
  p.init(99);
  test::perturb_vectors(p, 99);
  Transformer<double> model(p, layout);
  std::vector<int32_t> tokens, targets;
  test::make_batch(c.vocab_size, 2, 24, 5, tokens, targets);
  p.zero_grads();
  model.forward(tokens.data(), targets.data(), 2, 24);
  model.backward();
  opt.step(layout, 1e-2, 1.0);
}

TEST(ArchCheckpoint, ReplicatedKvHeadsStayIdenticalAndAreSavedOnce) {
  Communicator world = Communicator::world();
  fs::path dir = scratch_dir(world, "tsp", "arch_ckpt_qwen");
  for (const char* type : {"qwen2", "qwen3"}) {
    SCOPED_TRACE(type);
    const ModelConfig c = test::with_model_type(test::arch_base_config(1), type);
    auto tsp = make_strategy<double>("tsp", world, {});
    ModelParams<double> p(c, tsp->shard_spec(c));
    AdamW<double> opt(p, kernels::AdamWHyper{}, tsp.get());
    one_step(*tsp, p, opt);

    // Every holder of the (one) KV head holds the same bits after the step.
    const int64_t k0 = p.attn_offsets().k;
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      const Buffer<double>& a = p.value(p.attn_block(int(l)));
      const int64_t n = a.size() - k0;
      std::vector<double> first(a.data() + k0, a.data() + k0 + n);
      world.broadcast("test.kv", first.data(), n, 0);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(a[k0 + i], first[size_t(i)]) << "layer " << l << " element " << i;
    }

    const std::string ck = (dir / type).string();
    save_checkpoint<double>(ck, p, &opt, nullptr, tsp->model_comm());

    // The file: HF names and shapes, each tensor once.
    SafetensorsReader r((fs::path(ck) / "model.safetensors").string());
    std::vector<double> k(size_t(c.kv_dim() * c.hidden_size));
    r.read("model.layers.0.self_attn.k_proj.weight", {c.kv_dim(), c.hidden_size}, k.data());
    if (c.attention_qkv_bias) {
      std::vector<double> bq(size_t(c.q_dim()));
      r.read("model.layers.1.self_attn.q_proj.bias", {c.q_dim()}, bq.data());
    } else {
      std::vector<double> qn(size_t(c.head_dim));
      r.read("model.layers.1.self_attn.q_norm.weight", {c.head_dim}, qn.data());
      r.read("model.layers.1.self_attn.k_norm.weight", {c.head_dim}, qn.data());
    }

    // It is the single-device model after the same step.
    SingleStrategy<double> single;
    ModelParams<double> ref(c, ShardSpec::full(c));
    AdamW<double> ref_opt(ref, kernels::AdamWHyper{});
    one_step(single, ref, ref_opt);
    ModelParams<double> loaded(c, ShardSpec::full(c));
    load_checkpoint<double>(ck, loaded, nullptr, nullptr);
    test::expect_blocks_match(loaded, ref, false, "checkpoint vs single-device step");

    // And loads back under tp, which replicates the KV head the same way: identical shards.
    if (world.size() > 1) {
      auto tp = make_strategy<double>("tp", world, {});
      ModelParams<double> back(c, tp->shard_spec(c));
      load_checkpoint<double>(ck, back, nullptr, nullptr);
      for (int b = 0; b < p.num_blocks(); ++b)
        for (int64_t i = 0; i < p.value(b).size(); ++i) ASSERT_EQ(back.value(b)[i], p.value(b)[i]) << b;
    }
  }
  world.barrier();
  if (world.rank() == 0) fs::remove_all(dir);
  world.barrier();
}

}  // namespace
}  // namespace tsp
