#include "cli/common.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/precision.h"
#include "kernels/matmul_precision.h"
#include "kernels/onednn_matmul.h"
#include "kernels/product_paths.h"

namespace tsp::cli {

namespace {

// A Hugging Face model directory stands for its config.json.
std::string resolve_config_path(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) return path;
  const std::filesystem::path inside = std::filesystem::path(path) / "config.json";
  TSP_REQUIRE(std::filesystem::is_regular_file(inside, ec),
              "--config {} is a directory without a config.json: give a Hugging Face model directory or "
              "the config.json file itself",
              path);
  return inside.string();
}

}  // namespace

ModelConfig ModelSource::load() const {
  ModelConfig c = (config_opt && config_opt->count()) ? load_config(resolve_config_path(config_path))
                                                      : preset_config(preset);
  c.validate();
  return c;
}

void add_model_options(CLI::App* app, ModelSource& src) {
  src.preset_opt = app->add_option("--preset", src.preset,
                                   "built-in model: " + fmt::format("{}", fmt::join(preset_names(), ", ")))
                       ->capture_default_str();
  src.config_opt =
      app->add_option("--config", src.config_path,
                      "model config.json (Hugging Face LlamaConfig), or a model directory holding it");
  src.preset_opt->excludes(src.config_opt);
}

void add_layout_options(CLI::App* app, std::string& strategy, StrategyOptions& o) {
  app->add_option(
         "--strategy", strategy,
         "parallel layout of one model replica: " + fmt::format("{}", fmt::join(strategy_names(), ", ")))
      ->capture_default_str();
  app->add_option("--tp", o.tp, "tpsp: tensor-parallel degree T (T x SP = ranks per replica)");
  app->add_option("--sp", o.sp, "tpsp: sequence-parallel degree (T x SP = ranks per replica)");
  app->add_flag("--sequence-parallel", o.sequence_parallel,
                "tp, tpsp: Megatron sequence parallelism (norm regions sharded along the sequence)");
  app->add_option("--dp", o.dp, "data-parallel replicas of the layout (ranks = dp x ranks per replica)")
      ->capture_default_str();
  app->add_flag("--zero1", o.zero1, "with --dp > 1: shard the AdamW state across replicas (ZeRO-1)");
  app->add_flag("--keep-gathered-kv", o.keep_gathered_kv,
                "tsp: keep the all-gathered K/V for the backward instead of re-gathering (costs memory)");
  app->add_option_function<std::string>(
         "--weight-comm-dtype", [&o](const std::string& v) { o.weight_comm_bf16 = v == "bf16"; },
         "tsp: dtype the weight shards travel in: float32 (default) or bf16 (half the weight traffic and "
         "buffers; needs --matmul-precision bf16, whose products round the weights to those bits)")
      ->check(CLI::IsMember({"float32", "bf16"}));
  app->add_option(
      "--matmul-paths", matmul_paths_option(),
      "with --matmul-precision auto: take the product paths of a JSON file instead of measuring "
      "them (a checkpoint's trainer_state.json, a tsp bench --json document, or its product_paths)");
  app->add_option("--threads", threads_option(),
                  "OpenMP and OpenBLAS threads per rank (default: the rank's cores / ranks sharing them)");
  app->add_option(
         "--matmul-precision", matmul_precision_option(),
         "linear-layer and attention products: fp32 (OpenBLAS), bf16 (operands rounded to bf16, "
         "fp32 accumulation, on oneDNN; the default under --dtype bf16) or auto (each linear product "
         "takes the path that measured faster on this CPU; docs/precision.md); bf16 and auto need "
         "--dtype float32 or bf16")
      ->capture_default_str();
}

int& threads_option() {
  static int n = 0;
  return n;
}

std::string& matmul_paths_option() {
  static std::string path;
  return path;
}

std::string& matmul_precision_option() {
  static std::string p = "fp32";
  return p;
}

namespace {

std::string& optimizer_dtype_option() {
  static std::string d = "float32";
  return d;
}
std::string& grad_reduce_dtype_option() {
  static std::string d = "float32";
  return d;
}

bool given(const CLI::App& app, const char* name) {
  const CLI::Option* o = app.get_option_no_throw(name);
  return o && o->count() > 0;
}

}  // namespace

void add_dtype_options(CLI::App* app, std::string& dtype, bool with_float64, bool training) {
  std::vector<std::string> allowed = {"float32", "bf16", "bfloat16"};
  if (with_float64) allowed.push_back("float64");
  app->add_option(
         "--dtype", dtype,
         std::string("float32, bf16 (bf16 weights, activations and communication with an fp32 master, "
                     "fp32 accumulation and statistics: docs/precision.md)") +
             (with_float64 ? " or float64" : ""))
      ->capture_default_str()
      ->transform([](const std::string& v) { return v == "bfloat16" ? std::string("bf16") : v; })
      ->check(CLI::IsMember(allowed));
  if (!training) return;
  app->add_option("--optimizer-dtype", optimizer_dtype_option(),
                  "AdamW moments: float32 or bf16 (half their bytes; with --dtype float32 or bf16)")
      ->capture_default_str()
      ->check(CLI::IsMember({"float32", "bf16"}));
  app->add_option("--grad-reduce-dtype", grad_reduce_dtype_option(),
                  "weight gradients reduced across ranks in float32 or bf16 (half those bytes; accumulation "
                  "stays fp32; with --dtype float32 or bf16)")
      ->capture_default_str()
      ->check(CLI::IsMember({"float32", "bf16"}));
}

void apply_precision(const CLI::App& chosen) {
  const CLI::Option* dtype = chosen.get_option_no_throw("--dtype");
  const std::string d = dtype ? dtype->as<std::string>() : "float32";
  PrecisionPolicy pol;
  pol.bf16 = d == "bf16";
  pol.bf16_moments = optimizer_dtype_option() == "bf16";
  pol.bf16_grad_reduce = grad_reduce_dtype_option() == "bf16";
  if (d == "float64") {
    if (pol.bf16_moments)
      throw UsageError("--optimizer-dtype bf16 needs --dtype float32 or bf16 (got float64)");
    if (pol.bf16_grad_reduce)
      throw UsageError("--grad-reduce-dtype bf16 needs --dtype float32 or bf16 (got float64)");
  }
  kernels::MatmulPrecision mp = kernels::MatmulPrecision::fp32;
  if (pol.bf16 && !given(chosen, "--matmul-precision")) {
    // The policy's products are bf16; a CPU where oneDNN has none keeps the bf16 storage and communication
    // and multiplies in fp32 (the run header names the products).
    mp = kernels::onednn::bf16_supported() ? kernels::MatmulPrecision::bf16 : kernels::MatmulPrecision::fp32;
  } else {
    mp = kernels::parse_matmul_precision(matmul_precision_option());
    // bf16 products are a float32 mode: fp64 runs are the reference and never round their operands.
    if (mp != kernels::MatmulPrecision::fp32 && d == "float64")
      throw UsageError(
          fmt::format("--matmul-precision bf16 needs --dtype float32 or bf16 (got --dtype {})", d));
  }
  kernels::set_matmul_precision(mp);
  set_precision_policy(pol);
  if (!matmul_paths_option().empty()) {
    const std::string& path = matmul_paths_option();
    TSP_REQUIRE(mp == kernels::MatmulPrecision::automatic,
                "--matmul-paths {} pins the paths of --matmul-precision auto (got --matmul-precision {})",
                path, kernels::to_string(mp));
    require_input_file("--matmul-paths", path, "a JSON file with product paths");
    std::ifstream f(path);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(f);
    } catch (const nlohmann::json::exception& e) {
      throw UsageError(fmt::format("--matmul-paths {}: {}", path, e.what()));
    }
    // A trainer_state.json or a bench document holds the table under "product_paths".
    if (j.is_object() && j.contains("product_paths") && j.at("product_paths").is_object())
      j = j.at("product_paths");
    TSP_REQUIRE(
        j.is_object() && j.contains("products"),
        "--matmul-paths {}: no product paths in it (expected \"products\", or \"product_paths\" holding "
        "them)",
        path);
    kernels::set_product_paths(j);
  }
}

void require_input_file(const std::string& option, const std::string& path, const std::string& what) {
  std::error_code ec;
  TSP_REQUIRE(!std::filesystem::is_directory(path, ec), "{} {} is a directory: give {}", option, path, what);
  TSP_REQUIRE(std::filesystem::exists(path, ec), "{} {}: no such file (give {})", option, path, what);
}

void require_inference_layout(const std::string& strategy, const StrategyOptions& layout, int ranks) {
  TSP_REQUIRE(
      strategy != "single" || ranks == 1 || layout.dp != 1,
      "--strategy single runs on exactly 1 rank, but this job has {} ranks; eval and generate run one "
      "sequence on one model replica, so spread the model over the {} ranks with --strategy tsp, tp, "
      "sp or tpsp (e.g. mpirun -np {} tsp ... --strategy tsp), or run on one rank",
      ranks, ranks, ranks);
}

}  // namespace tsp::cli
