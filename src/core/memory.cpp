#include "core/memory.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <new>
#include <string>

#include <sys/mman.h>

namespace tsp {

namespace {
std::mutex g_mu;
MemStats g_stats;
}  // namespace

std::string_view mem_name(Mem c) {
  switch (c) {
    case Mem::parameters:
      return "parameters";
    case Mem::gradients:
      return "gradients";
    case Mem::optimizer:
      return "optimizer";
    case Mem::activations:
      return "activations";
    case Mem::communication:
      return "communication";
    case Mem::workspace:
      return "workspace";
    case Mem::kv_cache:
      return "kv_cache";
  }
  return "?";
}

void* reserve_address_space(std::size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return p;
}

void release_address_space(void* p, std::size_t bytes) {
  munmap(p, bytes);
}

void* tracked_alloc(std::size_t bytes, Mem cat) {
  std::size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded);
  std::lock_guard lk(g_mu);
  int c = static_cast<int>(cat);
  g_stats.current[c] += static_cast<int64_t>(bytes);
  if (g_stats.current[c] > g_stats.peak[c]) g_stats.peak[c] = g_stats.current[c];
  g_stats.current_total += static_cast<int64_t>(bytes);
  if (g_stats.current_total > g_stats.peak_total) g_stats.peak_total = g_stats.current_total;
  return p;
}

void tracked_free(void* p, std::size_t bytes, Mem cat) {
  std::free(p);
  std::lock_guard lk(g_mu);
  g_stats.current[static_cast<int>(cat)] -= static_cast<int64_t>(bytes);
  g_stats.current_total -= static_cast<int64_t>(bytes);
}

MemStats mem_stats() {
  std::lock_guard lk(g_mu);
  return g_stats;
}

void mem_reset_peaks() {
  std::lock_guard lk(g_mu);
  g_stats.peak = g_stats.current;
  g_stats.peak_total = g_stats.current_total;
}

int64_t host_memory_bytes() {
  int64_t total = 0;
  {
    std::ifstream f("/proc/meminfo");
    std::string key;
    int64_t kib = 0;
    while (f >> key >> kib) {
      if (key == "MemTotal:") {
        total = kib * 1024;
        break;
      }
      f.ignore(1 << 10, '\n');
    }
  }
  std::ifstream cg("/sys/fs/cgroup/memory.max");
  std::string v;
  if (cg >> v && v != "max") {
    try {
      const int64_t limit = std::stoll(v);
      if (limit > 0 && (total == 0 || limit < total)) total = limit;
    } catch (const std::exception&) {
    }
  }
  return total;
}

int64_t vm_hwm_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return -1;
}

bool reset_vm_hwm() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  return static_cast<bool>(f);
}

}  // namespace tsp
