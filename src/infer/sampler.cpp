#include "infer/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/check.h"
#include "core/trace.h"

namespace tsp {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();
constexpr int64_t kNoToken = -1;

// splitmix64's finaliser: a bijection of 64-bit words with good avalanche.
uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Larger score wins; equal scores go to the lower token id (the single-device argmax's choice); any token
// beats none (kNoToken).
bool better(double s, int64_t id, double best_s, int64_t best_id) {
  if (best_id == kNoToken) return id != kNoToken;
  return s > best_s || (s == best_s && id < best_id);
}

int comm_size(const Communicator* c) {
  return c ? c->size() : 1;
}

// best[2i], best[2i+1] = (score, id) of row i on this rank -> the best over the ranks of comm, as a token.
void merge_best(std::vector<double>& best, int64_t n, Communicator* comm, int32_t* out) {
  const int P = comm_size(comm);
  std::vector<double> all(size_t(P * n * 2));
  if (P > 1)
    comm->all_gather("decode.pick_allgather", best.data(), all.data(), 2 * n);
  else
    all = best;
  for (int64_t i = 0; i < n; ++i) {
    double s = kNegInf;
    int64_t id = kNoToken;
    for (int r = 0; r < P; ++r) {
      const double* e = all.data() + (r * n + i) * 2;
      if (better(e[0], int64_t(e[1]), s, id)) s = e[0], id = int64_t(e[1]);
    }
    TSP_CHECK(id != kNoToken, "pick_tokens: row {} has no token to pick (every logit is -inf or NaN)", i);
    out[i] = int32_t(id);
  }
}

// The k-th largest z of every row over all shards (the top-k threshold; ties at it are kept, as HF does).
std::vector<double> top_k_threshold(const std::vector<double>& z, int64_t n, int64_t rows, int64_t k,
                                    Communicator* comm) {
  const int P = comm_size(comm);
  std::vector<double> mine(size_t(n * k), kNegInf), all(size_t(P * n * k));
  for (int64_t i = 0; i < n; ++i) {
    std::vector<double> row(z.begin() + i * rows, z.begin() + (i + 1) * rows);
    const int64_t m = std::min(k, rows);
    std::partial_sort(row.begin(), row.begin() + m, row.end(), std::greater<double>());
    std::copy_n(row.begin(), m, mine.begin() + i * k);
  }
  if (P > 1)
    comm->all_gather("decode.topk_allgather", mine.data(), all.data(), n * k);
  else
    all = mine;
  std::vector<double> tau(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    std::vector<double> cand;
    for (int r = 0; r < P; ++r)
      cand.insert(cand.end(), all.begin() + (r * n + i) * k, all.begin() + (r * n + i + 1) * k);
    std::nth_element(cand.begin(), cand.begin() + (k - 1), cand.end(), std::greater<double>());
    tau[size_t(i)] = cand[size_t(k - 1)];
  }
  return tau;
}

// log sum exp of the kept z of every row over all shards.
std::vector<double> global_lse(const std::vector<double>& z, const std::vector<double>& tau, int64_t n,
                               int64_t rows, Communicator* comm) {
  const int P = comm_size(comm);
  std::vector<double> mine(size_t(n * 2)), all(size_t(P * n * 2));
  for (int64_t i = 0; i < n; ++i) {
    double m = kNegInf, s = 0;
    for (int64_t j = 0; j < rows; ++j)
      if (z[size_t(i * rows + j)] >= tau[size_t(i)]) m = std::max(m, z[size_t(i * rows + j)]);
    if (m > kNegInf)
      for (int64_t j = 0; j < rows; ++j)
        if (z[size_t(i * rows + j)] >= tau[size_t(i)]) s += std::exp(z[size_t(i * rows + j)] - m);
    mine[size_t(2 * i)] = m;
    mine[size_t(2 * i + 1)] = s;
  }
  if (P > 1)
    comm->all_gather("decode.topp_lse_allgather", mine.data(), all.data(), 2 * n);
  else
    all = mine;
  std::vector<double> lse(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double m = kNegInf, s = 0;
    for (int r = 0; r < P; ++r) m = std::max(m, all[size_t((r * n + i) * 2)]);
    for (int r = 0; r < P; ++r) {
      const double* e = all.data() + (r * n + i) * 2;
      if (e[1] > 0) s += e[1] * std::exp(e[0] - m);
    }
    lse[size_t(i)] = m + std::log(s);
  }
  return lse;
}

struct Candidate {
  double z;
  int64_t id;
};

bool before(const Candidate& a, const Candidate& b) {
  return a.z > b.z || (a.z == b.z && a.id < b.id);
}

// Top-p: every shard sends the tokens that may be in the nucleus, every rank rebuilds it from their union and
// draws from it (the same on every rank: the union, the order and the noise are the same).
void pick_top_p(const std::vector<double>& z, const std::vector<double>& tau, int64_t n, int64_t rows,
                int64_t begin, const SamplingParams& sp, const std::vector<Draw>& draws, Communicator* comm,
                int32_t* out) {
  const int P = comm_size(comm);
  const std::vector<double> lse = global_lse(z, tau, n, rows, comm);
  std::vector<int64_t> counts(static_cast<size_t>(n));
  std::vector<double> packed;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<Candidate> c;
    for (int64_t j = 0; j < rows; ++j)
      if (z[size_t(i * rows + j)] >= tau[size_t(i)]) c.push_back({z[size_t(i * rows + j)], begin + j});
    std::sort(c.begin(), c.end(), before);
    // A token is in the nucleus iff the probability mass strictly above it is < top_p; the mass above it
    // within this shard is a lower bound, so the tokens past that point can never be.
    double above = 0;
    int64_t kept = 0;
    for (const Candidate& e : c) {
      if (above >= sp.top_p) break;
      packed.push_back(e.z);
      packed.push_back(double(e.id));
      above += std::exp(e.z - lse[size_t(i)]);
      ++kept;
    }
    counts[size_t(i)] = kept;
  }
  std::vector<int64_t> all_counts(size_t(P * n));
  std::vector<double> all;
  if (P > 1) {
    comm->all_gather("decode.topp_counts_allgather", counts.data(), all_counts.data(), n);
    std::vector<int64_t> per_rank(size_t(P), 0);
    for (int r = 0; r < P; ++r)
      for (int64_t i = 0; i < n; ++i) per_rank[size_t(r)] += 2 * all_counts[size_t(r * n + i)];
    all.resize(size_t(std::accumulate(per_rank.begin(), per_rank.end(), int64_t(0))));
    comm->all_gather_v("decode.topp_candidates_allgather", packed.data(), all.data(), per_rank);
  } else {
    all_counts = counts;
    all = packed;
  }
  std::vector<std::vector<Candidate>> rows_c(static_cast<size_t>(n));
  size_t off = 0;
  for (int r = 0; r < P; ++r)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < all_counts[size_t(r * n + i)]; ++c, off += 2)
        rows_c[size_t(i)].push_back({all[off], int64_t(all[off + 1])});
  for (int64_t i = 0; i < n; ++i) {
    std::vector<Candidate>& c = rows_c[size_t(i)];
    std::sort(c.begin(), c.end(), before);
    double above = 0, best_s = kNegInf;
    int64_t best = kNoToken;
    for (const Candidate& e : c) {
      if (above >= sp.top_p) break;
      const double s = e.z + gumbel_noise(sp.seed, draws[size_t(i)].seq, draws[size_t(i)].step, e.id);
      if (better(s, e.id, best_s, best)) best_s = s, best = e.id;
      above += std::exp(e.z - lse[size_t(i)]);
    }
    TSP_CHECK(best != kNoToken, "pick_tokens: row {} has an empty nucleus", i);
    out[i] = int32_t(best);
  }
}

}  // namespace

void SamplingParams::validate() const {
  TSP_REQUIRE(std::isfinite(temperature) && temperature >= 0,
              "--temperature must be >= 0 (0 = greedy), got {}", temperature);
  TSP_REQUIRE(top_k >= 0, "--top-k must be >= 0 (0 = off), got {}", top_k);
  TSP_REQUIRE(top_p > 0 && top_p <= 1, "--top-p must be in (0, 1] (1 = off), got {}", top_p);
  TSP_REQUIRE(
      temperature > 0 || (top_k == 0 && top_p == 1),
      "--top-k and --top-p shape sampling; give --temperature > 0 with them (temperature 0 is greedy)");
}

double gumbel_noise(uint64_t seed, uint64_t seq, uint64_t step, int64_t token) {
  const uint64_t h = mix64(mix64(mix64(mix64(seed) ^ seq) ^ step) ^ uint64_t(token));
  // A uniform in (0, 1): 53 random bits, offset by half a unit so that neither end is reached.
  const double u = (double(h >> 11) + 0.5) * 0x1.0p-53;
  return -std::log(-std::log(u));
}

template <class T>
void pick_tokens(const T* logits, int64_t n, const VocabShard& shard, const SamplingParams& sp,
                 const std::vector<Draw>& draws, int32_t* out) {
  TraceSpan span("decode.pick", "compute");
  const int64_t rows = shard.rows, begin = shard.begin;
  if (sp.greedy()) {
    std::vector<double> best(size_t(2 * n));
    for (int64_t i = 0; i < n; ++i) {
      double s = kNegInf;
      int64_t id = kNoToken;
      for (int64_t j = 0; j < rows; ++j)
        if (better(double(logits[i * rows + j]), begin + j, s, id))
          s = double(logits[i * rows + j]), id = begin + j;
      best[size_t(2 * i)] = s;
      best[size_t(2 * i + 1)] = double(id);
    }
    merge_best(best, n, shard.comm, out);
    return;
  }
  TSP_CHECK(int64_t(draws.size()) == n, "pick_tokens: {} draws for {} rows", draws.size(), n);
  std::vector<double> z(size_t(n * rows));
  for (int64_t j = 0; j < n * rows; ++j) z[size_t(j)] = double(logits[j]) / sp.temperature;
  // top_k at or above the vocabulary keeps everything.
  std::vector<double> tau(size_t(n), kNegInf);
  if (sp.top_k > 0 && sp.top_k < shard.vocab) tau = top_k_threshold(z, n, rows, sp.top_k, shard.comm);
  if (sp.top_p < 1) {
    pick_top_p(z, tau, n, rows, begin, sp, draws, shard.comm, out);
    return;
  }
  std::vector<double> best(size_t(2 * n));
  for (int64_t i = 0; i < n; ++i) {
    double s = kNegInf;
    int64_t id = kNoToken;
    for (int64_t j = 0; j < rows; ++j) {
      if (z[size_t(i * rows + j)] < tau[size_t(i)]) continue;
      const double g = z[size_t(i * rows + j)] +
                       gumbel_noise(sp.seed, draws[size_t(i)].seq, draws[size_t(i)].step, begin + j);
      if (better(g, begin + j, s, id)) s = g, id = begin + j;
    }
    best[size_t(2 * i)] = s;
    best[size_t(2 * i + 1)] = double(id);
  }
  merge_best(best, n, shard.comm, out);
}

template void pick_tokens<float>(const float*, int64_t, const VocabShard&, const SamplingParams&,
                                 const std::vector<Draw>&, int32_t*);
template void pick_tokens<double>(const double*, int64_t, const VocabShard&, const SamplingParams&,
                                  const std::vector<Draw>&, int32_t*);

}  // namespace tsp
