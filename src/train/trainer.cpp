#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "comm/comm_report.h"
#include "comm/fault_injection.h"
#include "comm/watchdog.h"
#include "core/check.h"
#include "core/exit_status.h"
#include "core/memory.h"
#include "core/precision.h"
#include "core/run_dtype.h"
#include "core/threading.h"
#include "core/trace.h"
#include "kernels/matmul_precision.h"
#include "kernels/onednn_matmul.h"
#include "kernels/product_paths.h"
#include "model/checkpoint.h"
#include "model/params.h"
#include "model/transformer.h"
#include "parallel/registry.h"
#include "train/checkpoint_manager.h"
#include "train/data.h"
#include "train/nonfinite.h"
#include "train/optimizer.h"
#include "train/progress.h"
#include "train/resume.h"
#include "train/stop_signals.h"
#include "train/train_data.h"
#include "train/validation.h"

namespace tsp {

namespace {

double mib(int64_t bytes) {
  return double(bytes) / (1024.0 * 1024.0);
}

nlohmann::json memory_json(const MemStats& m) {
  nlohmann::json j;
  for (int c = 0; c < kMemCategories; ++c) j[std::string(mem_name(Mem(c)))] = m.peak[size_t(c)];
  j["total"] = m.peak_total;
  j["vmhwm"] = vm_hwm_bytes();
  return j;
}

// The default warm-up keeps the demo's proportion (700 of 1000 steps) whatever the run's length.
int64_t auto_seq_len_warmup(int64_t steps) {
  return steps * 7 / 10;
}

// The held-out recall batches run at --eval-seq-len: refused before training, under that option's name.
template <class T>
void validate_eval_seq_len(const TrainOptions& o, const ModelConfig& c, const Strategy<T>& strategy,
                           int ranks) {
  const int64_t es = o.eval_seq_len, m = strategy.seq_len_multiple();
  const int64_t below = es / m * m, above = below + m;
  TSP_REQUIRE(
      es % m == 0,
      "--eval-seq-len {} does not work with --strategy {} on {} rank{}: held-out sequences, like training "
      "ones, must be a multiple of {}; {}",
      es, o.strategy, ranks, ranks == 1 ? "" : "s", m,
      below > 0 ? fmt::format("nearest valid lengths: {} or {}", below, above)
                : fmt::format("the smallest valid length is {}", m));
  TSP_REQUIRE(es <= c.max_position_embeddings, "--eval-seq-len {} exceeds max_position_embeddings {}", es,
              c.max_position_embeddings);
  TSP_REQUIRE(
      es >= RecallTask::min_seq_len(o.recall),
      "--eval-seq-len {} is too short for the recall task with {} pairs and {} queries: the minimum is {}",
      es, o.recall.pairs, o.recall.queries, RecallTask::min_seq_len(o.recall));
  strategy.validate(c, o.batch, es);
}

template <class T>
nlohmann::json train_impl(const TrainOptions& o, Communicator& world) {
  const bool lead = world.rank() == 0;
  // Before any step: the checkpoint directory, where the run starts, the data it trains on
  // (docs/reliability.md).
  fault_init();
  Watchdog watchdog(world, o.comm_timeout);
  std::unique_ptr<CheckpointManager> ckpt;
  if (!o.checkpoint_dir.empty())
    ckpt = std::make_unique<CheckpointManager>(o.checkpoint_dir, o.keep_checkpoints, o.overwrite, world);
  TSP_REQUIRE(
      o.resume.empty() || o.init_from.empty(),
      "--resume continues a run and --init-from starts a new one from a checkpoint's weights: give one");
  const ResumePoint from = find_resume_point(o.resume, ckpt.get(), world);
  if (ckpt) ckpt->admit(from.dir.empty() ? -1 : from.state.step);
  const std::string init_dir = o.init_from.empty() ? "" : resolve_checkpoint_dir(o.init_from);
  ModelConfig c = o.model;
  if (o.model_from_checkpoint && !(from.dir.empty() && init_dir.empty()))
    c = checkpoint_config(from.dir.empty() ? init_dir : from.dir);  // the checkpoint says what the model is
  const std::string data_path = from.dir.empty() ? o.data : data_for_resume(o, from.state, from.dir, lead);
  c.validate();
  TSP_REQUIRE(o.steps > 0, "--steps must be positive, got {}", o.steps);
  TSP_REQUIRE(o.eval_batches >= 0, "--eval-batches must be >= 0, got {}", o.eval_batches);
  TSP_REQUIRE(o.lr > 0 && o.min_lr >= 0 && o.min_lr <= o.lr,
              "need 0 <= --min-lr <= --lr and --lr > 0 (got {} and {})", o.min_lr, o.lr);
  TSP_REQUIRE(o.log_every >= 1, "--log-every must be >= 1 (a step line every N steps), got {}", o.log_every);
  TSP_REQUIRE(o.eval_seq_len >= 0, "--eval-seq-len must be >= 0 (0: --seq-len), got {}", o.eval_seq_len);
  TSP_REQUIRE(
      o.eval_seq_len == 0 || (o.data.empty() && o.dataset.empty()),
      "--eval-seq-len sets the length of the held-out recall batches, and training on --data/--dataset {} "
      "has none (the built-in recall task only; the dataset's validation batches are --seq-len long)",
      o.data.empty() ? o.dataset : o.data);
  TSP_REQUIRE(o.seq_len_warmup >= -1, "--seq-len-warmup must be >= 0 (0: off), got {}", o.seq_len_warmup);
  // A warm-up as long as the run never trains at --seq-len, yet the held-out recall is measured there.
  TSP_REQUIRE(
      o.seq_len_warmup < o.steps || o.seq_len_warmup == 0,
      "--seq-len-warmup {} is not below --steps {}: the run would end before the sequence length "
      "reaches --seq-len {}; give a warm-up below {} steps, or leave --seq-len-warmup out to scale it "
      "to 70% of the run ({} steps)",
      o.seq_len_warmup, o.steps, o.seq_len, o.steps, auto_seq_len_warmup(o.steps));
  const int64_t seq_len_warmup = effective_seq_len_warmup(o);
  CheckpointWriteOptions ckpt_format;
  ckpt_format.max_shard_bytes = parse_shard_size(o.max_shard_size);
  // A bf16 run writes what it computes with, bf16 (the fp32 master stays in optimizer.safetensors).
  if (!o.save_dtype.empty() || o.dtype == "bf16")
    ckpt_format.weight_dtype = parse_save_dtype(o.save_dtype.empty() ? o.dtype : o.save_dtype);
  if (!o.trace.empty()) trace_enable(world.rank());

  if (data_path.empty() && o.dataset.empty())
    TSP_REQUIRE(
        o.seq_len >= RecallTask::min_seq_len(o.recall),
        "--seq-len {} is too short for the recall task with {} pairs and {} queries: the minimum is {}",
        o.seq_len, o.recall.pairs, o.recall.queries, RecallTask::min_seq_len(o.recall));
  // The data source: what the resumed checkpoint trained on (data_for_resume) unless given, through its
  // tokenizer.
  TrainOptions data_opts = o;
  data_opts.data = data_path;
  data_opts.resume = from.dir;
  TrainData train_data = make_train_data(data_opts);
  std::unique_ptr<DataSource>& data = train_data.source;
  RecallTask* recall = train_data.recall;
  const bool validate = data->validation_batches(o.batch, o.seq_len) > 0 && o.eval_batches > 0;
  TSP_REQUIRE(o.val_fraction == 0 || validate,
              "--val-fraction {} holds out too few tokens for one validation batch of {} x {} tokens ({})",
              o.val_fraction, o.batch, o.seq_len + 1, data->describe());
  TSP_REQUIRE(c.vocab_size >= data->vocab_needed(),
              "the data ({}) needs vocab_size >= {}, but the model has {}", data->describe(),
              data->vocab_needed(), c.vocab_size);

  auto strategy = make_strategy<T>(o.strategy, world, o.layout);
  strategy->validate(c, o.batch, o.seq_len);
  if (recall && o.eval_batches > 0 && o.eval_seq_len > 0)
    validate_eval_seq_len(o, c, *strategy, world.size());

  ModelParams<T> params(c, strategy->shard_spec(c));
  params.init(o.seed);
  kernels::AdamWHyper hp;
  hp.weight_decay = o.weight_decay;
  AdamW<T> opt(params, hp, strategy.get());
  Transformer<T> model(params, *strategy);
  TrainState state;
  state.seed = o.seed;
  if (!from.dir.empty()) {
    // Checkpoints hold whole moments; under ZeRO-1 every rank reads them whole and keeps its partition.
    opt.unpartition(*strategy, /*gather=*/false);
    load_checkpoint(from.dir, params, &opt, &state);
    opt.repartition();
    // --matmul-precision auto resumes with the paths the run chose (kernels/product_paths.h).
    if (kernels::matmul_precision() == kernels::MatmulPrecision::automatic && !state.product_paths.is_null())
      kernels::set_product_paths(state.product_paths);
    data->seek(state.data_position);
    TSP_REQUIRE(state.step < o.steps, "the checkpoint {} is at step {}, which is not before --steps {}",
                from.dir, state.step, o.steps);
  } else if (!init_dir.empty()) {
    // Fine-tuning: the weights of any checkpoint (an HF directory has no optimizer or trainer state).
    const std::string problem = checkpoint_problem(init_dir, &world, /*require_manifest=*/false);
    TSP_REQUIRE(problem.empty(), "--init-from {}: {}", o.init_from, problem);
    load_checkpoint<T>(init_dir, params, nullptr, nullptr);
  }
  state.data = data_source_json(data_path, o.recall);

  // The step's shape under the sequence-length warm-up: lengths are multiples of `unit` so that only a few
  // distinct shapes (and buffer sizes) occur, and tokens per step stay batch * seq_len.
  const int64_t unit = std::lcm<int64_t>(64, strategy->seq_len_multiple());
  if (seq_len_warmup > 0) {
    TSP_REQUIRE(o.seq_len_start > 0 && o.seq_len_start <= o.seq_len && o.seq_len_start % unit == 0,
                "--seq-len-start {} must be a multiple of {} in [{}, --seq-len {}]", o.seq_len_start, unit,
                unit, o.seq_len);
    if (recall)
      TSP_REQUIRE(o.seq_len_start >= RecallTask::min_seq_len(o.recall),
                  "--seq-len-start {} is too short for the recall task: the minimum is {}", o.seq_len_start,
                  RecallTask::min_seq_len(o.recall));
    strategy->validate(c, 1, o.seq_len_start);
  }
  auto shape_at = [&](int64_t step) -> std::pair<int64_t, int64_t> {
    if (seq_len_warmup <= 0 || step > seq_len_warmup) return {o.batch, o.seq_len};
    const double f = double(step - 1) / double(seq_len_warmup);
    int64_t S = int64_t(double(o.seq_len_start) * std::pow(double(o.seq_len) / double(o.seq_len_start), f));
    S = std::clamp<int64_t>(S / unit * unit, o.seq_len_start, o.seq_len);
    // Data parallelism needs whole sequences per replica: the batch stays a multiple of the replicas.
    const int64_t n = strategy->replicas();
    return {std::max<int64_t>(n, o.batch * o.seq_len / S / n * n), S};
  };

  std::FILE* log = o.json ? stderr : stdout;
  const bool bar_on = lead && o.progress && !o.json;
  if (lead) {
    std::fprintf(
        log,
        "tsp train | strategy %s%s on %d rank%s | %s | model %.2fM params (h %lld, L %lld, heads "
        "%lld/%lld) | %s\n",
        o.strategy.c_str(),
        strategy->replicas() > 1
            ? fmt::format(" x dp {}{}", strategy->replicas(), o.layout.zero1 ? " (ZeRO-1)" : "").c_str()
            : "",
        world.size(), world.size() == 1 ? "" : "s", o.dtype.c_str(), double(c.parameter_count()) / 1e6,
        (long long)c.hidden_size, (long long)c.num_hidden_layers, (long long)c.num_attention_heads,
        (long long)c.num_key_value_heads, data->describe().c_str());
    std::fprintf(log,
                 "batch %lld x seq %lld = %lld tokens/step | steps %lld | lr %.2e -> %.2e (warm-up %lld)%s\n",
                 (long long)o.batch, (long long)o.seq_len, (long long)(o.batch * o.seq_len),
                 (long long)o.steps, o.lr, o.min_lr, (long long)o.warmup,
                 from.dir.empty() ? "" : fmt::format(" | resumed at step {}", state.step).c_str());
    if (seq_len_warmup > 0)
      std::fprintf(
          log, "sequence-length warm-up: %lld -> %lld tokens over %lld steps%s (tokens per step constant)\n",
          (long long)o.seq_len_start, (long long)o.seq_len, (long long)seq_len_warmup,
          o.seq_len_warmup < 0 ? " (70% of --steps; --seq-len-warmup sets it)" : "");
    const std::string policy = precision_summary();
    std::fprintf(log, "threads: %s | %s | matmul precision %s%s%s\n", thread_summary(thread_plan()).c_str(),
                 kernels::onednn::summary().c_str(), kernels::to_string(kernels::matmul_precision()).c_str(),
                 policy.empty() ? "" : " | ", policy.c_str());
  }
  ProgressBar bar(bar_on, stdout, state.step + 1, o.steps);
  Communicator* comm = strategy->comm();
  CommStats comm_before_last, comm_last;  // the last step's communication: the shape bench and plan report
  nlohmann::json steps = nlohmann::json::array();
  double time_sum = 0, tokens_sum = 0, last_loss = 0;
  std::string last_ckpt;
  auto save = [&](int64_t step) {
    if (!ckpt) return;
    state.step = step;
    state.data_position = data->position();
    last_ckpt = ckpt->save(step, [&](const std::string& dir) {
      // Replicas hold the same model: replica 0 writes (its ranks gather their shards over the model axis),
      // after every rank has gathered the ZeRO-1 moment partitions.
      opt.unpartition(*strategy, /*gather=*/true);
      if (strategy->replica() == 0)
        save_checkpoint(dir, params, &opt, &state, strategy->model_comm(), ckpt_format);
      opt.repartition();
      if (lead) save_tokenizer_with_checkpoint(train_data, dir);
    });
  };
  StopSignals signals(lead);
  int exit_status = 0, stop_signal = 0;
  int64_t last_step = state.step;
  nlohmann::json stopped;

  double last_val = -1;
  const int64_t first_step = state.step + 1;
  for (int64_t step = first_step; step <= o.steps; ++step) {
    fault_set_step(step);
    watchdog_set_step(step);
    const auto [B, S] = shape_at(step);
    const auto td = std::chrono::steady_clock::now();
    Batch b = data->next(B, S);
    if (comm && step == o.steps) comm_before_last = comm->stats();
    auto t0 = std::chrono::steady_clock::now();
    const double data_ms = std::chrono::duration<double, std::milli>(t0 - td).count();
    params.zero_grads();
    if (detail::g_fault_armed) inject_nan_fault(params, opt, /*gradient=*/false);
    StepResult r = model.forward(b.tokens.data(), b.targets.data(), B, S);
    model.backward();
    strategy->set_phase("optimizer");
    if (detail::g_fault_armed) inject_nan_fault(params, opt, /*gradient=*/true);
    const double lr = kernels::cosine_lr(step, o.warmup, o.steps, o.lr, o.min_lr);
    const double gnorm = opt.grad_norm(*strategy);
    // The loss and the norm are all-reduced: every rank sees the same values and decides alike.
    bool skipped = false;
    if (!std::isfinite(r.loss) || !std::isfinite(gnorm)) {
      const std::string first = first_nonfinite_grad(params, opt, world);
      const std::string what = fmt::format(
          "non-finite {} at step {} (phase {}: loss {}, grad norm {}); first parameter with a non-finite "
          "gradient: {}",
          std::isfinite(r.loss) ? "gradient" : "loss", step, std::isfinite(r.loss) ? "backward" : "forward",
          r.loss, gnorm, first);
      if (state.skipped_nonfinite < o.skip_nonfinite) {
        skipped = true;
        ++state.skipped_nonfinite;
        if (lead)
          std::fprintf(
              log,
              "warning: %s: step skipped, weights and optimizer unchanged (%lld of --skip-nonfinite %lld)\n",
              what.c_str(), (long long)state.skipped_nonfinite, (long long)o.skip_nonfinite);
      } else {
        if (lead) {
          bar.clear();
          std::fprintf(stderr, "error: %s; training stopped without writing a checkpoint (%s)\n",
                       what.c_str(),
                       o.skip_nonfinite > 0 ? fmt::format("--skip-nonfinite {} already skipped {}",
                                                          o.skip_nonfinite, state.skipped_nonfinite)
                                                  .c_str()
                                            : "--skip-nonfinite N skips up to N such steps");
        }
        exit_status = kExitNonFinite;
        stopped = {{"reason", "nonfinite"}, {"step", step}, {"message", what}, {"parameter", first}};
        break;
      }
    }
    if (!skipped) opt.update(*strategy, lr, o.grad_clip, gnorm);
    // --matmul-precision auto: every product kind has been met (and measured, on each rank for itself) by the
    // end of the first step; from the second on every rank takes rank 0's paths, which checkpoints keep.
    if (step == first_step && kernels::matmul_precision() == kernels::MatmulPrecision::automatic) {
      const std::string table =
          world.broadcast_text("optim.product_paths_bcast", kernels::product_paths_json().dump(), 0);
      state.product_paths = nlohmann::json::parse(table);
      kernels::set_product_paths(state.product_paths);
      if (lead) std::fprintf(log, "%s (rank 0's, on every rank)\n", kernels::product_paths_summary().c_str());
    }
    last_step = step;
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (comm && step == o.steps) comm_last = comm_stats_minus(comm->stats(), comm_before_last);
    const double tps = double(B * S) / sec;
    if (step > state.step + 1 || o.steps - state.step == 1) {  // the first step pays one-time costs
      time_sum += sec;
      tokens_sum += double(B * S);
    }
    last_loss = r.loss;
    const MemStats m = mem_stats();
    steps.push_back({{"step", step},
                     {"seq_len", S},
                     {"batch", B},
                     {"loss", r.loss},
                     {"grad_norm", gnorm},
                     {"lr", lr},
                     {"ms", sec * 1e3},
                     {"tokens_per_s", tps},
                     {"data_ms", data_ms},
                     {"peak_bytes", m.peak_total},
                     {"skipped", skipped}});
    if (lead && (step == state.step + 1 || step == o.steps || step % o.log_every == 0)) {
      bar.clear();
      std::fprintf(log,
                   "step %5lld/%lld | %s loss %.4f | grad norm %.3f | lr %.2e | %7.1f ms | %8.0f tok/s | "
                   "peak %.1f MiB%s\n",
                   (long long)step, (long long)o.steps,
                   seq_len_warmup > 0 ? fmt::format("seq {:5d} x {:3d} |", S, B).c_str() : "", r.loss, gnorm,
                   lr, sec * 1e3, tps, mib(m.peak_total),
                   skipped ? fmt::format(" | skipped (non-finite, {} of {})", state.skipped_nonfinite,
                                         o.skip_nonfinite)
                                 .c_str()
                           : "");
      std::fflush(log);
    }
    if (lead) {
      bar.clear();
      bar.draw(step, sec);
    }
    if (validate && ((o.eval_every > 0 && step % o.eval_every == 0) || step == o.steps)) {
      const ValidationLoss v = validation_loss(model, *data, o.batch, o.seq_len, o.eval_batches);
      last_val = v.loss;
      steps.back()["val_loss"] = v.loss;
      steps.back()["val_tokens"] = v.tokens;
      if (lead) {
        bar.clear();
        std::fprintf(log, "step %5lld/%lld | validation loss %.4f over %lld tokens\n", (long long)step,
                     (long long)o.steps, v.loss, (long long)v.tokens);
        std::fflush(log);
      }
    }
    // Preemption: every rank stops after the same step (docs/reliability.md).
    if ((stop_signal = signals.agreed(world)) != 0) break;
    if (o.save_every > 0 && step % o.save_every == 0 && step != o.steps) save(step);
  }
  bar.clear();
  if (stop_signal) {
    save(last_step);
    exit_status = kExitSignalBase + stop_signal;
    stopped = {{"reason", signal_name(stop_signal)}, {"step", last_step}};
    if (lead)
      std::fprintf(stderr, "%s: stopped after step %lld of %lld; %s\n", signal_name(stop_signal),
                   (long long)last_step, (long long)o.steps,
                   ckpt ? fmt::format("checkpoint written to {} (continue with --resume auto or --resume {})",
                                      last_ckpt, last_ckpt)
                              .c_str()
                        : "nothing saved (no --checkpoint-dir)");
  } else if (exit_status == 0) {
    save(o.steps);
  }

  nlohmann::json summary = {{"strategy", o.strategy},
                            {"ranks", world.size()},
                            {"dtype", o.dtype},
                            {"steps", o.steps},
                            {"exit_status", exit_status},
                            {"skipped_nonfinite", state.skipped_nonfinite},
                            {"final_loss", last_loss},
                            {"tokens_per_s", time_sum > 0 ? tokens_sum / time_sum : 0.0},
                            {"memory_peak_bytes", memory_json(mem_stats())}};
  if (!last_ckpt.empty()) summary["checkpoint"] = last_ckpt;
  if (!stopped.is_null()) summary["stopped"] = stopped;
  if (last_val >= 0) summary["val_loss"] = last_val;
  if (train_data.tokenizer) summary["tokenizer"] = train_data.tokenizer->describe();
  if (recall && o.eval_batches > 0 && exit_status == 0) {
    // Held-out recall accuracy: argmax at every query's answer position, over sequences never trained on.
    int64_t correct = 0, total = 0;
    const int64_t es = o.eval_seq_len > 0 ? o.eval_seq_len : o.seq_len;
    Batch hb = recall->held_out(o.batch * o.eval_batches, es);
    for (int64_t e = 0; e < o.eval_batches; ++e) {
      const int64_t off = e * o.batch * es;
      StepResult r = model.forward(hb.tokens.data() + off, hb.targets.data() + off, o.batch, es, true);
      correct += r.correct;
      total += r.targets;
    }
    summary["recall_accuracy"] = total ? double(correct) / double(total) : 0.0;
    summary["recall_queries"] = total;
    summary["recall_seq_len"] = es;
    summary["chance_accuracy"] = recall->chance_accuracy();
  }
  summary["threads"] = thread_json(thread_plan());
  summary["isa"] = kernels::onednn::cpu_isa();
  summary["matmul_precision"] = kernels::to_string(kernels::matmul_precision());
  summary["optimizer_dtype"] = optimizer_dtype_name();
  summary["grad_reduce_dtype"] = grad_reduce_dtype_name();
  if (comm) {
    // Per step, like tsp bench and tsp plan: the last training step, at batch x --seq-len. The total also
    // holds the warm-up's shorter steps, the held-out evaluation and the checkpoint gathers.
    summary["comm_per_step"] = comm_stats_json(comm_last);
    summary["comm_per_step_shape"] = {{"batch", o.batch}, {"seq_len", o.seq_len}, {"step", o.steps}};
    summary["comm_total"] = comm_stats_json(comm->stats());
  }
  if (!o.trace.empty()) {
    trace_write(trace_path_for_rank(o.trace, world.rank(), world.size()));
    if (lead) {
      summary["trace"] = o.trace;
      summary["trace_files"] = trace_paths(o.trace, world.size());
    }
  }
  if (lead) {
    std::fprintf(log, "\n== summary ==\n");
    std::fprintf(log,
                 "final loss %.4f after %lld steps | %.0f tokens/s | peak tracked memory (rank 0) %.1f MiB, "
                 "VmHWM %.1f MiB\n",
                 last_loss, (long long)last_step, summary["tokens_per_s"].get<double>(),
                 mib(mem_stats().peak_total), mib(vm_hwm_bytes()));
    if (summary.contains("recall_accuracy"))
      std::fprintf(log, "held-out recall accuracy %.1f%% over %lld queries at seq-len %lld (chance %.1f%%)\n",
                   100.0 * summary["recall_accuracy"].get<double>(),
                   (long long)summary["recall_queries"].get<int64_t>(),
                   (long long)summary["recall_seq_len"].get<int64_t>(), 100.0 * recall->chance_accuracy());
    if (comm)
      std::fprintf(log, "communication (rank 0): %.3f MiB received in the last step, %.3f MiB over the run\n",
                   mib(comm_recv_bytes(comm_last)), mib(comm_recv_bytes(comm->stats())));
    if (last_val >= 0) std::fprintf(log, "validation loss %.4f\n", last_val);
    if (!last_ckpt.empty()) std::fprintf(log, "checkpoint: %s\n", last_ckpt.c_str());
  }
  summary["log"] = std::move(steps);
  if (lead && o.json) std::printf("%s\n", summary.dump(2).c_str());
  return summary;
}

}  // namespace

int64_t effective_seq_len_warmup(const TrainOptions& o) {
  if (o.seq_len_warmup >= 0) return o.seq_len_warmup;
  // Nothing to grow when --seq-len is not above where the warm-up would start.
  return o.seq_len > o.seq_len_start ? auto_seq_len_warmup(o.steps) : 0;
}

nlohmann::json run_training(const TrainOptions& o, Communicator& world) {
  if (o.dtype == "float32" || o.dtype == "bf16") return train_impl<float>(o, world);
  if (o.dtype == "float64") return train_impl<double>(o, world);
  throw UsageError(unsupported_dtype_message(o.dtype));
}

}  // namespace tsp
