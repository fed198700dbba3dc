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
  app->add_option("--dtype", o->dtype, "float32 or float64")->capture_default_str();
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
  app->add_option("--data", o->data, "train on a text file (byte-level tokens) instead of the recall task");
  app->add_option("--recall-keys", o->recall.num_keys, "recall task: key vocabulary")->capture_default_str();
  app->add_option("--recall-values", o->recall.num_values,
                  "recall task: value vocabulary (chance = 1/values)")
      ->capture_default_str();
  app->add_option("--recall-pairs", o->recall.pairs, "recall task: key-value pairs per sequence")
      ->capture_default_str();
  app->add_option("--recall-queries", o->recall.queries, "recall task: queries per sequence")
      ->capture_default_str();
  app->add_option("--checkpoint-dir", o->checkpoint_dir, "write checkpoints here (step_N/ and 'latest')");
  app->add_option("--save-every", o->save_every, "checkpoint every N steps (0: only at the end)");
  app->add_option("--resume", o->resume, "resume from a checkpoint directory (or a --checkpoint-dir)");
  app->add_option("--eval-batches", o->eval_batches, "held-out batches for the final recall accuracy")
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
                    if (!opts.data.empty())
                      require_input_file("--data", opts.data, "a text file (byte-level tokens)");
                    if (!opts.resume.empty() && !src->given())
                      opts.model = checkpoint_config(opts.resume);  // the checkpoint says what the model is
                    else
                      opts.model = src->load();
                    run_training(opts, world);
                    return 0;
                  }});
}

}  // namespace tsp::cli
