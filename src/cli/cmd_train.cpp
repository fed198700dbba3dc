// tsp train: the training job (see train/trainer.h).
#include "cli/common.h"
#include "model/checkpoint.h"
#include "train/progress.h"
#include "train/trainer.h"

namespace tsp::cli {

void add_train_command(CLI::App& root, std::vector<Command>& cmds) {
  auto* app = root.add_subcommand("train", "train a model (default: the built-in long-context recall task)");
  auto src = std::make_shared<ModelSource>();
  auto o = std::make_shared<TrainOptions>();
  add_model_options(app, *src);
  add_layout_options(app, o->strategy, o->layout);
  add_dtype_options(app, o->dtype, /*with_float64=*/true, /*training=*/true);
  app->add_option("--seq-len", o->seq_len, "tokens per sequence")->capture_default_str();
  app->add_option("--batch", o->batch, "sequences per step")->capture_default_str();
  app->add_option("--steps", o->steps, "optimizer steps")->capture_default_str();
  app->add_option("--seq-len-warmup", o->seq_len_warmup,
                  "grow the sequence length from --seq-len-start to --seq-len over this many steps, below "
                  "--steps (0: off; default: 70% of --steps)");
  app->add_option("--seq-len-start", o->seq_len_start, "first sequence length of the warm-up")
      ->capture_default_str();
  app->add_option("--lr", o->lr, "peak learning rate")->capture_default_str();
  app->add_option("--min-lr", o->min_lr, "final learning rate of the cosine schedule")->capture_default_str();
  app->add_option("--warmup", o->warmup, "linear warm-up steps")->capture_default_str();
  app->add_option("--weight-decay", o->weight_decay, "AdamW decoupled weight decay")->capture_default_str();
  app->add_option("--grad-clip", o->grad_clip, "global gradient-norm clip (0 = off)")->capture_default_str();
  app->add_option("--seed", o->seed, "seed of the model init and the data stream")->capture_default_str();
  app->add_option("--data", o->data,
                  "train on a text file instead of the recall task (tokens: --tokenizer, else the resumed "
                  "checkpoint's tokenizer, else bytes)");
  app->add_option(
      "--tokenizer", o->tokenizer,
      "tokenizer directory for --data (tokenizer.json or tokenizer.model; copied into checkpoints)");
  app->add_option("--dataset", o->dataset, "train on a tokenized dataset (tsp tokenize --output DIR)");
  app->add_option("--val-fraction", o->val_fraction,
                  "documents of --dataset held out for the validation loss")
      ->capture_default_str();
  app->add_option("--eval-every", o->eval_every, "validation loss every N steps (0: at the end only)")
      ->capture_default_str();
  app->add_option("--recall-keys", o->recall.num_keys, "recall task: key vocabulary")->capture_default_str();
  app->add_option("--recall-values", o->recall.num_values,
                  "recall task: value vocabulary (chance = 1/values)")
      ->capture_default_str();
  app->add_option("--recall-pairs", o->recall.pairs, "recall task: key-value pairs per sequence")
      ->capture_default_str();
  app->add_option("--recall-queries", o->recall.queries, "recall task: queries per sequence")
      ->capture_default_str();
  app->add_option("--checkpoint-dir", o->checkpoint_dir, "write checkpoints here (step-N/ and 'latest')");
  app->add_option("--save-every", o->save_every, "checkpoint every N steps (0: only at the end)");
  app->add_option(
         "--max-shard-size", o->max_shard_size,
         "split checkpoint files above this size into HF shards with an index (5GB, 500MB, 2GiB, bytes)")
      ->capture_default_str();
  app->add_option(
      "--save-dtype", o->save_dtype,
      "format of the checkpoints' model.safetensors: bf16 (what HF users publish), fp16, fp32, fp64 "
      "(default: the run's --dtype); the exact weights stay in optimizer.safetensors for resuming");
  // Reliability options (docs/reliability.md).
  app->add_option(
      "--resume", o->resume,
      "'auto' (the newest complete checkpoint of --checkpoint-dir, if any) or a checkpoint directory "
      "(or a --checkpoint-dir, through its 'latest')");
  app->add_flag(
      "--overwrite", o->overwrite,
      "train into a --checkpoint-dir that already holds checkpoints (they are deleted once this run's "
      "first checkpoint is complete)");
  app->add_option("--keep-checkpoints", o->keep_checkpoints, "keep only the K newest checkpoints (0: all)")
      ->capture_default_str();
  app->add_option("--init-from", o->init_from,
                  "start from the weights of a checkpoint or HF directory, with a fresh optimizer at step 0");
  app->add_option("--comm-timeout", o->comm_timeout,
                  "abort the job when a communication call blocks longer than this many seconds (0: off)")
      ->capture_default_str();
  app->add_option("--skip-nonfinite", o->skip_nonfinite,
                  "skip up to N steps with a non-finite loss or gradient (no update) before stopping")
      ->capture_default_str();
  app->add_option("--eval-batches", o->eval_batches,
                  "held-out batches for the final recall accuracy, or for the --dataset validation loss")
      ->capture_default_str();
  app->add_option("--eval-seq-len", o->eval_seq_len,
                  "sequence length of the held-out recall batches (0: --seq-len)")
      ->capture_default_str();
  app->add_option("--trace", o->trace,
                  "write a Chrome-trace timeline: FILE on one rank; on several, one per rank with .rank<r> "
                  "before .json (out.json -> out.rank0.json, out.rank1.json, ...)");
  app->add_flag("--json", o->json, "print one JSON document on stdout (the step log goes to stderr)");
  app->add_option("--log-every", o->log_every, "a step line every N steps (the first and last always)")
      ->capture_default_str();
  auto progress = std::make_shared<std::string>("auto");
  app->add_option(
         "--progress", *progress,
         "progress bar: auto (only on an interactive terminal, never under mpirun/srun or TERM=dumb), "
         "always, never")
      ->capture_default_str();
  auto no_progress = std::make_shared<bool>(false);
  app->add_flag("--no-progress", *no_progress, "no progress bar (= --progress never)");
  cmds.push_back({app, [src, o, progress, no_progress](Communicator& world) {
                    TrainOptions opts = *o;
                    opts.progress = progress_bar_wanted(*no_progress ? "never" : *progress);
                    if (!opts.data.empty()) require_input_file("--data", opts.data, "a text file");
                    opts.model = src->load();
                    // Without --preset/--config, the checkpoint resumed or started from says what the model
                    // is.
                    opts.model_from_checkpoint = !src->given();
                    return run_training(opts, world).value("exit_status", 0);
                  }});
}

}  // namespace tsp::cli
