// The ranks that share this rank's node: how many there are and how many compete for this rank's CPUs.
// Used to choose threads per rank (core/threading.h). Collective over `world`; not counted as communication.
#pragma once

#include "comm/communicator.h"

namespace tsp {

struct NodeCpuShare {
  int cores = 1;          // CPUs in this rank's affinity mask
  int local_ranks = 1;    // ranks on this node (MPI_COMM_TYPE_SHARED)
  int ranks_sharing = 1;  // of those, ranks whose CPU sets overlap this rank's (this one included)
};

NodeCpuShare node_cpu_share(const Communicator& world);

}  // namespace tsp
