// mpi-ranks: 1 2
// Training on a tokenized dataset through run_training: an interrupted and resumed run gives the same losses
// (training and validation) and the same weights, bit for bit, as an uninterrupted one; the stream runs
// through several epochs with the sequence-length warm-up changing the shape. On 1 rank the layout is
// single; on 2, tsp.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "data/packed_dataset.h"
#include "data/token_dataset.h"
#include "model/checkpoint.h"
#include "scratch_helpers.h"
#include "train/trainer.h"

namespace tsp {
namespace {

namespace fs = std::filesystem;

// 20 documents of 20-60 tokens drawn from a few repeated phrases (learnable), EOS = 255.
void write_dataset(const fs::path& dir) {
  fs::create_directories(dir);
  std::mt19937 rng(42);
  TokenDatasetWriter w(dir.string(), 256);
  for (int d = 0; d < 20; ++d) {
    std::vector<int32_t> t;
    const int n = 20 + int(rng() % 40);
    while (int(t.size()) < n) {
      const int32_t phrase = int32_t(rng() % 8);
      for (int k = 0; k < 5; ++k) t.push_back(phrase * 16 + k);
    }
    t.push_back(255);
    w.add_document(t);
  }
  w.finish();
  std::ofstream(dir / "manifest.json") << nlohmann::json({{"format", kDatasetFormat},
                                                          {"version", kDatasetVersion},
                                                          {"dtype", "uint16"},
                                                          {"vocab_size", 256},
                                                          {"eos_id", 255},
                                                          {"documents", w.documents()},
                                                          {"tokens", w.tokens()}})
                                              .dump();
}

TEST(DatasetTrain, ResumeIsBitExactWithValidation) {
  Communicator world = Communicator::world();
  const fs::path dir = scratch_dir(world, "tsp_dataset_train", "resume");
  if (world.rank() == 0) write_dataset(dir / "data");
  world.barrier();

  TrainOptions o;
  o.model = preset_config("tiny");
  o.strategy = world.size() == 1 ? "single" : "tsp";
  o.dataset = (dir / "data").string();
  o.val_fraction = 0.35;
  o.eval_every = 2;
  o.eval_batches = 1;
  o.seq_len = 128;
  o.batch = 2;
  o.seq_len_start = 64;
  o.seq_len_warmup = 4;  // shapes 64 x 4 ... 128 x 2: the data position is not a multiple of one shape
  o.steps = 8;
  o.warmup = 2;
  o.progress = false;
  o.json = true;
  TrainOptions straight = o;
  straight.checkpoint_dir = (dir / "straight").string();
  const nlohmann::json a = run_training(straight, world);

  TrainOptions first = o;
  first.checkpoint_dir = (dir / "split").string();
  first.save_every = 3;
  run_training(first, world);
  TrainOptions second = o;
  second.checkpoint_dir = (dir / "resumed").string();
  second.resume = (dir / "split" / "step-000003").string();
  const nlohmann::json b = run_training(second, world);

  // 8 steps of 256 tokens through ~650 training tokens: the stream crosses epoch boundaries.
  EXPECT_GT(8 * 256, 2 * PackedDataset(o.dataset, o.seed + 1, o.val_fraction).train_tokens());
  EXPECT_EQ(a["final_loss"].get<double>(), b["final_loss"].get<double>());
  ASSERT_TRUE(a.contains("val_loss") && b.contains("val_loss"));
  EXPECT_EQ(a["val_loss"].get<double>(), b["val_loss"].get<double>());
  EXPECT_LT(a["val_loss"].get<double>(), std::log(256.0));  // it learned something from the phrases
  if (world.rank() == 0) {
    for (const char* f : {"model.safetensors", "optimizer.safetensors", "trainer_state.json"})
      EXPECT_EQ(file_bytes(dir / "straight" / "step-000008" / f),
                file_bytes(dir / "resumed" / "step-000008" / f))
          << f << " differs between 8 straight steps and 3 + resume + 5";
    fs::remove_all(dir);
  }
  world.barrier();
}

}  // namespace
}  // namespace tsp
