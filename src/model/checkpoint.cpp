#include "model/checkpoint.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>

#include "core/atomic_file.h"
#include "core/check.h"
#include "kernels/bf16.h"
#include "model/checkpoint_io.h"

namespace fs = std::filesystem;

namespace tsp {

namespace {

constexpr const char* kModelStem = "model";
constexpr const char* kOptimizerStem = "optimizer";
constexpr const char* kStateFile = "trainer_state.json";

template <class T>
constexpr DType storage_dtype() {
  // float runs store F32 (what HF expects); double runs store F64 so that a resumed run is bit-exact.
  return sizeof(T) == 4 ? DType::F32 : DType::F64;
}

// Position of an HF tensor in transformers' state-dict order (embedding, layer by layer, final norm, LM
// head), so that shards cut like save_pretrained's keep each layer together.
int64_t state_dict_rank(const std::string& name) {
  const std::string layers = "model.layers.";
  if (name.rfind("model.embed_tokens.", 0) == 0) return 0;
  if (name.rfind(layers, 0) == 0) return 1 + std::stoll(name.substr(layers.size()));
  if (name.rfind("lm_head.", 0) == 0) return std::numeric_limits<int64_t>::max();
  return std::numeric_limits<int64_t>::max() - 1;
}

// Every view of every block as a held tensor named prefix + HF name, in state-dict order; block(b) is the
// storage the views of block b index into.
template <class T, class P>
std::vector<HeldTensor<T>> held_tensors(P& params, const std::string& prefix,
                                        const std::function<T*(int)>& block) {
  std::vector<HeldTensor<T>> out;
  for (int b = 0; b < params.num_blocks(); ++b) {
    for (const TensorView& v : params.blocks()[size_t(b)].views) {
      HeldTensor<T> t{v, block(b) + v.offset};
      t.view.name = prefix + v.name;
      out.push_back(std::move(t));
    }
  }
  std::stable_sort(out.begin(), out.end(), [&](const HeldTensor<T>& a, const HeldTensor<T>& b) {
    return state_dict_rank(a.view.name.substr(prefix.size())) <
           state_dict_rank(b.view.name.substr(prefix.size()));
  });
  return out;
}

// The exact weights of a training checkpoint whose model.safetensors is narrower than the run.
constexpr const char* kMasterPrefix = "master.";

// The AdamW moments, under the names optimizer.safetensors gives them.
template <class U, class T>
std::vector<HeldTensor<U>> moment_tensors(ModelParams<T>& params, AdamW<T>& opt) {
  auto out = held_tensors<U>(params, "exp_avg.", [&](int b) { return opt.m(b).data(); });
  for (auto& t : held_tensors<U>(params, "exp_avg_sq.", [&](int b) { return opt.v(b).data(); }))
    out.push_back(std::move(t));
  return out;
}

// config.json's declared weight dtype: "torch_dtype" (or "dtype", as newer transformers write it).
std::optional<DType> config_weight_dtype(const fs::path& config_path) {
  std::ifstream in(config_path, std::ios::binary);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;  // load_config has already reported an unreadable config
  }
  for (const char* key : {"torch_dtype", "dtype"}) {
    if (!j.is_object() || !j.contains(key) || j.at(key).is_null()) continue;
    const auto& v = j.at(key);
    TSP_REQUIRE(v.is_string(), "{}: \"{}\" must be a string, got {}", config_path.string(), key, v.dump());
    const auto t = parse_torch_dtype(v.get<std::string>());
    TSP_REQUIRE(t.has_value(), "{}: \"{}\" is \"{}\"; supported: float32, bfloat16, float16, float64",
                config_path.string(), key, v.get<std::string>());
    return t;
  }
  return std::nullopt;
}

}  // namespace

template <class T>
void save_checkpoint(const std::string& dir, ModelParams<T>& params, AdamW<T>* optimizer,
                     const TrainState* state, Communicator* comm, const CheckpointWriteOptions& opts) {
  const bool writer = !comm || comm->rank() == 0;
  const fs::path final_dir(dir);
  const fs::path tmp_dir = final_dir.parent_path() / fmt::format(".{}.tmp", final_dir.filename().string());
  if (writer) {
    std::error_code ec;
    fs::remove_all(tmp_dir, ec);
    fs::create_directories(tmp_dir, ec);
    TSP_REQUIRE(!ec, "cannot create checkpoint directory {}: {}", tmp_dir.string(), ec.message());
    nlohmann::json config = params.config().to_json();
    config["torch_dtype"] = torch_dtype_name(opts.weight_dtype.value_or(storage_dtype<T>()));
    write_file_atomic((tmp_dir / "config.json").string(), config.dump(2) + "\n");
  }
  // A save that fails part-way (on every rank alike, e.g. blocks that do not tile a tensor) leaves no
  // temporary directory behind; a failure of one rank aborts the job (cli/main.cpp).
  try {
    TensorSetWriteOptions w;
    w.dtype = storage_dtype<T>();
    w.max_shard_bytes = opts.max_shard_bytes;
    w.chunk_bytes = opts.chunk_bytes;
    TensorSetWriteOptions model_w = w;
    model_w.dtype = opts.weight_dtype.value_or(storage_dtype<T>());
    auto weights = [&](const std::string& prefix) {
      return held_tensors<const T>(params, prefix, [&](int b) { return params.value(b).data(); });
    };
    write_tensor_set<T>(tmp_dir.string(), kModelStem, weights(""), model_w, comm);
    if (optimizer) {
      // Moments in the run's type; and, when model.safetensors rounded the weights, the exact ones beside
      // them, so that resuming is bit-exact whatever --save-dtype was.
      std::vector<HeldTensor<const T>> state_tensors = moment_tensors<const T>(params, *optimizer);
      if (model_w.dtype != storage_dtype<T>())
        for (auto& t : weights(kMasterPrefix)) state_tensors.push_back(std::move(t));
      write_tensor_set<T>(tmp_dir.string(), kOptimizerStem, state_tensors, w, comm);
    }
  } catch (...) {
    if (writer) {
      std::error_code ec;
      fs::remove_all(tmp_dir, ec);
    }
    throw;
  }
  if (writer) {
    if (state) {
      TrainState s = *state;
      s.optimizer_step = optimizer ? optimizer->t() : 0;
      write_file_atomic((tmp_dir / kStateFile).string(), train_state_json(s));
    }
    std::error_code ec;
    fs::remove_all(final_dir, ec);
    fs::rename(tmp_dir, final_dir, ec);
    TSP_CHECK(!ec, "cannot rename {} to {}: {}", tmp_dir.string(), final_dir.string(), ec.message());
    sync_directory(final_dir.parent_path().string());
  }
  if (comm) comm->barrier();
}

template <class T>
CheckpointReadStats load_checkpoint(const std::string& dir_in, ModelParams<T>& params, AdamW<T>* optimizer,
                                    TrainState* state) {
  const fs::path dir(resolve_checkpoint_dir(dir_in));
  ModelConfig c = load_config((dir / "config.json").string());
  const ModelConfig& m = params.config();
  TSP_REQUIRE(c.to_json() == m.to_json(), "checkpoint {} has config {} but the model is {}", dir.string(),
              c.to_json().dump(), m.to_json().dump());
  const std::optional<DType> weight_dtype = config_weight_dtype(dir / "config.json");

  // Open and check everything before reading anything.
  const SafetensorsSetReader model(dir.string(), kModelStem);
  const auto weights = held_tensors<T>(params, "", [&](int b) { return params.value(b).data(); });
  check_tensor_set(model, weights, weight_dtype, (dir / "config.json").string() + " torch_dtype");
  std::unique_ptr<SafetensorsSetReader> opt_set;
  std::vector<HeldTensor<T>> moments;
  if (optimizer) {
    TSP_REQUIRE(SafetensorsSetReader::exists(dir.string(), kOptimizerStem),
                "checkpoint {} has no {}: it holds weights only and cannot resume training", dir.string(),
                single_file_name(kOptimizerStem));
    opt_set = std::make_unique<SafetensorsSetReader>(dir.string(), kOptimizerStem);
    moments = moment_tensors<T>(params, *optimizer);
    // Saved with a narrower --save-dtype: the exact weights are read after model.safetensors' rounded ones.
    if (!weights.empty() && opt_set->has(kMasterPrefix + weights.front().view.name))
      for (auto& t : held_tensors<T>(params, kMasterPrefix, [&](int b) { return params.value(b).data(); }))
        moments.push_back(std::move(t));
    check_tensor_set(*opt_set, moments, std::nullopt, "");
  }
  if (state) {
    TSP_REQUIRE(fs::exists(dir / kStateFile), "checkpoint {} has no {}: cannot resume training", dir.string(),
                kStateFile);
    *state = read_train_state((dir / kStateFile).string());
    if (optimizer) optimizer->set_t(state->optimizer_step);
  }

  CheckpointReadStats stats;
  if (params.bf16_only()) {
    // Serving under the bf16 policy (model/params.h): the weights exist only as bf16, so each block is read
    // in T into a staging buffer and rounded into its copy, one block at a time.
    if constexpr (std::is_same_v<T, float>) {
      for (int b = 0; b < params.num_blocks(); ++b) {
        Buffer<T> staged(params.value(b).size(), Mem::workspace);
        // The tensors of block b are those whose address lies in its range (std::less: a total order).
        const T* values = params.value(b).data();
        const T* end = values + params.value(b).size();
        const std::less<const T*> before;
        std::vector<HeldTensor<T>> block;
        for (const HeldTensor<T>& t : weights)
          if (!before(t.data, values) && before(t.data, end))
            block.push_back({t.view, staged.data() + (t.data - values)});
        stats.model += read_tensor_set(model, block);
        kernels::to_bf16(staged.data(), staged.size(), params.bf16_block(b));
      }
    }
  } else {
    stats.model = read_tensor_set(model, weights);
  }
  stats.model_file_bytes = model.total_file_bytes();
  if (opt_set) {
    stats.optimizer = read_tensor_set(*opt_set, moments);
    stats.optimizer_file_bytes = opt_set->total_file_bytes();
  }
  return stats;
}

DType parse_save_dtype(const std::string& name) {
  // torch's names (model/dtype.h) and the short ones users type.
  const std::string torch_name = name == "bf16"   ? "bfloat16"
                                 : name == "fp16" ? "float16"
                                 : name == "fp32" ? "float32"
                                 : name == "fp64" ? "float64"
                                                  : name;
  const std::optional<DType> t = parse_torch_dtype(torch_name);
  TSP_REQUIRE(t.has_value(),
              "--save-dtype {}: allowed bf16 (bfloat16), fp16 (float16), fp32 (float32), fp64 (float64)",
              name);
  return *t;
}

ModelConfig checkpoint_config(const std::string& dir) {
  return load_config((fs::path(resolve_checkpoint_dir(dir)) / "config.json").string());
}

std::string resolve_checkpoint_dir(const std::string& dir) {
  fs::path d(dir);
  if (fs::exists(d / "config.json")) return d.string();
  std::ifstream f(d / "latest");
  std::string name;
  if (f && (f >> name)) return (d / name).string();
  throw UsageError(
      fmt::format("{} is not a checkpoint: it has neither config.json nor a 'latest' file", dir));
}

template void save_checkpoint<float>(const std::string&, ModelParams<float>&, AdamW<float>*,
                                     const TrainState*, Communicator*, const CheckpointWriteOptions&);
template void save_checkpoint<double>(const std::string&, ModelParams<double>&, AdamW<double>*,
                                      const TrainState*, Communicator*, const CheckpointWriteOptions&);
template CheckpointReadStats load_checkpoint<float>(const std::string&, ModelParams<float>&, AdamW<float>*,
                                                    TrainState*);
template CheckpointReadStats load_checkpoint<double>(const std::string&, ModelParams<double>&, AdamW<double>*,
                                                     TrainState*);

}  // namespace tsp
