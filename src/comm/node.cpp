#include "comm/node.h"

#include "core/threading.h"

namespace tsp {

NodeCpuShare node_cpu_share(const Communicator& world) {
  const CpuMask mine = affinity_mask();
  NodeCpuShare s;
  s.cores = cpu_count(mine);
  if (world.size() == 1) return s;
  MPI_Comm node = MPI_COMM_NULL;
  mpi_check(MPI_Comm_split_type(world.raw(), MPI_COMM_TYPE_SHARED, world.rank(), MPI_INFO_NULL, &node),
            "MPI_Comm_split_type");
  int me = 0, n = 1;
  mpi_check(MPI_Comm_rank(node, &me), "MPI_Comm_rank");
  mpi_check(MPI_Comm_size(node, &n), "MPI_Comm_size");
  // Every rank's mask has the same number of words (CPU_SETSIZE bits).
  const int words = int(mine.size());
  std::vector<uint64_t> all(size_t(words) * size_t(n));
  const int rc = MPI_Allgather(mine.data(), words, MPI_UINT64_T, all.data(), words, MPI_UINT64_T, node);
  MPI_Comm_free(&node);
  mpi_check(rc, "MPI_Allgather (CPU sets of the node's ranks)");
  std::vector<CpuMask> masks(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r)
    masks[size_t(r)].assign(all.begin() + int64_t(r) * words, all.begin() + int64_t(r + 1) * words);
  s.local_ranks = n;
  s.ranks_sharing = ranks_sharing_cpus(masks, me);
  return s;
}

}  // namespace tsp
