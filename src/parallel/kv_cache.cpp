#include "parallel/kv_cache.h"

#include <algorithm>
#include <type_traits>

#include "core/check.h"
#include "core/precision.h"
#include "kernels/bf16.h"

namespace tsp {

KvLayout parse_kv_layout(const std::string& s) {
  if (s == "heads") return KvLayout::heads;
  if (s == "sequence") return KvLayout::sequence;
  throw UsageError(fmt::format("unknown --kv-layout '{}' (allowed: heads, sequence)", s));
}

std::string kv_layout_name(KvLayout k) {
  return k == KvLayout::heads ? "heads" : "sequence";
}

int64_t kv_context(int64_t prompt, int64_t needed, int parts, int64_t block) {
  const int64_t unit = block * parts, extra = std::max<int64_t>(0, needed - prompt);
  return prompt + (extra + unit - 1) / unit * unit;
}

int KvSlots::owner(int64_t b, int64_t pos) const {
  if (parts == 1) return 0;
  if (pos < prompt) {
    const int64_t chunk = prompt / (2 * parts), c = pos / chunk;
    return int(c < parts ? c : 2 * parts - 1 - c);
  }
  return int(((pos - prompt) / block + b) % parts);
}

int64_t KvSlots::slot(int64_t b, int64_t pos) const {
  (void)b;
  if (parts == 1) return pos;
  if (pos < prompt) {
    const int64_t chunk = prompt / (2 * parts), c = pos / chunk;
    return c < parts ? pos - c * chunk : chunk + pos - c * chunk;
  }
  const int64_t j = pos - prompt;
  return prompt / parts + (j / (block * parts)) * block + j % block;
}

int64_t KvSlots::position(int64_t b, int64_t s) const {
  if (parts == 1) return s;
  const int64_t own = prompt / parts;
  if (s < own) {
    const int64_t chunk = prompt / (2 * parts);
    return s < chunk ? rank * chunk + s : (2 * parts - 1 - rank) * chunk + (s - chunk);
  }
  const int64_t j = s - own, lap = j / block, within = j % block;
  const int64_t first = ((rank - b) % parts + parts) % parts;  // first block of new positions this rank holds
  return prompt + (lap * parts + first) * block + within;
}

// Blocks k of new positions with (k + b) mod P == rank are this rank's, in order; count them below j_end.
static int64_t own_new_positions(const KvSlots& s, int64_t b, int64_t j_end) {
  if (j_end <= 0) return 0;
  const int64_t P = s.parts, full = j_end / s.block, rem = j_end % s.block;
  const int64_t first = ((s.rank - b) % P + P) % P;
  const int64_t blocks = full > first ? (full - 1 - first) / P + 1 : 0;
  const bool partial_mine = (full + b) % P == s.rank;
  return blocks * s.block + (partial_mine ? rem : 0);
}

int64_t KvSlots::scan(int64_t b, int64_t len) const {
  if (parts == 1) return std::min(len, context);
  return prompt / parts + own_new_positions(*this, b, len - prompt);
}

int64_t KvSlots::count(int64_t b, int64_t len) const {
  if (parts == 1) return std::min(len, context);
  int64_t n = 0;
  const int64_t own = prompt / parts;
  for (int64_t s = 0; s < own; ++s) n += position(b, s) < len ? 1 : 0;
  return n + own_new_positions(*this, b, len - prompt);
}

template <class T>
KvCache<T>::KvCache(int64_t layers, int64_t batch, int64_t slots, int64_t width)
    : batch_(batch), slots_(slots), width_(width), bf16_(bf16_storage<T>()) {
  const int64_t n = layers * batch * slots * width;
  for (Buffer<T>* b : {&k_, &v_}) *b = Buffer<T>(bf16_ ? 0 : n, Mem::kv_cache);
  for (Buffer<uint16_t>* b : {&k16_, &v16_}) *b = Buffer<uint16_t>(bf16_ ? n : 0, Mem::kv_cache);
}

template <class T>
void KvCache<T>::store(int layer, int64_t b, int64_t slot0, int64_t n, const T* k, const T* v, int64_t src_ld,
                       int64_t col0, int64_t cols) {
  TSP_CHECK(b >= 0 && b < batch_ && slot0 >= 0 && slot0 + n <= slots_ && col0 >= 0 && col0 + cols <= width_,
            "KvCache::store: sequence {} slots [{}, {}) columns [{}, {}) outside [{}, {}, {}]", b, slot0,
            slot0 + n, col0, col0 + cols, batch_, slots_, width_);
  const int64_t at = offset(layer, b, slot0) + col0;
  if constexpr (std::is_same_v<T, float>)
    if (bf16_) {
      for (int64_t i = 0; i < n; ++i) {
        kernels::to_bf16(k + i * src_ld, cols, k16_.data() + at + i * width_);
        kernels::to_bf16(v + i * src_ld, cols, v16_.data() + at + i * width_);
      }
      return;
    }
  for (int64_t i = 0; i < n; ++i) {
    std::copy_n(k + i * src_ld, cols, k_.data() + at + i * width_);
    std::copy_n(v + i * src_ld, cols, v_.data() + at + i * width_);
  }
}

template class KvCache<float>;
template class KvCache<double>;

}  // namespace tsp
