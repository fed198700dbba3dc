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

std::vector<int64_t> MeshLayout::local_positions_of(int64_t seq_len, int sp_size, int s, int tp_size, int t,
                                                    bool seq_parallel) {
  std::vector<int64_t> group = group_positions_of(seq_len, sp_size, s);
  if (!seq_parallel) return group;
  const int64_t part = int64_t(group.size()) / tp_size;
  return {group.begin() + t * part, group.begin() + (t + 1) * part};
}

}  // namespace tsp
