// The decode attention kernel (one query per sequence against a cache) against the naive reference
// (materialised softmax over the visible keys) in double: GQA, several sequences of different lengths, long
// caches cut into several chunks, arbitrary slot positions with slots past the query masked, rows with no
// visible slot; the merge of partial results over disjoint key sets equals attention over their union; the
// result does not depend on the thread count.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/attention.h"
#include "kernels/attention_decode.h"
#include "kernels/bf16.h"

namespace tsp::kernels {
namespace {

struct Cache {
  int64_t batch, slots, H, KV, d;
  std::vector<double> k, v;
  std::vector<int64_t> pos;  // [batch, slots]
};

Cache make_cache(int64_t batch, int64_t slots, int64_t H, int64_t KV, int64_t d, uint32_t seed) {
  Cache c{batch, slots, H, KV, d, {}, {}, {}};
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd(0, 1);
  c.k.resize(size_t(batch * slots * KV * d));
  c.v.resize(c.k.size());
  for (auto& x : c.k) x = nd(rng);
  for (auto& x : c.v) x = nd(rng);
  c.pos.resize(size_t(batch * slots));
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<int64_t> p(static_cast<size_t>(slots));
    std::iota(p.begin(), p.end(), int64_t(0));
    std::shuffle(p.begin(), p.end(), rng);  // a rank's slots need not be in position order
    std::copy(p.begin(), p.end(), c.pos.begin() + b * slots);
  }
  return c;
}

// The reference: attention_forward_naive on the first n_slots[i] slots of each row's sequence.
void reference(const Cache& c, const std::vector<double>& q, const std::vector<int64_t>& seq,
               const std::vector<int64_t>& q_pos, const std::vector<int64_t>& n_slots,
               std::vector<double>& out, std::vector<double>& lse, double scale) {
  const int64_t n = int64_t(seq.size()), H = c.H, d = c.d, w = c.KV * d;
  out.assign(size_t(n * H * d), 0);
  lse.assign(size_t(n * H), 0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t b = seq[size_t(i)];
    AttentionShape a{1, n_slots[size_t(i)], H, c.KV, d};
    attention_forward_naive(out.data() + i * H * d, lse.data() + i * H, q.data() + i * H * d,
                            c.k.data() + b * c.slots * w, c.v.data() + b * c.slots * w, &q_pos[size_t(i)],
                            c.pos.data() + b * c.slots, a, scale);
  }
}

TEST(AttentionDecode, MatchesNaiveAcrossChunksGqaAndMasks) {
  const int64_t H = 6, KV = 2, d = 8, slots = 1700;
  const Cache c = make_cache(3, slots, H, KV, d, 5);
  // Row 0: a long cache (several chunks) with positions past the query masked; row 1: a short one; row 2:
  // the same sequence as row 0 at an earlier position; row 3: no visible slot at all.
  const std::vector<int64_t> seq = {0, 1, 0, 2}, q_pos = {1200, 40, 300, -1}, n_slots = {1650, 64, 1650, 900};
  std::mt19937 rng(9);
  std::normal_distribution<double> nd(0, 1);
  std::vector<double> q(seq.size() * size_t(H * d));
  for (auto& x : q) x = nd(rng);
  const double scale = 1.0 / std::sqrt(double(d));
  std::vector<double> want, want_lse;
  reference(c, q, seq, q_pos, n_slots, want, want_lse, scale);
  std::vector<int64_t> slot_pos;
  for (int64_t b : seq)
    slot_pos.insert(slot_pos.end(), c.pos.begin() + b * slots, c.pos.begin() + (b + 1) * slots);
  std::vector<double> out(want.size()), lse(want_lse.size());
  const DecodeAttentionShape s{H, KV, d, KV * d, slots * KV * d};
  attention_decode(out.data(), lse.data(), q.data(), c.k.data(), c.v.data(), int64_t(seq.size()), seq.data(),
                   q_pos.data(), n_slots.data(), slot_pos.data(), slots, s, scale);
  for (size_t j = 0; j < want.size(); ++j) EXPECT_NEAR(out[j], want[j], 1e-12) << j;
  for (size_t j = 0; j < want_lse.size(); ++j) {
    if (std::isinf(want_lse[j])) {
      EXPECT_TRUE(std::isinf(lse[j]) && lse[j] < 0) << j;
    } else {
      EXPECT_NEAR(lse[j], want_lse[j], 1e-12) << j;
    }
  }
  for (int64_t j = 0; j < H * d; ++j) EXPECT_EQ(out[size_t(3 * H * d + j)], 0.0);

  // Slot s holding position s (slot_pos null) is the same as the identity list.
  std::vector<int64_t> identity(static_cast<size_t>(slots));
  std::iota(identity.begin(), identity.end(), int64_t(0));
  std::vector<int64_t> id_rows;
  for (size_t i = 0; i < seq.size(); ++i) id_rows.insert(id_rows.end(), identity.begin(), identity.end());
  std::vector<double> a(want.size()), al(want_lse.size()), b(want.size()), bl(want_lse.size());
  attention_decode(a.data(), al.data(), q.data(), c.k.data(), c.v.data(), int64_t(seq.size()), seq.data(),
                   q_pos.data(), n_slots.data(), id_rows.data(), slots, s, scale);
  attention_decode(b.data(), bl.data(), q.data(), c.k.data(), c.v.data(), int64_t(seq.size()), seq.data(),
                   q_pos.data(), n_slots.data(), nullptr, 0, s, scale);
  EXPECT_EQ(a, b);
}

// The bf16 policy's KV cache (bf16 bits, widened as read) is attention on the keys and values rounded to
// bf16: bit for bit what the fp32 kernel gives on a float cache holding those rounded values (widening is
// exact and the arithmetic is the same), and not what it gives on the unrounded cache (the rounding is real).
TEST(AttentionDecode, Bf16CacheIsAttentionOnTheRoundedKeysAndValues) {
  const int64_t H = 4, KV = 2, d = 16, slots = 700;
  const Cache c = make_cache(2, slots, H, KV, d, 7);
  std::vector<uint16_t> k16(c.k.size()), v16(c.v.size());
  std::vector<float> kr(c.k.size()), vr(c.v.size()), kf(c.k.size()), vf(c.v.size());
  for (size_t j = 0; j < c.k.size(); ++j) {
    kf[j] = float(c.k[j]);
    vf[j] = float(c.v[j]);
    k16[j] = float_to_bf16(kf[j]);
    v16[j] = float_to_bf16(vf[j]);
    kr[j] = bf16_to_float(k16[j]);
    vr[j] = bf16_to_float(v16[j]);
  }
  const std::vector<int64_t> seq = {0, 1, 0}, q_pos = {650, 30, 200}, n_slots = {690, 40, 690};
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> q(seq.size() * size_t(H * d));
  for (auto& x : q) x = nd(rng);
  std::vector<int64_t> slot_pos;
  for (int64_t b : seq)
    slot_pos.insert(slot_pos.end(), c.pos.begin() + b * slots, c.pos.begin() + (b + 1) * slots);
  const DecodeAttentionShape s{H, KV, d, KV * d, slots * KV * d};
  const double scale = 1.0 / std::sqrt(double(d));
  auto run = [&](const auto* k, const auto* v) {
    std::vector<float> out(q.size()), lse(seq.size() * size_t(H));
    attention_decode(out.data(), lse.data(), q.data(), k, v, int64_t(seq.size()), seq.data(), q_pos.data(),
                     n_slots.data(), slot_pos.data(), slots, s, scale);
    out.insert(out.end(), lse.begin(), lse.end());
    return out;
  };
  const std::vector<float> bf16 = run(k16.data(), v16.data());
  EXPECT_EQ(bf16, run(kr.data(), vr.data()));
  EXPECT_NE(bf16, run(kf.data(), vf.data()));
}

TEST(AttentionDecode, ResultDoesNotDependOnThreads) {
  const int64_t H = 8, KV = 8, d = 32, slots = 6000;  // above the threading threshold
  const Cache c = make_cache(1, slots, H, KV, d, 7);
  std::vector<double> q(size_t(H * d), 0.3);
  const std::vector<int64_t> seq = {0}, q_pos = {slots - 1}, n_slots = {slots};
  const DecodeAttentionShape s{H, KV, d, KV * d, slots * KV * d};
  std::vector<double> o1(size_t(H * d)), l1(static_cast<size_t>(H)), o2 = o1, l2 = l1;
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  attention_decode(o1.data(), l1.data(), q.data(), c.k.data(), c.v.data(), 1, seq.data(), q_pos.data(),
                   n_slots.data(), nullptr, 0, s, 0.2);
  omp_set_num_threads(2);
  attention_decode(o2.data(), l2.data(), q.data(), c.k.data(), c.v.data(), 1, seq.data(), q_pos.data(),
                   n_slots.data(), nullptr, 0, s, 0.2);
  omp_set_num_threads(saved);
  EXPECT_EQ(o1, o2);
  EXPECT_EQ(l1, l2);
}

// KV-parallel decoding: attention over disjoint parts of the keys, merged by log-sum-exp, is attention over
// all of them (a part with no visible key contributes nothing).
TEST(AttentionDecode, MergeOfPartsIsTheWhole) {
  const int64_t H = 4, KV = 2, d = 8, slots = 90, parts = 3;
  const Cache c = make_cache(1, slots, H, KV, d, 3);
  std::vector<double> q(size_t(H * d));
  std::mt19937 rng(4);
  std::normal_distribution<double> nd(0, 1);
  for (auto& x : q) x = nd(rng);
  const int64_t q_pos = 59;  // the last part's slots all lie past it once sorted below
  std::vector<int64_t> pos(static_cast<size_t>(slots));
  std::iota(pos.begin(), pos.end(), int64_t(0));
  const double scale = 0.3;
  std::vector<double> whole(size_t(H * d)), whole_lse(static_cast<size_t>(H));
  AttentionShape a{1, slots, H, KV, d};
  attention_forward_naive(whole.data(), whole_lse.data(), q.data(), c.k.data(), c.v.data(), &q_pos,
                          pos.data(), a, scale);
  // Parts: slots [0, 30), [30, 60), [60, 90) in storage order.
  std::vector<double> po(size_t(parts * H * d)), pl(size_t(parts * H));
  for (int64_t p = 0; p < parts; ++p) {
    AttentionShape ap{1, slots / parts, H, KV, d};
    attention_forward_naive(po.data() + p * H * d, pl.data() + p * H, q.data(), c.k.data() + p * 30 * KV * d,
                            c.v.data() + p * 30 * KV * d, &q_pos, pos.data() + p * 30, ap, scale);
  }
  std::vector<double> out(size_t(H * d)), lse(static_cast<size_t>(H));
  attention_merge(out.data(), d, lse.data(), po.data(), H * d, pl.data(), H, parts, H, d);
  for (int64_t j = 0; j < H * d; ++j) EXPECT_NEAR(out[size_t(j)], whole[size_t(j)], 1e-13);
  for (int64_t j = 0; j < H; ++j) EXPECT_NEAR(lse[size_t(j)], whole_lse[size_t(j)], 1e-13);
}

}  // namespace
}  // namespace tsp::kernels

namespace tsp::kernels {
namespace {

// A NaN score must reach the output (and so the loss), never be skipped as if the key were masked: prefill
// and decode kernels, float and double, and the merge of partials.
template <class T>
void expect_nan_propagates() {
  const int64_t n = 8, H = 2, d = 4;
  std::vector<T> q(size_t(n * H * d), T(0.1)), k(q.size(), T(0.2)), v(q.size(), T(1)), o(q.size()),
      lse(size_t(n * H));
  q[0] = std::numeric_limits<T>::quiet_NaN();  // token 0, head 0
  std::vector<int64_t> pos(static_cast<size_t>(n));
  std::iota(pos.begin(), pos.end(), int64_t(0));
  const AttentionShape s{n, n, H, H, d};
  attention_forward(o.data(), lse.data(), q.data(), k.data(), v.data(), pos.data(), pos.data(), s, 0.5);
  EXPECT_TRUE(std::isnan(o[0]) && std::isnan(lse[0]));
  EXPECT_TRUE(std::isfinite(o[size_t(d)]) && std::isfinite(lse[1]));  // token 0, head 1
  std::vector<T> od(static_cast<size_t>(H * d)), ld(static_cast<size_t>(H));
  const int64_t seq = 0, qp = n - 1, ns = n;
  const DecodeAttentionShape ds{H, H, d, H * d, n * H * d};
  attention_decode(od.data(), ld.data(), q.data(), k.data(), v.data(), 1, &seq, &qp, &ns, nullptr, 0, ds,
                   0.5);
  EXPECT_TRUE(std::isnan(od[0]) && std::isnan(ld[0]));
  EXPECT_TRUE(std::isfinite(od[size_t(d)]) && std::isfinite(ld[1]));
  // Merging a NaN part with a finite one gives NaN.
  const T parts_out[2] = {T(1), T(2)}, parts_lse[2] = {std::numeric_limits<T>::quiet_NaN(), T(0)};
  T mo = 0, ml = 0;
  attention_merge(&mo, 1, &ml, parts_out, 1, parts_lse, 1, 2, 1, 1);
  EXPECT_TRUE(std::isnan(mo) && std::isnan(ml));
}

TEST(AttentionKernels, NanScoresPropagate) {
  expect_nan_propagates<float>();
  expect_nan_propagates<double>();
}

}  // namespace
}  // namespace tsp::kernels
