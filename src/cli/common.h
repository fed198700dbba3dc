// Pieces shared by the subcommands: how the model is chosen, how a subcommand registers itself, JSON output.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "model/config.h"
#include "parallel/registry.h"

namespace tsp::cli {

// A registered subcommand: its CLI11 app and what runs when it was chosen. run returns the exit status.
struct Command {
  CLI::App* app = nullptr;
  std::function<int(Communicator&)> run;
};

// --preset NAME | --config FILE (config.json in HF format) | --config DIR (a HF model directory holding
// config.json).
struct ModelSource {
  std::string preset = "small";
  std::string config_path;
  CLI::Option* preset_opt = nullptr;
  CLI::Option* config_opt = nullptr;
  bool given() const { return (preset_opt && preset_opt->count()) || (config_opt && config_opt->count()); }
  ModelConfig load() const;
};
void add_model_options(CLI::App* app, ModelSource& src);

// --strategy and the mesh: --tp, --sp, --sequence-parallel, --dp, --zero1, --keep-gathered-kv; and --threads
// (every command that computes has a layout).
void add_layout_options(CLI::App* app, std::string& strategy, StrategyOptions& layout);

// --threads N of whichever command was chosen (0: not given); main() applies it (core/threading.h).
int& threads_option();
// --matmul-precision of whichever command was chosen; main() applies it (kernels/matmul_precision.h) before
// the command runs, refusing bf16 unless the command's --dtype is float32 or bf16 and oneDNN has a bf16
// product.
std::string& matmul_precision_option();
// --matmul-paths FILE: the product paths --matmul-precision auto takes instead of measuring
// (apply_precision).
std::string& matmul_paths_option();
// --dtype: float32, bf16 (the bf16 policy, core/precision.h: a float32 model with bf16 weights,
// activations and traffic) or float64 (with_float64: train, bench, check). training adds the policy's
// companions --optimizer-dtype and --grad-reduce-dtype (train, bench, check).
void add_dtype_options(CLI::App* app, std::string& dtype, bool with_float64, bool training);
// main(): before the chosen command runs, sets the precision policy from its --dtype and companions
// (core/precision.h) and the matmul precision (under --dtype bf16, bf16 products unless --matmul-precision
// says otherwise, or fp32 where oneDNN has none), refusing combinations that cannot run, on every rank.
void apply_precision(const CLI::App& chosen);

void add_train_command(CLI::App& root, std::vector<Command>& cmds);
void add_eval_command(CLI::App& root, std::vector<Command>& cmds);
void add_generate_command(CLI::App& root, std::vector<Command>& cmds);
void add_check_command(CLI::App& root, std::vector<Command>& cmds);
void add_plan_command(CLI::App& root, std::vector<Command>& cmds);
void add_bench_command(CLI::App& root, std::vector<Command>& cmds);
void add_tokenize_command(CLI::App& root, std::vector<Command>& cmds);

// Refuses an input path that is missing or a directory, before any work: "{option} {path} is a directory:
// give {what}". (A directory would otherwise fail deep inside a reader with a stream error.)
void require_input_file(const std::string& option, const std::string& path, const std::string& what);

// eval and generate run one sequence on one model replica: --strategy single on several ranks is refused
// with the layouts that would spread the model over them (not --dp, which inference does not take).
void require_inference_layout(const std::string& strategy, const StrategyOptions& layout, int ranks);

// Parses whitespace-separated integer token ids; errors name `what` and the offending text.
std::vector<int32_t> parse_token_ids(const std::string& text, const std::string& what);

}  // namespace tsp::cli
