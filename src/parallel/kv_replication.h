// KV-head replication (model/params.h): when the heads are split over more ranks than there are KV heads,
// each KV head is held by `replicas` consecutive ranks of the head-sharding axis (TSP's D ranks, the mesh's
// TP group), and each holder's gradient of it is a partial sum over its own query heads. After the backward
// the holders all-reduce the key/value part of every attention block (weights and biases: one contiguous
// range per layer, AttnOffsets::k to the end), so that every copy holds the full gradient and AdamW keeps
// the copies identical. The forward needs nothing: every holder computes the same K and V.
#pragma once

#include <memory>

#include "comm/communicator.h"
#include "model/params.h"
#include "parallel/grad_wire.h"

namespace tsp {

// Collective over `axis`: the communicator of the ranks holding the same KV heads as this one (rank r of
// the axis is in group r / replicas), sharing axis' counters; null when replicas == 1.
std::unique_ptr<Communicator> kv_holder_group(const Communicator& axis, int replicas);

// All-reduces the key/value gradients of every layer over the holders (posted together, waited together),
// through `wire` (grad_wire.h; its mirror holds replicated_kv_grad_elements(p) from slot 0 under bf16).
template <class T>
void sum_replicated_kv_grads(ModelParams<T>& p, Communicator& holders, const char* label, GradWire<T>& wire);
template <class T>
int64_t replicated_kv_grad_elements(const ModelParams<T>& p);

}  // namespace tsp
