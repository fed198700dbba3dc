#include "kernels/frozen_weights.h"

#include <atomic>
#include <cstdint>
#include <iterator>
#include <map>
#include <mutex>
#include <shared_mutex>

#include "core/check.h"
#include "kernels/bf16.h"

namespace tsp::kernels {

namespace {

struct Range {
  uintptr_t end;  // one past the last fp32 element's byte
  const uint16_t* copy;
  bool every_read;  // FrozenBf16Weights(every_read)
};

// Keyed by the address of the fp32 range's first element (integers: a pointer into one allocation is never
// subtracted from one into another); lookups find the last range starting at or before w.
struct Registry {
  std::shared_mutex mu;
  std::map<uintptr_t, Range> ranges;
};

std::atomic<int64_t> g_hits{0};

uintptr_t addr(const float* p) {
  return reinterpret_cast<uintptr_t>(p);
}

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

void FrozenBf16Weights::add(const float* w, int64_t n) {
  if (n <= 0) return;
  to_bf16(w, n, add_unread(w, n));
}

uint16_t* FrozenBf16Weights::add_unread(const float* w, int64_t n) {
  if (n <= 0) return nullptr;
  Buffer<uint16_t> copy(n, Mem::parameters);
  Registry& r = registry();
  std::unique_lock lock(r.mu);
  const uintptr_t begin = addr(w), end = begin + uintptr_t(n) * sizeof(float);
  auto next = r.ranges.lower_bound(begin);
  TSP_CHECK(next == r.ranges.end() || next->first >= end, "frozen bf16 weights: overlapping ranges");
  if (next != r.ranges.begin())
    TSP_CHECK(std::prev(next)->second.end <= begin, "frozen bf16 weights: overlapping ranges");
  r.ranges.emplace(begin, Range{end, copy.data(), every_read_});
  ranges_.push_back(w);
  copies_.push_back(std::move(copy));
  return copies_.back().data();
}

FrozenBf16Weights::~FrozenBf16Weights() {
  Registry& r = registry();
  std::unique_lock lock(r.mu);
  for (const float* w : ranges_) r.ranges.erase(addr(w));
}

void FrozenBf16Weights::refresh() {
  for (size_t i = 0; i < ranges_.size(); ++i) to_bf16(ranges_[i], copies_[i].size(), copies_[i].data());
}

int64_t FrozenBf16Weights::bytes() const {
  int64_t b = 0;
  for (const auto& c : copies_) b += c.size() * int64_t(sizeof(uint16_t));
  return b;
}

namespace {

const uint16_t* lookup(const float* w, int64_t n, bool every_read_only) {
  Registry& r = registry();
  std::shared_lock lock(r.mu);
  if (r.ranges.empty()) return nullptr;
  const uintptr_t begin = addr(w);
  auto it = r.ranges.upper_bound(begin);
  if (it == r.ranges.begin()) return nullptr;
  --it;
  if (begin + uintptr_t(n) * sizeof(float) > it->second.end) return nullptr;
  if (every_read_only && !it->second.every_read) return nullptr;
  g_hits.fetch_add(1, std::memory_order_relaxed);
  return it->second.copy + (begin - it->first) / sizeof(float);
}

}  // namespace

const uint16_t* frozen_bf16(const float* w, int64_t n) {
  return lookup(w, n, false);
}

const uint16_t* held_bf16(const float* w, int64_t n) {
  return lookup(w, n, true);
}

const float* frozen_as_float(const float* w, int64_t n, std::vector<float>& scratch) {
  const uint16_t* b = w ? held_bf16(w, n) : nullptr;
  if (!b) return w;
  scratch.resize(size_t(n));
  from_bf16(b, n, scratch.data());
  return scratch.data();
}

int64_t frozen_bf16_hits() {
  return g_hits.load(std::memory_order_relaxed);
}

}  // namespace tsp::kernels
