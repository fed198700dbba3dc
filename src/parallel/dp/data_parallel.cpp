#include "parallel/dp/data_parallel.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "comm/communicator.h"
#include "core/check.h"
#include "core/precision.h"
#include "kernels/bf16.h"

namespace tsp {

template <class T>
DataParallel<T>::DataParallel(const std::string& name, Communicator& world, const StrategyOptions& opts)
    : zero1_(opts.zero1) {
  const int N = opts.dp, M = world.size() / N;
  replica_ = world.rank() / M;
  // Both axes count into the job's one set of counters (and share its phase).
  model_ = std::make_unique<Communicator>(world.split_shared(replica_, world.rank()));
  dp_ = std::make_unique<Communicator>(world.split_shared(world.rank() % M, world.rank()));
  StrategyOptions inner = opts;
  inner.dp = 1;
  inner.zero1 = false;
  inner_ = make_replica_strategy<T>(name, *model_, inner);
}

template <class T>
void DataParallel<T>::validate(const ModelConfig& c, int64_t batch, int64_t seq_len) const {
  TSP_REQUIRE(batch > 0 && batch % dp_->size() == 0,
              "--batch {} must be a positive multiple of --dp {}: every replica takes batch/dp sequences",
              batch, dp_->size());
  inner_->validate(c, batch / dp_->size(), seq_len);
}

template <class T>
Range DataParallel<T>::batch_range(int64_t batch) const {
  const int64_t per = batch / dp_->size();
  return {int64_t(replica_) * per, per};
}

template <class T>
void DataParallel<T>::prepare(ModelParams<T>& p, int64_t batch, int64_t seq_len) {
  inner_->prepare(p, batch / dp_->size(), seq_len);
  local_batch_ = batch / dp_->size();
  seq_len_ = seq_len;
  const bool grad16 = bf16_grad_reduce<T>();
  if (!zero1_) {
    // Every block's sum is in flight at once: under --grad-reduce-dtype bf16 a mirror of all of them.
    int64_t all_grads = 0;
    for (int b = 0; b < p.num_blocks(); ++b) all_grads += p.grad(b).size();
    grad_wire_.prepare(all_grads);
    return;
  }
  int64_t largest = 0;
  for (int b = 0; b < p.num_blocks(); ++b) largest = std::max(largest, p.value(b).size());
  // The reduce-scatter's padded block and chunk, in T or (--grad-reduce-dtype bf16) bf16; the all-gather of
  // the updated parameters uses them in T (the master weights).
  padded_.allocate(chunk(largest) * dp_->size(), grad16 ? chunk(largest) * dp_->size() : 0,
                   Mem::communication);
  chunk_.allocate(chunk(largest), grad16 ? chunk(largest) : 0, Mem::communication);
}

template <class T>
void DataParallel<T>::set_phase(const std::string& phase) {
  inner_->set_phase(phase);
  model_->set_phase(phase);  // shared with the DP axis
}

template <class T>
void DataParallel<T>::sum_over_tokens(double* v, int n, const char* label) {
  inner_->sum_over_tokens(v, n, label);
  dp_->all_reduce("dp.loss_allreduce", v, int64_t(n));
}

template <class T>
void DataParallel<T>::reduce_replicated_grads(ModelParams<T>& p) {
  inner_->reduce_replicated_grads(p);
  const int N = dp_->size();
  if (!zero1_) {
    // Every block's all-reduce is in flight at once; MPI progresses them while we wait on the first.
    std::vector<typename GradWire<T>::Pending> pending;
    int64_t slot = 0;
    for (int b = 0; b < p.num_blocks(); ++b) {
      pending.push_back(
          grad_wire_.iall_reduce(*dp_, "dp.grad_allreduce", p.grad(b).data(), p.grad(b).size(), slot));
      slot += p.grad(b).size();
    }
    for (auto& r : pending) grad_wire_.finish(*dp_, r);
    return;
  }
  // ZeRO-1: replica r needs only the sum of chunk r of every block (the part its optimizer updates).
  const bool grad16 = bf16_grad_reduce<T>();
  for (int b = 0; b < p.num_blocks(); ++b) {
    Buffer<T>& g = p.grad(b);
    const int64_t n = g.size(), c = chunk(n);
    const Range own = optimizer_range(n);
    if constexpr (std::is_same_v<T, float>)
      if (grad16) {
        uint16_t* padded = padded_.bf16();
        kernels::to_bf16(g.data(), n, padded);
        std::fill(padded + n, padded + c * N, uint16_t(0));
        dp_->reduce_scatter("dp.grad_reducescatter", static_cast<const uint16_t*>(padded), chunk_.bf16(), c);
        kernels::from_bf16(chunk_.bf16(), own.size, g.data() + own.begin);
        continue;
      }
    std::memcpy(padded_.t(), g.data(), sizeof(T) * size_t(n));
    std::fill(padded_.t() + n, padded_.t() + c * N, T(0));
    dp_->reduce_scatter("dp.grad_reducescatter", static_cast<const T*>(padded_.t()), chunk_.t(), c);
    std::memcpy(g.data() + own.begin, chunk_.t(), sizeof(T) * size_t(own.size));
  }
}

template <class T>
Range DataParallel<T>::optimizer_range(int64_t numel) const {
  if (!zero1_) return {0, numel};
  const int64_t c = chunk(numel), begin = std::min(numel, int64_t(dp_->rank()) * c);
  return {begin, std::min(c, numel - begin)};
}

template <class T>
void DataParallel<T>::sum_over_optimizer_partitions(double* v, int n, const char* label) {
  if (zero1_) dp_->all_reduce(label, v, int64_t(n));
}

template <class T>
void DataParallel<T>::gather_partitions(T* block, int64_t numel, const char* label) {
  if (!zero1_) return;
  const int64_t c = chunk(numel);
  const Range own = optimizer_range(numel);
  std::fill(chunk_.t(), chunk_.t() + c, T(0));
  std::memcpy(chunk_.t(), block + own.begin, sizeof(T) * size_t(own.size));
  dp_->all_gather(label, static_cast<const T*>(chunk_.t()), padded_.t(), c);
  std::memcpy(block, padded_.t(), sizeof(T) * size_t(numel));
}

template <class T>
void DataParallel<T>::gather_token_rows(const T* local, T* full, int64_t cols) {
  // The replica's rows [local_batch·S, cols] land in its slot of the global batch, replicas in order.
  const int64_t rows = local_batch_ * seq_len_ * cols;
  Buffer<T> mine(rows, Mem::workspace);
  inner_->gather_token_rows(local, mine.data(), cols);
  dp_->all_gather("dp.token_rows_allgather", mine.data(), full, rows);
}

template <class T>
std::unique_ptr<Strategy<T>> make_data_parallel(const std::string& name, Communicator& world,
                                                const StrategyOptions& opts) {
  return std::make_unique<DataParallel<T>>(name, world, opts);
}

template class DataParallel<float>;
template class DataParallel<double>;
template std::unique_ptr<Strategy<float>> make_data_parallel<float>(const std::string&, Communicator&,
                                                                    const StrategyOptions&);
template std::unique_ptr<Strategy<double>> make_data_parallel<double>(const std::string&, Communicator&,
                                                                      const StrategyOptions&);

}  // namespace tsp
