#include "model/checkpoint_io.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "core/check.h"
#include "core/memory.h"

namespace tsp {

namespace {

// Comm labels: the ranks' block lists, and the blocks streamed to rank 0.
constexpr const char* kPlanLabel = "checkpoint.save_plan";
constexpr const char* kSaveLabel = "checkpoint.save";

// A tensor seen as a matrix: 1-D tensors (norm weights, biases) are one row.
std::pair<int64_t, int64_t> matrix_dims(const TensorView& v) {
  TSP_CHECK(v.full_shape.size() == 1 || v.full_shape.size() == 2,
            "tensor '{}': checkpoints hold 1-D and 2-D tensors, got shape [{}]", v.name,
            fmt::join(v.full_shape, ", "));
  return {v.full_shape.size() == 2 ? v.full_shape[0] : 1, v.full_shape.back()};
}

// The part of an HF tensor one rank holds: rows [row_begin, row_begin + rows) x cols [col_begin, ...).
struct Block {
  int64_t row_begin = 0, col_begin = 0, rows = 0, cols = 0;
  int owner = 0;
  bool operator==(const Block& o) const {
    return row_begin == o.row_begin && col_begin == o.col_begin && rows == o.rows && cols == o.cols;
  }
  bool overlaps(const Block& o) const {
    return row_begin < o.row_begin + o.rows && o.row_begin < row_begin + rows &&
           col_begin < o.col_begin + o.cols && o.col_begin < col_begin + cols;
  }
};

std::string describe(const Block& b) {
  return fmt::format("rank {}: rows [{}, {}) x cols [{}, {})", b.owner, b.row_begin, b.row_begin + b.rows,
                     b.col_begin, b.col_begin + b.cols);
}

// One message of the save: rows of one block, sent by `owner` to rank 0.
struct Chunk {
  size_t tensor = 0;
  int owner = 0;
  int64_t row_begin = 0, col_begin = 0, rows = 0, cols = 0;  // in the HF tensor
  int64_t local_row = 0;                                     // first row inside the owner's block
  int64_t numel() const { return rows * cols; }
};

// Every rank must describe the same tensors: a hash of names and shapes, compared across ranks.
template <class T>
uint64_t tensor_list_hash(const std::vector<HeldTensor<const T>>& held) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](uint64_t x) { h = (h ^ x) * 1099511628211ull; };
  for (const auto& t : held) {
    mix(name_hash(t.view.name));
    for (int64_t d : t.view.full_shape) mix(uint64_t(d));
    mix(~0ull);
  }
  return h;
}

// The distinct blocks of every tensor, who writes each, cut into chunks of at most chunk_elems elements
// (whole rows; a single row may exceed it). Identical on every rank.
template <class T>
std::vector<Chunk> plan_chunks(const std::vector<HeldTensor<const T>>& held, const std::vector<int64_t>& meta,
                               int ranks, int64_t chunk_elems) {
  const size_t n = held.size();
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < n; ++i) {
    const auto [R, C] = matrix_dims(held[i].view);
    std::vector<Block> blocks;
    for (int r = 0; r < ranks; ++r) {
      const int64_t* m = &meta[(size_t(r) * n + i) * 4];
      Block b{m[0], m[1], m[2], m[3], r};
      if (b.rows == 0 || b.cols == 0) continue;
      if (std::find(blocks.begin(), blocks.end(), b) != blocks.end()) continue;  // held by a lower rank too
      blocks.push_back(b);
    }
    // Together the distinct blocks must cover the tensor exactly once, or the file would hold garbage.
    int64_t area = 0;
    bool ok = true;
    for (size_t a = 0; a < blocks.size(); ++a) {
      const Block& b = blocks[a];
      ok = ok && b.row_begin >= 0 && b.col_begin >= 0 && b.row_begin + b.rows <= R &&
           b.col_begin + b.cols <= C;
      for (size_t c = 0; c < a; ++c) ok = ok && !b.overlaps(blocks[c]);
      area += b.rows * b.cols;
    }
    if (!ok || area != R * C) {
      std::vector<std::string> parts;
      for (const Block& b : blocks) parts.push_back(describe(b));
      TSP_CHECK(false, "cannot save tensor '{}' of shape [{}]: the ranks' blocks do not tile it ({})",
                held[i].view.name, fmt::join(held[i].view.full_shape, ", "), fmt::join(parts, "; "));
    }
    // File order inside a tensor, so that rank 0 writes forward through the file.
    std::sort(blocks.begin(), blocks.end(), [](const Block& a, const Block& b) {
      return a.row_begin != b.row_begin ? a.row_begin < b.row_begin : a.col_begin < b.col_begin;
    });
    for (const Block& b : blocks) {
      const int64_t step = std::max<int64_t>(1, chunk_elems / b.cols);
      for (int64_t r = 0; r < b.rows; r += step)
        chunks.push_back({i, b.owner, b.row_begin + r, b.col_begin, std::min(step, b.rows - r), b.cols, r});
    }
  }
  return chunks;
}

// Counts the save's messages under the phase "checkpoint", apart from the training step's phases.
class CheckpointPhase {
 public:
  explicit CheckpointPhase(Communicator* comm) : comm_(comm) {
    if (comm_) {
      previous_ = comm_->phase();
      comm_->set_phase("checkpoint");
    }
  }
  ~CheckpointPhase() {
    if (comm_) comm_->set_phase(previous_);
  }
  CheckpointPhase(const CheckpointPhase&) = delete;
  CheckpointPhase& operator=(const CheckpointPhase&) = delete;

 private:
  Communicator* comm_;
  std::string previous_;
};

}  // namespace

template <class T>
void write_tensor_set(const std::string& dir, const std::string& stem,
                      const std::vector<HeldTensor<const T>>& held, const TensorSetWriteOptions& opts,
                      Communicator* comm) {
  const int rank = comm ? comm->rank() : 0, ranks = comm ? comm->size() : 1;
  const size_t n = held.size();
  const CheckpointPhase phase(comm);
  // A malformed block on one rank must stop every rank (not leave the others waiting for its data).
  int64_t bad = -1;
  for (size_t i = 0; i < n && bad < 0; ++i) {
    const TensorView& v = held[i].view;
    (void)matrix_dims(v);
    const bool ok = v.valid_rows >= 0 && v.valid_rows <= v.rows && v.cols >= 0 && v.rows >= 0 &&
                    (v.rows * v.cols == 0 || held[i].data != nullptr);
    if (!ok) bad = int64_t(i);
  }

  // Agree on the tensor list, then learn every rank's blocks: a few integers per tensor and rank.
  std::vector<int64_t> sig = {int64_t(n), int64_t(tensor_list_hash(held)), bad};
  std::vector<int64_t> all_sig(size_t(ranks) * 3);
  std::vector<int64_t> meta(n * 4), all_meta(size_t(ranks) * n * 4);
  for (size_t i = 0; i < n; ++i) {
    const TensorView& v = held[i].view;
    meta[4 * i + 0] = v.row_begin;
    meta[4 * i + 1] = v.col_begin;
    meta[4 * i + 2] = v.valid_rows;
    meta[4 * i + 3] = v.cols;
  }
  if (comm) {
    comm->all_gather(kPlanLabel, sig.data(), all_sig.data(), 3);
  } else {
    all_sig = sig;
  }
  for (int r = 0; r < ranks; ++r) {
    const int64_t* s = &all_sig[size_t(3 * r)];
    TSP_CHECK(s[0] == all_sig[0] && s[1] == all_sig[1],
              "cannot save '{}': rank {} holds {} tensors and rank 0 {}, or their names or shapes differ",
              stem, r, s[0], all_sig[0]);
    TSP_CHECK(s[2] < 0, "cannot save '{}': rank {} holds a malformed block of tensor {} of the list", stem, r,
              s[2]);
  }
  if (comm && n > 0) {
    comm->all_gather(kPlanLabel, meta.data(), all_meta.data(), int64_t(n * 4));
  } else {
    all_meta = meta;
  }
  const int64_t chunk_elems = std::max<int64_t>(1, opts.chunk_bytes / int64_t(sizeof(T)));
  const std::vector<Chunk> chunks = plan_chunks(held, all_meta, ranks, chunk_elems);

  if (rank != 0) {
    for (const Chunk& c : chunks) {
      if (c.owner != rank) continue;
      const HeldTensor<const T>& t = held[c.tensor];
      comm->send_recv(kSaveLabel, t.data + c.local_row * t.view.cols, c.numel(), 0, static_cast<T*>(nullptr),
                      0, MPI_PROC_NULL);
    }
    comm->barrier();
    return;
  }

  SafetensorsSetWriter w(dir, stem, opts.max_shard_bytes);
  for (const auto& [k, v] : opts.metadata) w.set_metadata(k, v);
  for (const auto& t : held) w.declare(t.view.name, opts.dtype, t.view.full_shape);

  // Two receive buffers: the next chunk arrives while the current one is converted and written.
  std::vector<size_t> remote;
  int64_t buf_elems = 0;
  for (size_t j = 0; j < chunks.size(); ++j) {
    if (chunks[j].owner == 0) continue;
    remote.push_back(j);
    buf_elems = std::max(buf_elems, chunks[j].numel());
  }
  Buffer<T> bufs[2] = {Buffer<T>(remote.empty() ? 0 : buf_elems, Mem::communication),
                       Buffer<T>(remote.size() < 2 ? 0 : buf_elems, Mem::communication)};
  CommRequest reqs[2];
  auto post = [&](size_t k) {
    if (k >= remote.size()) return;
    const Chunk& c = chunks[remote[k]];
    reqs[k % 2] = comm->isend_recv(kSaveLabel, static_cast<const T*>(nullptr), 0, MPI_PROC_NULL,
                                   bufs[k % 2].data(), c.numel(), c.owner);
  };
  post(0);
  size_t k = 0;  // remote chunks handled so far
  for (const Chunk& c : chunks) {
    const HeldTensor<const T>& t = held[c.tensor];
    if (c.owner == 0) {
      w.write_block(t.view.name, c.row_begin, c.rows, c.col_begin, c.cols,
                    t.data + c.local_row * t.view.cols);
      continue;
    }
    post(k + 1);
    comm->wait(reqs[k % 2]);
    w.write_block(t.view.name, c.row_begin, c.rows, c.col_begin, c.cols, bufs[k % 2].data());
    ++k;
  }
  w.finish();
  if (comm) comm->barrier();
}

template <class T>
void check_tensor_set(const SafetensorsSetReader& set, const std::vector<HeldTensor<T>>& held,
                      std::optional<DType> expect_dtype, const std::string& dtype_source) {
  for (const auto& t : held) {
    const TensorInfo& info = set.info(t.view.name);  // throws naming the missing tensor
    TSP_REQUIRE(!expect_dtype || info.dtype == *expect_dtype,
                "{}: tensor '{}' is stored as {}, but {} says {}", set.file_of(t.view.name).path(),
                t.view.name, dtype_name(info.dtype), dtype_source, torch_dtype_name(*expect_dtype));
    TSP_REQUIRE(info.shape == t.view.full_shape, "{}: tensor '{}' has shape [{}], but the model needs [{}]",
                set.file_of(t.view.name).path(), t.view.name, fmt::join(info.shape, ", "),
                fmt::join(t.view.full_shape, ", "));
  }
}

template <class T>
ReadStats read_tensor_set(const SafetensorsSetReader& set, const std::vector<HeldTensor<T>>& held) {
  const ReadStats before = set.stats();
  for (const auto& t : held) {
    const TensorView& v = t.view;
    set.read_block(v.name, v.full_shape, v.row_begin, v.valid_rows, v.col_begin, v.cols, t.data);
    std::fill(t.data + v.valid_rows * v.cols, t.data + v.rows * v.cols, T(0));  // vocabulary padding
  }
  const ReadStats after = set.stats();
  return {after.bytes - before.bytes, after.pages - before.pages};
}

#define TSP_CHECKPOINT_IO_INSTANTIATE(T)                                                                   \
  template void write_tensor_set<T>(const std::string&, const std::string&,                                \
                                    const std::vector<HeldTensor<const T>>&, const TensorSetWriteOptions&, \
                                    Communicator*);                                                        \
  template void check_tensor_set<T>(const SafetensorsSetReader&, const std::vector<HeldTensor<T>>&,        \
                                    std::optional<DType>, const std::string&);                             \
  template ReadStats read_tensor_set<T>(const SafetensorsSetReader&, const std::vector<HeldTensor<T>>&);

TSP_CHECKPOINT_IO_INSTANTIATE(float)
TSP_CHECKPOINT_IO_INSTANTIATE(double)

#undef TSP_CHECKPOINT_IO_INSTANTIATE

}  // namespace tsp
