// Strategy names -> implementations. Adding a layout means one folder under parallel/ and one line here.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "parallel/strategy.h"

namespace tsp {

// How the ranks of a job are arranged; the same options for every subcommand (cli/layout_options.h).
struct StrategyOptions {
  bool keep_gathered_kv = false;   // tsp: keep the all-gathered K/V for the backward instead of re-gathering
  int tp = 0;                      // tpsp: tensor-parallel degree T (0: derived from --sp and the rank count)
  int sp = 0;                      // tpsp: sequence-parallel degree (0: derived from --tp and the rank count)
  bool sequence_parallel = false;  // tp, tpsp: Megatron-SP (norm regions sharded along the sequence)
  int dp = 1;                      // data-parallel replicas of the layout (ranks = dp x ranks per replica)
  bool zero1 = false;              // with dp > 1: shard AdamW state across the replicas (ZeRO stage 1)
  // tsp: the weight shards travel as bf16 (--weight-comm-dtype bf16; needs float32 weights and
  // --matmul-precision bf16: parallel/tsp/tsp.h).
  bool weight_comm_bf16 = false;
};

std::vector<std::string> strategy_names();

// Builds the strategy for this rank on `world`: with opts.dp = N the ranks form N replicas of world/N ranks
// each (replica r = ranks [r·M, (r+1)·M)), wrapped in data parallelism (parallel/dp/). Throws UsageError,
// identically on every rank, for an unknown name or a rank count / mesh shape the layout cannot use.
template <class T>
std::unique_ptr<Strategy<T>> make_strategy(const std::string& name, Communicator& world,
                                           const StrategyOptions& opts = {});

// The layout of one replica on `comm` (all of comm's ranks form one model replica); no data parallelism.
template <class T>
std::unique_ptr<Strategy<T>> make_replica_strategy(const std::string& name, Communicator& comm,
                                                   const StrategyOptions& opts);

}  // namespace tsp
