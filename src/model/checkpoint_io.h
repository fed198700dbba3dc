// Tensor I/O of sharded-in-memory models: every rank holds blocks of HF tensors (TensorView: rows/columns of
// its head group, intermediate shard, vocabulary shard, or the whole tensor when replicated), and a
// checkpoint holds the whole HF tensors.
//
// Reading is local: each rank copies its own blocks out of the memory-mapped files, nothing else, so a rank
// reads about 1/D of a model sharded D ways and allocates nothing beyond its own parameters.
//
// Writing is collective and streams: the ranks agree on which rank writes each distinct block (a block held
// by several ranks -- replicated norms, the sequence-parallel copies of a mesh, replicated KV heads -- is
// written once, from the lowest rank holding it), and rank 0 receives the blocks in bounded chunks and writes
// each chunk at its offset in the shard files. No rank ever holds more than its own parameters plus two chunk
// buffers: the whole model is never assembled anywhere.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "model/params.h"
#include "model/safetensors_index.h"

namespace tsp {

// A block of one HF tensor held by this rank: `data` holds view.rows x view.cols values, row-major; rows at
// and after view.valid_rows are padding (not in the HF tensor). view.name is the name in the file.
template <class T>
struct HeldTensor {
  TensorView view;
  T* data = nullptr;
};

struct TensorSetWriteOptions {
  DType dtype = DType::F32;  // the stored format (values are converted, rounding to even)
  int64_t max_shard_bytes = kDefaultMaxShardBytes;  // above this the set is split into shards with an index
  int64_t chunk_bytes = 16 << 20;                   // rank 0's receive buffers (two of them)
  std::map<std::string, std::string> metadata = {{"format", "pt"}};
};

// Collective over `comm` (null: this rank alone). Every rank passes the same tensors (names and full shapes,
// in the same order; file order follows it) with its own blocks, and together the distinct blocks must tile
// every tensor exactly; otherwise every rank throws the same error before anything is written. Rank 0 writes
// the set `stem` into the existing directory `dir` (see safetensors_index.h); returns when the files are
// complete, on every rank.
template <class T>
void write_tensor_set(const std::string& dir, const std::string& stem,
                      const std::vector<HeldTensor<const T>>& held, const TensorSetWriteOptions& opts,
                      Communicator* comm);

// Checks that every held tensor is in the set with the view's full shape (and, when given, the dtype
// `expect_dtype`; `dtype_source` says where that expectation comes from, for the message). Run it on every
// set before reading any of them, so that a mismatched checkpoint is refused before anything is loaded.
template <class T>
void check_tensor_set(const SafetensorsSetReader& set, const std::vector<HeldTensor<T>>& held,
                      std::optional<DType> expect_dtype, const std::string& dtype_source);

// Copies this rank's block of every held tensor out of the set, converting to T, and zeroes padding rows.
// Returns what was copied (the set's stats() keep the running total).
template <class T>
ReadStats read_tensor_set(const SafetensorsSetReader& set, const std::vector<HeldTensor<T>>& held);

}  // namespace tsp
