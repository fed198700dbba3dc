#include "model/checkpoint.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>

#include "core/check.h"
#include "model/safetensors.h"

namespace fs = std::filesystem;

namespace tsp {

namespace {

constexpr const char* kModelFile = "model.safetensors";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kStateFile = "trainer_state.json";

template <class T>
constexpr DType storage_dtype() {
  // float runs store F32 (what HF expects); double runs store F64 so that a resumed run is bit-exact.
  return sizeof(T) == 4 ? DType::F32 : DType::F64;
}

// Assembles the full HF tensor of view `v` on rank 0 from every rank's block (rank 0 returns it; others
// send). Replicated tensors are taken from rank 0 alone.
template <class T>
std::vector<T> gather_tensor(const TensorView& v, Placement placement, const T* local, Communicator* comm) {
  const int64_t full_rows = v.full_shape.size() == 1 ? 1 : v.full_shape[0];
  const int64_t full_cols = v.full_shape.back();
  const int rank = comm ? comm->rank() : 0, size = comm ? comm->size() : 1;
  std::vector<T> full;
  auto place = [&](const int64_t* meta, const T* data) {
    // meta: row_begin, col_begin, valid_rows, cols
    for (int64_t r = 0; r < meta[2]; ++r)
      std::copy(data + r * meta[3], data + (r + 1) * meta[3],
                full.data() + (meta[0] + r) * full_cols + meta[1]);
  };
  int64_t meta[4] = {v.row_begin, v.col_begin, v.valid_rows, v.cols};
  if (rank == 0) {
    full.assign(size_t(full_rows * full_cols), T(0));
    place(meta, local);
  }
  if (placement == Placement::replicated || size == 1) return full;
  std::vector<T> buf(size_t(v.valid_rows * v.cols));
  for (int src = 1; src < size; ++src) {
    if (rank == src) {
      comm->send_recv("checkpoint.gather", meta, 4, 0, static_cast<int64_t*>(nullptr), 0, MPI_PROC_NULL);
      comm->send_recv("checkpoint.gather", local, v.valid_rows * v.cols, 0, static_cast<T*>(nullptr), 0,
                      MPI_PROC_NULL);
    } else if (rank == 0) {
      int64_t m[4];
      comm->send_recv("checkpoint.gather", static_cast<const int64_t*>(nullptr), 0, MPI_PROC_NULL, m, 4, src);
      buf.resize(size_t(m[2] * m[3]));
      comm->send_recv("checkpoint.gather", static_cast<const T*>(nullptr), 0, MPI_PROC_NULL, buf.data(),
                      m[2] * m[3], src);
      place(m, buf.data());
    }
  }
  return full;
}

// One group of tensors in a file: every view of every block, names prefixed, values from block(b).
template <class T>
struct TensorGroup {
  std::string prefix;
  std::function<T*(int)> block;
};

// Writes every group into one safetensors file; rank 0 writes, every rank contributes its shards.
template <class T>
void write_tensors(const std::string& path, ModelParams<T>& params, const std::vector<TensorGroup<T>>& groups,
                   Communicator* comm) {
  const bool writer = !comm || comm->rank() == 0;
  std::unique_ptr<SafetensorsWriter> w;
  if (writer) {
    w = std::make_unique<SafetensorsWriter>(path);
    w->set_metadata("format", "pt");
    for (const auto& g : groups)
      for (const auto& b : params.blocks())
        for (const auto& v : b.views) w->declare(g.prefix + v.name, storage_dtype<T>(), v.full_shape);
  }
  for (const auto& g : groups)
    for (int b = 0; b < params.num_blocks(); ++b) {
      const ParamBlock& blk = params.blocks()[size_t(b)];
      for (const auto& v : blk.views) {
        std::vector<T> full = gather_tensor(v, blk.placement, g.block(b) + v.offset, comm);
        if (writer) w->write(g.prefix + v.name, full.data(), int64_t(full.size()));
      }
    }
  if (writer) w->finish();
}

template <class T, class Get>
void read_tensors(const SafetensorsReader& r, const std::string& prefix, ModelParams<T>& params, Get get) {
  for (int b = 0; b < params.num_blocks(); ++b) {
    for (const auto& v : params.blocks()[size_t(b)].views) {
      T* dst = get(b) + v.offset;
      r.read_block(prefix + v.name, v.full_shape, v.row_begin, v.valid_rows, v.col_begin, v.cols, dst);
      // Vocabulary padding rows stay zero.
      std::fill(dst + v.valid_rows * v.cols, dst + v.rows * v.cols, T(0));
    }
  }
}

}  // namespace

template <class T>
void save_checkpoint(const std::string& dir, ModelParams<T>& params, AdamW<T>* optimizer,
                     const TrainState* state, Communicator* comm) {
  const bool writer = !comm || comm->rank() == 0;
  const fs::path final_dir(dir);
  const fs::path tmp_dir = final_dir.parent_path() / fmt::format(".{}.tmp", final_dir.filename().string());
  if (writer) {
    std::error_code ec;
    fs::remove_all(tmp_dir, ec);
    fs::create_directories(tmp_dir, ec);
    TSP_REQUIRE(!ec, "cannot create checkpoint directory {}: {}", tmp_dir.string(), ec.message());
    save_config(params.config(), (tmp_dir / "config.json").string());
  }
  write_tensors<T>((tmp_dir / kModelFile).string(), params,
                   {{"", [&](int b) { return params.value(b).data(); }}}, comm);
  if (optimizer)
    write_tensors<T>((tmp_dir / kOptimizerFile).string(), params,
                     {{"exp_avg.", [&](int b) { return optimizer->m(b).data(); }},
                      {"exp_avg_sq.", [&](int b) { return optimizer->v(b).data(); }}},
                     comm);
  if (writer) {
    if (state) {
      nlohmann::json j = {{"step", state->step},
                          {"data_position", state->data_position},
                          {"seed", state->seed},
                          {"optimizer_step", optimizer ? optimizer->t() : 0}};
      std::ofstream f(tmp_dir / kStateFile);
      f << j.dump(2) << "\n";
      TSP_CHECK(static_cast<bool>(f), "cannot write {}", (tmp_dir / kStateFile).string());
    }
    std::error_code ec;
    fs::remove_all(final_dir, ec);
    fs::rename(tmp_dir, final_dir, ec);
    TSP_CHECK(!ec, "cannot rename {} to {}: {}", tmp_dir.string(), final_dir.string(), ec.message());
  }
  if (comm) comm->barrier();
}

template <class T>
void load_checkpoint(const std::string& dir_in, ModelParams<T>& params, AdamW<T>* optimizer,
                     TrainState* state) {
  const fs::path dir(resolve_checkpoint_dir(dir_in));
  ModelConfig c = load_config((dir / "config.json").string());
  const ModelConfig& m = params.config();
  TSP_REQUIRE(c.to_json() == m.to_json(), "checkpoint {} has config {} but the model is {}", dir.string(),
              c.to_json().dump(), m.to_json().dump());
  {
    SafetensorsReader r((dir / kModelFile).string());
    read_tensors(r, "", params, [&](int b) { return params.value(b).data(); });
  }
  if (optimizer) {
    TSP_REQUIRE(fs::exists(dir / kOptimizerFile),
                "checkpoint {} has no {}: it holds weights only and cannot resume training", dir.string(),
                kOptimizerFile);
    SafetensorsReader r((dir / kOptimizerFile).string());
    read_tensors(r, "exp_avg.", params, [&](int b) { return optimizer->m(b).data(); });
    read_tensors(r, "exp_avg_sq.", params, [&](int b) { return optimizer->v(b).data(); });
  }
  if (state) {
    std::ifstream f(dir / kStateFile);
    TSP_REQUIRE(static_cast<bool>(f), "checkpoint {} has no {}: cannot resume training", dir.string(),
                kStateFile);
    nlohmann::json j;
    try {
      f >> j;
      state->step = j.at("step").get<int64_t>();
      state->data_position = j.at("data_position").get<int64_t>();
      state->seed = j.at("seed").get<uint64_t>();
      if (optimizer) optimizer->set_t(j.at("optimizer_step").get<int64_t>());
    } catch (const nlohmann::json::exception& e) {
      throw UsageError(fmt::format("{}: {}", (dir / kStateFile).string(), e.what()));
    }
  }
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
                                     const TrainState*, Communicator*);
template void save_checkpoint<double>(const std::string&, ModelParams<double>&, AdamW<double>*,
                                      const TrainState*, Communicator*);
template void load_checkpoint<float>(const std::string&, ModelParams<float>&, AdamW<float>*, TrainState*);
template void load_checkpoint<double>(const std::string&, ModelParams<double>&, AdamW<double>*, TrainState*);

}  // namespace tsp
