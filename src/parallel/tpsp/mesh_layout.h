// Where tokens live on the TP×SP mesh (docs/layouts.md). M = T·Σ ranks form one model replica; rank m has TP
// index t = m % T and SP index s = m / T, so a TP group is T consecutive ranks. SP group s (the T ranks with
// that s) holds the zigzag positions zigzag_positions(S, Σ, s) of every sequence (all positions in order when
// Σ = 1): its "group tokens", n = B·S/Σ of them. Without Megatron-SP every rank of the TP group holds all the
// group tokens (the residual stream and the norms are replicated across TP); with it TP rank t holds the
// contiguous part t of T of the group's positions of every sequence, n_local = n/T tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "comm/communicator.h"

namespace tsp {

struct MeshLayout {
  Communicator* mesh = nullptr;  // all M ranks of the replica
  Communicator* tp = nullptr;    // the T ranks with my s (ordered by t)
  Communicator* sp = nullptr;    // the Σ ranks with my t (ordered by s)
  int tp_size = 1, tp_rank = 0, sp_size = 1, sp_rank = 0;
  bool seq_parallel = false;  // Megatron-SP: the norm regions are sharded along the sequence over TP

  int64_t batch = 0, seq_len = 0;
  int64_t group_per_seq = 0;  // S/Σ: positions of one sequence held by my SP group
  int64_t local_per_seq =
      0;                // positions of one sequence held by this rank (group_per_seq / T under Megatron-SP)
  int64_t n = 0;        // group tokens: B · group_per_seq (what the blocks compute on)
  int64_t n_local = 0;  // local tokens: B · local_per_seq (the transformer's residual stream)
  std::vector<int64_t> group_positions;        // [group_per_seq] global positions, storage order
  std::vector<int64_t> group_token_positions;  // [n] the same for every token of the batch
  std::vector<int64_t> key_positions;          // 0..S-1: gathered keys are in sequence order

  // The layout of a [batch, seq_len] step on a T x Σ mesh (communicators may be null when their axis has one
  // rank); seq_len is valid for the mesh (checked by the caller).
  static MeshLayout make(Communicator* mesh, Communicator* tp, Communicator* sp, int tp_size, int tp_rank,
                         int sp_size, int sp_rank, bool seq_parallel, int64_t batch, int64_t seq_len);
  // Positions of one sequence held by SP group s / by mesh rank (t, s), in storage order.
  static std::vector<int64_t> group_positions_of(int64_t seq_len, int sp_size, int s);
  static std::vector<int64_t> local_positions_of(int64_t seq_len, int sp_size, int s, int tp_size, int t,
                                                 bool seq_parallel);
  // Where zigzag chunk h (0 or 1) of SP group r starts in the sequence.
  int64_t chunk() const { return seq_len / (2 * sp_size); }
  int64_t chunk_start(int r, int h) const { return (h == 0 ? r : 2 * sp_size - 1 - r) * chunk(); }
  // Row, among my group's n tokens, of my local token i (the identity without Megatron-SP).
  int64_t group_row(int64_t i) const {
    return (i / local_per_seq) * group_per_seq + (seq_parallel ? tp_rank * local_per_seq : 0) +
           i % local_per_seq;
  }
};

}  // namespace tsp
