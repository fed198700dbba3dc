// The tracked allocator: every byte the runtime allocates for tensors goes through here, under a category,
// so that exact current and peak bytes per category can be reported (and compared with tsp plan).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>

namespace tsp {

// kv_cache: the post-RoPE keys and values kept for decoding (parallel/kv_cache.h).
enum class Mem : int { parameters, gradients, optimizer, activations, communication, workspace, kv_cache };
inline constexpr int kMemCategories = 7;
std::string_view mem_name(Mem c);

struct MemStats {
  std::array<int64_t, kMemCategories> current{};  // bytes live now
  std::array<int64_t, kMemCategories> peak{};     // high-water mark per category since the last reset
  int64_t current_total = 0;
  int64_t peak_total = 0;  // high-water mark of the sum (not the sum of the per-category peaks)
};

// 64-byte aligned, zero-filled storage accounted under `cat`. Thread-safe.
void* tracked_alloc(std::size_t bytes, Mem cat);
void tracked_free(void* p, std::size_t bytes, Mem cat);

MemStats mem_stats();
// Peaks restart from the current values (used between phases, e.g. after warm-up).
void mem_reset_peaks();

// The process high-water resident set (VmHWM from /proc/self/status), in bytes; -1 if unavailable.
int64_t vm_hwm_bytes();
// The memory this process' machine offers: MemTotal (/proc/meminfo), or the cgroup v2 limit (memory.max) when
// that is smaller; 0 when neither can be read.
int64_t host_memory_bytes();
// Restarts VmHWM from the current RSS (writes 5 to /proc/self/clear_refs); false if not permitted.
bool reset_vm_hwm();

// Address space of `bytes` with no memory behind it (mmap PROT_NONE): every access faults. Not counted.
void* reserve_address_space(std::size_t bytes);
void release_address_space(void* p, std::size_t bytes);

// Owning, move-only, typed storage from the tracked allocator.
template <class T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(int64_t n, Mem cat) : n_(n), cat_(cat) {
    if (n_ > 0) p_ = static_cast<T*>(tracked_alloc(sizeof(T) * static_cast<std::size_t>(n_), cat_));
  }
  // n elements of address space and no storage (reserve_address_space): a unique address range that stands
  // for tensors held elsewhere (the bf16 policy's serving weights, model/params.h). Reading it faults.
  static Buffer address_only(int64_t n) {
    Buffer b;
    b.n_ = n;
    b.reserved_ = true;
    if (n > 0) b.p_ = static_cast<T*>(reserve_address_space(sizeof(T) * static_cast<std::size_t>(n)));
    return b;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    Buffer tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  ~Buffer() {
    if (!p_) return;
    if (reserved_)
      release_address_space(p_, sizeof(T) * static_cast<std::size_t>(n_));
    else
      tracked_free(p_, sizeof(T) * static_cast<std::size_t>(n_), cat_);
  }
  void swap(Buffer& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    std::swap(cat_, o.cat_);
    std::swap(reserved_, o.reserved_);
  }
  bool is_address_only() const { return reserved_; }

  T* data() { return p_; }
  const T* data() const { return p_; }
  int64_t size() const { return n_; }
  Mem category() const { return cat_; }
  std::span<T> span() { return {p_, static_cast<std::size_t>(n_)}; }
  std::span<const T> span() const { return {p_, static_cast<std::size_t>(n_)}; }
  T& operator[](int64_t i) { return p_[i]; }
  const T& operator[](int64_t i) const { return p_[i]; }
  void zero();

 private:
  T* p_ = nullptr;
  int64_t n_ = 0;
  Mem cat_ = Mem::workspace;
  bool reserved_ = false;  // made by address_only()
};

template <class T>
void Buffer<T>::zero() {
  for (int64_t i = 0; i < n_; ++i) p_[i] = T(0);
}

}  // namespace tsp
