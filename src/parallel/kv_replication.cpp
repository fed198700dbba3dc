#include "parallel/kv_replication.h"

#include <vector>

namespace tsp {

std::unique_ptr<Communicator> kv_holder_group(const Communicator& axis, int replicas) {
  if (replicas <= 1) return nullptr;
  return std::make_unique<Communicator>(axis.split_shared(axis.rank() / replicas, axis.rank()));
}

template <class T>
void sum_replicated_kv_grads(ModelParams<T>& p, Communicator& holders, const char* label) {
  const int64_t k0 = p.attn_offsets().k;
  std::vector<CommRequest> pending;
  for (int64_t l = 0; l < p.config().num_hidden_layers; ++l) {
    Buffer<T>& g = p.grad(p.attn_block(int(l)));
    pending.push_back(holders.iall_reduce(label, g.data() + k0, g.size() - k0));
  }
  for (CommRequest& r : pending) holders.wait(r);
}

template void sum_replicated_kv_grads<float>(ModelParams<float>&, Communicator&, const char*);
template void sum_replicated_kv_grads<double>(ModelParams<double>&, Communicator&, const char*);

}  // namespace tsp
