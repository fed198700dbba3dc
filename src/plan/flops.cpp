// Matmul FLOPs per rank per step (2·m·n·k per GEMM). Elementwise work (norms, RoPE, SwiGLU, softmax
// exponentials) is left out: it is a few percent of a step at these sizes and runs at memory speed anyway.
#include "plan/sizes.h"

namespace tsp::plan {

double predict_flops(const Sizes& z, const LayoutSpec& lay, Recompute rc) {
  const double BS = double(z.BS), L = double(z.L), h = double(z.h);
  // Under KV-head replication each of the T holders projects its KV head itself: T·kvd_s channels in all.
  const double kv_channels = double(z.T * z.kvd_s);
  const double qkv = 2 * h * (double(z.qd) + 2 * kv_channels), out = 2 * double(z.qd) * h,
               mlp = 6 * h * double(z.I);
  // Causal attention: S(S+1)/2 query-key pairs per sequence, two GEMMs (QKᵀ and PV) of q_dim each.
  const double attn = 4 * double(z.B) * double(z.qd) * double(z.S) * double(z.S + 1) / 2;
  const double head = 2 * BS * h * double(z.V);
  const double fwd_layers = L * (BS * (qkv + out + mlp) + attn);
  const double fwd = fwd_layers + head;
  // Backward: two GEMMs per forward GEMM (input and weight gradients); flash attention recomputes QKᵀ and
  // runs dV, dP, dQ, dK: 5 GEMMs for the forward's 2.
  double bwd = 2 * (fwd - L * attn) + 2.5 * L * attn;
  double extra = head;  // the LM head's logits are recomputed shard by shard in the backward (online LSE)
  if (lay.kind == Kind::single) extra = 0;  // single keeps its logits buffer from the forward
  if (rc == Recompute::selective) extra += L * BS * (qkv + 4 * h * double(z.I));  // q, k, v and gate, up
  if (rc == Recompute::full) extra += fwd_layers;
  return (fwd + bwd + extra) / double(lay.ranks());
}

}  // namespace tsp::plan
