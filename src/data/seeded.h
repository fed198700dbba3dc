// Deterministic randomness for data streams: seeds derived by hashing (seed, domain, index), and integer
// draws that do not depend on the standard library's distribution algorithms, so that a data stream resumes
// to the same tokens on any machine.
#pragma once

#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace tsp {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Every (domain, index) gets its own generator seed: a stream resumes from a count, and item b of a batch
// does not depend on the batch size.
inline uint64_t derive_seed(uint64_t seed, uint64_t domain, uint64_t index) {
  return splitmix64(splitmix64(splitmix64(seed) ^ domain) ^ index);
}

// Uniform integer in [0, n) by rejection (std::uniform_int_distribution differs between standard libraries).
inline int64_t uniform_below(std::mt19937_64& rng, int64_t n) {
  const uint64_t un = uint64_t(n);
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % un;
  uint64_t x;
  do x = rng();
  while (x >= limit);
  return int64_t(x % un);
}

// Fisher-Yates shuffle of v in place.
template <class T>
void shuffle_in_place(std::vector<T>& v, std::mt19937_64& rng) {
  for (int64_t i = int64_t(v.size()) - 1; i > 0; --i)
    std::swap(v[size_t(i)], v[size_t(uniform_below(rng, i + 1))]);
}

}  // namespace tsp
