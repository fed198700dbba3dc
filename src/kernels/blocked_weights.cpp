#include "kernels/blocked_weights.h"

#include <map>
#include <mutex>
#include <shared_mutex>
#include <tuple>

#include "core/check.h"

namespace tsp::kernels {

namespace {

struct Registry {
  std::shared_mutex mu;
  std::map<std::tuple<const uint16_t*, int64_t, int64_t>, const onednn::BlockedWeight*> copies;
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

bool BlockedBf16Weights::add(const uint16_t* w, int64_t out, int64_t in) {
  if (out < kMinBlockedDim || in < kMinBlockedDim) return false;
  onednn::BlockedWeightPtr copy = onednn::make_blocked_weight(w, out, in);
  if (!copy) return false;
  Registry& r = registry();
  std::unique_lock lock(r.mu);
  const bool fresh = r.copies.emplace(std::make_tuple(w, out, in), copy.get()).second;
  TSP_CHECK(fresh, "blocked bf16 weights: [{}, {}] at {} is held twice", out, in,
            static_cast<const void*>(w));
  copies_.push_back(std::move(copy));
  return true;
}

BlockedBf16Weights::~BlockedBf16Weights() {
  Registry& r = registry();
  std::unique_lock lock(r.mu);
  for (auto it = r.copies.begin(); it != r.copies.end();) {
    bool mine = false;
    for (const auto& c : copies_) mine = mine || it->second == c.get();
    it = mine ? r.copies.erase(it) : std::next(it);
  }
}

int64_t BlockedBf16Weights::bytes() const {
  int64_t b = 0;
  for (const auto& c : copies_) b += onednn::blocked_weight_bytes(*c);
  return b;
}

const onednn::BlockedWeight* blocked_bf16(const uint16_t* w, int64_t out, int64_t in) {
  Registry& r = registry();
  std::shared_lock lock(r.mu);
  if (r.copies.empty()) return nullptr;
  auto it = r.copies.find(std::make_tuple(w, out, in));
  return it == r.copies.end() ? nullptr : it->second;
}

}  // namespace tsp::kernels
