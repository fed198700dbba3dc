#include "parallel/kv_replication.h"

#include <vector>

namespace tsp {

std::unique_ptr<Communicator> kv_holder_group(const Communicator& axis, int replicas) {
  if (replicas <= 1) return nullptr;
  return std::make_unique<Communicator>(axis.split_shared(axis.rank() / replicas, axis.rank()));
}

template <class T>
int64_t replicated_kv_grad_elements(const ModelParams<T>& p) {
  const int64_t part = p.value(p.attn_block(0)).size() - p.attn_offsets().k;
  return p.config().num_hidden_layers * part;
}

template <class T>
void sum_replicated_kv_grads(ModelParams<T>& p, Communicator& holders, const char* label, GradWire<T>& wire) {
  const int64_t k0 = p.attn_offsets().k;
  std::vector<typename GradWire<T>::Pending> pending;
  int64_t slot = 0;
  for (int64_t l = 0; l < p.config().num_hidden_layers; ++l) {
    Buffer<T>& g = p.grad(p.attn_block(int(l)));
    pending.push_back(wire.iall_reduce(holders, label, g.data() + k0, g.size() - k0, slot));
    slot += g.size() - k0;
  }
  for (auto& r : pending) wire.finish(holders, r);
}

template int64_t replicated_kv_grad_elements<float>(const ModelParams<float>&);
template int64_t replicated_kv_grad_elements<double>(const ModelParams<double>&);
template void sum_replicated_kv_grads<float>(ModelParams<float>&, Communicator&, const char*,
                                             GradWire<float>&);
template void sum_replicated_kv_grads<double>(ModelParams<double>&, Communicator&, const char*,
                                              GradWire<double>&);

}  // namespace tsp
