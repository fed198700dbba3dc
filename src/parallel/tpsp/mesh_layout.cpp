#include "parallel/tpsp/mesh_layout.h"

#include <numeric>

#include "parallel/layout.h"

namespace tsp {

std::vector<int64_t> MeshLayout::group_positions_of(int64_t seq_len, int sp_size, int s) {
  if (sp_size > 1) return zigzag_positions(seq_len, sp_size, s);
  // One SP group holds the whole sequence, in order (no zigzag needed: nothing to balance).
  std::vector<int64_t> pos(static_cast<size_t>(seq_len));
  std::iota(pos.begin(), pos.end(), int64_t(0));
  return pos;
}

MeshLayout MeshLayout::make(Communicator* mesh, Communicator* tp, Communicator* sp, int tp_size, int tp_rank,
                            int sp_size, int sp_rank, bool seq_parallel, int64_t batch, int64_t seq_len) {
  MeshLayout L;
  L.mesh = mesh;
  L.tp = tp;
  L.sp = sp;
  L.tp_size = tp_size;
  L.tp_rank = tp_rank;
  L.sp_size = sp_size;
  L.sp_rank = sp_rank;
  L.seq_parallel = seq_parallel;
  L.batch = batch;
  L.seq_len = seq_len;
  L.group_positions = group_positions_of(seq_len, sp_size, sp_rank);
  L.group_per_seq = int64_t(L.group_positions.size());
  L.local_per_seq = seq_parallel ? L.group_per_seq / tp_size : L.group_per_seq;
  L.n = batch * L.group_per_seq;
  L.n_local = batch * L.local_per_seq;
  L.group_token_positions.resize(size_t(L.n));
  for (int64_t i = 0; i < L.n; ++i)
    L.group_token_positions[size_t(i)] = L.group_positions[size_t(i % L.group_per_seq)];
  L.key_positions.resize(size_t(seq_len));
  std::iota(L.key_positions.begin(), L.key_positions.end(), int64_t(0));
  return L;
}

std::vector<int64_t> MeshLayout::local_positions_of(int64_t seq_len, int sp_size, int s, int tp_size, int t,
                                                    bool seq_parallel) {
  std::vector<int64_t> group = group_positions_of(seq_len, sp_size, s);
  if (!seq_parallel) return group;
  const int64_t part = int64_t(group.size()) / tp_size;
  return {group.begin() + t * part, group.begin() + (t + 1) * part};
}

}  // namespace tsp
