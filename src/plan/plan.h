// tsp plan: a closed-form model of memory, communication, FLOPs and step time per rank for every layout
// (docs/planning.md). With the runtime's policies (Policy::runtime for float32/float64, Policy::runtime_bf16
// for --dtype bf16 with its --optimizer-dtype and --grad-reduce-dtype) and the runtime's own recompute, the
// memory categories and every (phase, label) communication count equal what the runtime measures; other
// combinations (float64 moments, no master, other recompute modes) are what-ifs on top.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/config.h"

namespace tsp::plan {

enum class Kind { single, tp, sp, tpsp, tsp };

// One model replica's layout on `ranks()` devices, optionally replicated `dp` times.
struct LayoutSpec {
  Kind kind = Kind::single;
  int tp = 1;                      // tensor-parallel degree T (tp, tpsp); the TSP degree D for tsp
  int sp = 1;                      // sequence-parallel degree Σ (sp, tpsp)
  bool sequence_parallel = false;  // Megatron-SP: norm regions sharded along the sequence (tp, tpsp)
  bool keep_gathered_kv = false;   // tsp: keep the all-gathered K/V for the backward
  int dp = 1;                      // data-parallel replicas
  bool zero1 = false;              // with dp > 1: AdamW state sharded over the replicas

  // The layouts by name, as the runtime's --strategy flags build them (dp/zero1 can be set afterwards).
  static LayoutSpec single() { return {}; }
  static LayoutSpec make_tp(int T, bool seqpar = false) { return {Kind::tp, T, 1, seqpar}; }
  static LayoutSpec make_sp(int S) { return {Kind::sp, 1, S}; }
  static LayoutSpec make_tpsp(int T, int S, bool seqpar = false) { return {Kind::tpsp, T, S, seqpar}; }
  static LayoutSpec make_tsp(int D, bool keep_gathered_kv = false) {
    return {Kind::tsp, D, 1, false, keep_gathered_kv};
  }

  int ranks() const { return tp * sp; }  // ranks per replica (D for tsp, where sp == 1)
  // "single", "tp", "tp-sp", "sp", "tpsp", "tsp" (the runtime's --strategy name, "tp-sp" for tp with
  // --sequence-parallel).
  std::string name() const;
  // The runtime flags that run this layout, e.g. "--strategy tpsp --tp 2 --sp 4 --dp 2".
  std::string runtime_flags() const;
};

// The shape of one step. micro_batch is the sequences each replica processes: the runtime's --batch is the
// global batch, micro_batch · dp.
struct RunShape {
  int64_t micro_batch = 1;
  int64_t seq_len = 0;
};

enum class Recompute {
  runtime,    // what the runtime does for the layout: none for single, selective for tsp and the mesh
  none,       // keep every block activation (q, k, v, o, lse, gate, up)
  selective,  // keep o and lse; recompute q/k/v and the MLP's gate/up in the backward (TSP's policy)
  full,       // keep only each layer's input; recompute the whole layer in the backward
};

// Bytes per element of every kind of tensor. The runtime's float32/float64 runs are one size throughout;
// its bf16 policy (--dtype bf16, src/core/precision.h, docs/precision.md) mixes them.
struct Policy {
  int weight_bytes = 4;     // the weights the model computes with (parameters): 4 float32, 8 float64, 2 bf16
  int grad_bytes = 4;       // gradients, accumulated
  int optimizer_bytes = 4;  // each AdamW moment
  // A full-precision master of narrower weights, counted under optimizer state. Whole on every replica (the
  // runtime's: ZeRO-1 splits the moments, not the master).
  bool master_weights = false;
  int master_bytes = 4;
  int compute_bytes = 4;      // workspace, statistics (log-sum-exp, inverse RMS), buffers of T
  int activation_bytes = 4;   // saved activations; narrower than compute_bytes, each saved tensor is
                              // computed in a working buffer of compute_bytes (parallel/stash.h)
  int act_wire_bytes = 4;     // activations on the wire: K/V and TP gathers, the forward's TP sums
  int grad_wire_bytes = 4;    // gradient sums on the wire (--grad-reduce-dtype)
  int weight_wire_bytes = 4;  // TSP's weight shards on the wire and in their buffers
  Recompute recompute = Recompute::runtime;
  bool stash_narrow() const { return activation_bytes < compute_bytes; }
  // The runtime's policy for element type T: sizeof(T) everywhere, no master copy, its recompute.
  static Policy runtime(int element_bytes) {
    Policy p;
    p.weight_bytes = p.grad_bytes = p.optimizer_bytes = p.compute_bytes = p.activation_bytes =
        p.act_wire_bytes = p.grad_wire_bytes = p.weight_wire_bytes = element_bytes;
    return p;
  }
  // The runtime's --dtype bf16: bf16 weights, saved activations and activation and weight traffic; fp32
  // compute, gradients and master; moments and gradient sums in fp32 unless bf16_moments / bf16_grad_reduce.
  static Policy runtime_bf16(bool bf16_moments = false, bool bf16_grad_reduce = false) {
    Policy p = runtime(4);
    p.weight_bytes = p.activation_bytes = p.act_wire_bytes = p.weight_wire_bytes = 2;
    p.master_weights = true;
    if (bf16_moments) p.optimizer_bytes = 2;
    if (bf16_grad_reduce) p.grad_wire_bytes = 2;
    return p;
  }
};

// One (phase, label): what the runtime's CommCounter records (src/comm/communicator.h).
struct CommEntry {
  std::string op;
  int64_t calls = 0;
  int64_t payload_bytes = 0;
  int64_t recv_bytes = 0;
  bool dp_axis = false;  // moved between replicas (inter-node bandwidth in the time model)
  bool overlappable =
      true;  // weight traffic that can be prefetched; activation traffic is on the critical path
};
using CommByLabel = std::map<std::string, std::map<std::string, CommEntry>>;  // phase -> label -> entry

struct Memory {
  int64_t parameters = 0, gradients = 0, optimizer = 0, activations = 0;
  int64_t communication = 0;  // communication buffers, allocated once (exact)
  int64_t workspace = 0;      // estimate: the named per-step scratch buffers, not kernel-internal tiles
  int64_t transient() const { return communication + workspace; }
  int64_t total() const { return parameters + gradients + optimizer + activations + transient(); }
};

struct Prediction {
  LayoutSpec layout;
  bool applicable = true;
  std::string reason;                                  // why not, when !applicable
  Memory memory;                                       // per rank, bytes
  CommByLabel comm;                                    // per rank per step
  double flops = 0;                                    // per rank per step (forward + backward + recompute)
  int64_t comm_bytes(const std::string& phase) const;  // received bytes summed over labels
};

// The prediction for one layout; never throws for a layout the model cannot run (applicable = false).
// Throws UsageError for a non-positive shape or degree.
Prediction predict(const ModelConfig& c, const LayoutSpec& layout, const RunShape& shape,
                   const Policy& policy);

// Every layout on `ranks` devices per replica: single (only when ranks == 1), tp, tp-sp, sp, tpsp for every
// factorisation T×Σ = ranks with T, Σ > 1 (restricted to --tp/--sp when given), tsp.
std::vector<LayoutSpec> layouts_for(int ranks, int dp, bool zero1, int only_tp = 0, int only_sp = 0);

// --- Time model (profiles.cpp) ---
struct DeviceProfile {
  std::string name, description, source;
  double matmul_flops_fp32 = 0;   // peak dense matmul FLOP/s per device, float32
  double matmul_flops_bf16 = 0;   // peak dense matmul FLOP/s per device, bf16
  double matmul_efficiency = 1;   // achieved fraction of peak for a transformer step
  double link_bytes_per_s = 0;    // effective per-device bandwidth inside the model-parallel group
  double dp_bytes_per_s = 0;      // effective per-device bandwidth between replicas (inter-node)
  double latency_s = 0;           // per collective call
  int64_t memory_bytes = 0;       // device memory (the default budget)
  double memory_bytes_per_s = 0;  // memory bandwidth (decode reads every weight and the KV cache per token);
                                  // 0: not modelled
  // A CPU host whose cores and memory the ranks share (cpu-this-machine): matmul rates are per core and
  // memory_bytes is the whole host's; device_for_ranks() turns them into one rank's share.
  int host_cores = 0;  // 0: a device per rank (GPU-like profiles)
};
// A built-in profile by name, or a JSON profile file (a path ending in .json or naming a file:
// profile_file.cpp); UsageError naming the allowed profiles, or the file and field at fault.
const DeviceProfile& device_profile(const std::string& name);
bool is_profile_file(const std::string& device);
DeviceProfile load_device_profile(const std::string& path);
const DeviceProfile& device_profile_from_file(const std::string& path);
std::vector<std::string> device_profile_names();
// The profile as one of `ranks` ranks sees it: a shared host (host_cores > 0) gives each rank
// max(1, cores / ranks) cores' matmul rate (a fraction of one when ranks outnumber cores; tsp runs that many
// threads per rank, core/threading.h) and 1/ranks of the memory; any other profile is returned unchanged.
DeviceProfile device_for_ranks(const DeviceProfile& dev, int ranks);
// "80GB", "192GiB", "512MiB", "1e9" (bytes); UsageError otherwise.
int64_t parse_bytes(const std::string& text);

struct Projection {
  double compute_s = 0, comm_s = 0, exposed_comm_s = 0;
  double step_s_no_overlap = 0, step_s_overlap = 0;
  double tokens_per_s_no_overlap = 0, tokens_per_s = 0;  // all replicas together
};
Projection project(const Prediction& p, const RunShape& shape, const Policy& policy,
                   const DeviceProfile& dev);

}  // namespace tsp::plan
