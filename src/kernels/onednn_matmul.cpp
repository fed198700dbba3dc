#include "kernels/onednn_matmul.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/check.h"
#include "core/memory.h"
#include "kernels/bf16.h"
#include "kernels/gemm.h"

namespace tsp::kernels::onednn {

namespace {

using dnnl::memory;

// m, n and k are kAnyShape for a primitive that serves every shape (oneDNN's runtime dimensions).
constexpr int64_t kAnyShape = DNNL_RUNTIME_DIM_VAL;

struct Key {
  bool bf16, trans_a, trans_b;
  bool blocked_b = false;  // B in the layout the primitive chooses (BlockedWeight)
  int64_t m, n, k, lda, ldb, ldc;
  uint32_t alpha, beta;  // bit patterns: a primitive bakes both in
  int threads;           // oneDNN sizes its work split by omp_get_max_threads() when it creates a primitive
  bool operator==(const Key&) const = default;
};

// The cache key of a product; every caller builds it here so that a lookup matches what run() stored.
Key key_of(bool bf16, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb,
           int64_t ldc, float alpha, float beta, bool any_shape) {
  return Key{bf16,
             trans_a,
             trans_b,
             false,
             any_shape ? kAnyShape : m,
             any_shape ? kAnyShape : n,
             any_shape ? kAnyShape : k,
             lda,
             ldb,
             ldc,
             std::bit_cast<uint32_t>(alpha),
             std::bit_cast<uint32_t>(beta),
             omp_in_parallel() ? 1 : omp_get_max_threads()};
}

struct KeyHash {
  size_t operator()(const Key& k) const {
    size_t h = size_t(k.bf16) | size_t(k.trans_a) << 1 | size_t(k.trans_b) << 2 | size_t(k.blocked_b) << 3;
    for (int64_t v :
         {k.m, k.n, k.k, k.lda, k.ldb, k.ldc, int64_t(k.alpha), int64_t(k.beta), int64_t(k.threads)})
      h = h * 0x9E3779B97F4A7C15ull + size_t(v);
    return h;
  }
};

// One cached product: the primitive and its memory objects (data handles swapped per call, which is free).
struct Entry {
  dnnl::matmul prim;
  memory a, b, c, scratch;
  size_t scratch_size = 0;
  std::unordered_map<int, memory> args;
};

// Per thread: the engine, the stream, the cache (see the header for why nothing is shared across threads) and
// one scratchpad as large as the largest any of the thread's primitives needs: a thread runs one product at a
// time, so its primitives share it (a scratchpad each cost tens of MiB over the many tile shapes of a
// sequence-length warm-up).
struct ThreadState {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  std::unordered_map<Key, std::unique_ptr<Entry>, KeyHash> cache;
  std::vector<unsigned char> scratch;
};

ThreadState& state() {
  thread_local ThreadState s;
  return s;
}

// Row-major [rows, cols] logical operand stored with leading dimension ld, transposed in storage or not.
memory::desc operand(memory::data_type dt, int64_t rows, int64_t cols, int64_t ld, bool transposed) {
  return memory::desc({rows, cols}, dt, transposed ? memory::dims{1, ld} : memory::dims{ld, 1});
}

dnnl::matmul::primitive_desc describe(const Key& key, const dnnl::engine& eng) {
  const auto in = key.bf16 ? memory::data_type::bf16 : memory::data_type::f32;
  const memory::desc a = operand(in, key.m, key.k, key.lda, key.trans_a);
  const memory::desc b = key.blocked_b ? memory::desc({key.k, key.n}, in, memory::format_tag::any)
                                       : operand(in, key.k, key.n, key.ldb, key.trans_b);
  const memory::desc c = operand(memory::data_type::f32, key.m, key.n, key.ldc, false);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const float alpha = std::bit_cast<float>(key.alpha), beta = std::bit_cast<float>(key.beta);
  if (alpha != 1.f) attr.set_output_scales(0, {alpha});
  if (beta != 0.f) {
    dnnl::post_ops po;
    po.append_sum(beta);
    attr.set_post_ops(po);
  }
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), attr, eng);
}

Entry& entry(const Key& key) {
  ThreadState& s = state();
  auto it = s.cache.find(key);
  if (it != s.cache.end()) return *it->second;
  auto e = std::make_unique<Entry>();
  try {
    const auto pd = describe(key, s.eng);
    e->prim = dnnl::matmul(pd);
    if (key.m != kAnyShape) {  // an any-shape primitive gets memory objects of the call's shape per call
      e->a = memory(pd.src_desc(), s.eng, nullptr);
      e->b = memory(pd.weights_desc(), s.eng, nullptr);
      e->c = memory(pd.dst_desc(), s.eng, nullptr);
    }
    e->scratch_size = pd.scratchpad_desc().get_size();
    e->scratch = memory(pd.scratchpad_desc(), s.eng, nullptr);
  } catch (const dnnl::error& err) {
    TSP_CHECK(false, "oneDNN matmul {}x{}x{} ({}): {}", key.m, key.n, key.k, key.bf16 ? "bf16" : "f32",
              err.what());
  }
  e->args = {{DNNL_ARG_SRC, e->a},
             {DNNL_ARG_WEIGHTS, e->b},
             {DNNL_ARG_DST, e->c},
             {DNNL_ARG_SCRATCHPAD, e->scratch}};
  return *s.cache.emplace(key, std::move(e)).first->second;
}

// Products below this many FLOPs run on the calling thread (set_one_thread_flops).
std::atomic<double> g_one_thread_flops{kDefaultOneThreadFlops};

// Sets OpenMP's thread count for the calling thread for a scope (omp_set_num_threads is per task).
class ScopedOmpThreads {
 public:
  explicit ScopedOmpThreads(bool one) : prev_(one ? omp_get_max_threads() : 0) {
    if (one) omp_set_num_threads(1);
  }
  ~ScopedOmpThreads() {
    if (prev_ > 0) omp_set_num_threads(prev_);
  }
  ScopedOmpThreads(const ScopedOmpThreads&) = delete;
  ScopedOmpThreads& operator=(const ScopedOmpThreads&) = delete;

 private:
  int prev_;
};

template <class In>
void run(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const In* a, int64_t lda,
         const In* b, int64_t ldb, float beta, float* c, int64_t ldc, bool any_shape) {
  // A small product (a decode step's few rows) finishes on one thread before the team's sleeping threads
  // would have woken; the choice depends on the shape alone, so a run and its resume take the same path.
  const ScopedOmpThreads one_thread(!omp_in_parallel() &&
                                    2.0 * double(m) * double(n) * double(k) < g_one_thread_flops.load());
  TSP_CHECK(m >= 0 && n >= 0 && k >= 0, "onednn::matmul: negative size m={} n={} k={}", m, n, k);
  if (m == 0 || n == 0) return;
  // An empty inner dimension means C = beta * C (kernels::gemm does exactly that, reading neither A nor B).
  if (k == 0) return gemm<float>(trans_a, trans_b, m, n, 0, alpha, nullptr, 1, nullptr, 1, beta, c, ldc);
  TSP_CHECK(ldc >= n, "onednn::matmul: ldc={} smaller than n={}", ldc, n);
  TSP_CHECK(lda >= (trans_a ? m : k) && ldb >= (trans_b ? k : n),
            "onednn::matmul: lda={} / ldb={} too small (m={} n={} k={}, trans {} {})", lda, ldb, m, n, k,
            trans_a, trans_b);
  const Key key =
      key_of(std::is_same_v<In, uint16_t>, trans_a, trans_b, m, n, k, lda, ldb, ldc, alpha, beta, any_shape);
  TSP_CHECK(!key.bf16 || bf16_supported(),
            "onednn::matmul: oneDNN has no bf16 product on {} (it needs AVX-512)", cpu_isa());
  Entry& e = entry(key);
  ThreadState& s = state();
  if (s.scratch.size() < e.scratch_size) s.scratch.resize(e.scratch_size);
  e.scratch.set_data_handle(s.scratch.data());
  if (any_shape) {
    const auto in = std::is_same_v<In, uint16_t> ? memory::data_type::bf16 : memory::data_type::f32;
    e.args[DNNL_ARG_SRC] = memory(operand(in, m, k, lda, trans_a), s.eng, const_cast<In*>(a));
    e.args[DNNL_ARG_WEIGHTS] = memory(operand(in, k, n, ldb, trans_b), s.eng, const_cast<In*>(b));
    e.args[DNNL_ARG_DST] = memory(operand(memory::data_type::f32, m, n, ldc, false), s.eng, c);
  } else {
    e.a.set_data_handle(const_cast<In*>(a));
    e.b.set_data_handle(const_cast<In*>(b));
    e.c.set_data_handle(c);
  }
  e.prim.execute(s.strm, e.args);
  s.strm.wait();
}

}  // namespace

struct BlockedWeight {
  int64_t out = 0, in = 0;
  memory::desc desc;           // the blocked layout
  Buffer<unsigned char> data;  // parameters
};

void BlockedWeightDeleter::operator()(BlockedWeight* w) const {
  delete w;
}

BlockedWeightPtr make_blocked_weight(const uint16_t* w, int64_t out, int64_t in) {
  if (!bf16_supported() || out <= 0 || in <= 0) return nullptr;
  ThreadState& s = state();
  Key key = key_of(true, false, true, 1, out, in, in, in, out, 1.f, 0.f, false);
  key.blocked_b = true;
  const memory::desc chosen = describe(key, s.eng).weights_desc();
  const memory::desc plain = operand(memory::data_type::bf16, in, out, in, /*transposed=*/true);
  if (chosen == plain) return nullptr;
  BlockedWeightPtr b(
      new BlockedWeight{out, in, chosen, Buffer<unsigned char>(int64_t(chosen.get_size()), Mem::parameters)});
  memory src(plain, s.eng, const_cast<uint16_t*>(w)), dst(chosen, s.eng, b->data.data());
  dnnl::reorder(src, dst).execute(s.strm, src, dst);
  s.strm.wait();
  return b;
}

int64_t blocked_weight_bytes(const BlockedWeight& w) {
  return w.data.size();
}

namespace {
std::atomic<int64_t> g_blocked_products{0};
}

int64_t blocked_products() {
  return g_blocked_products.load(std::memory_order_relaxed);
}

bool matmul_blocked(int64_t m, const uint16_t* x, const BlockedWeight& w, float beta, float* y, int64_t ldy) {
  if (m <= 0) return true;
  const ScopedOmpThreads one_thread(!omp_in_parallel() && 2.0 * double(m) * double(w.out) * double(w.in) <
                                                              g_one_thread_flops.load());
  Key key = key_of(true, false, true, m, w.out, w.in, w.in, w.in, ldy, 1.f, beta, false);
  key.blocked_b = true;
  Entry& e = entry(key);
  if (e.b.get_desc() != w.desc) return false;
  ThreadState& s = state();
  if (s.scratch.size() < e.scratch_size) s.scratch.resize(e.scratch_size);
  e.scratch.set_data_handle(s.scratch.data());
  e.a.set_data_handle(const_cast<uint16_t*>(x));
  e.b.set_data_handle(const_cast<unsigned char*>(w.data.data()));
  e.c.set_data_handle(y);
  e.prim.execute(s.strm, e.args);
  s.strm.wait();
  g_blocked_products.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void matmul(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
            int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, bool any_shape) {
  run(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, any_shape);
}

void matmul(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const uint16_t* a,
            int64_t lda, const uint16_t* b, int64_t ldb, float beta, float* c, int64_t ldc, bool any_shape) {
  run(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, any_shape);
}

std::string cpu_isa() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx2_vnni:
      return "avx2_vnni";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    case dnnl::cpu_isa::avx:
      return "avx";
    case dnnl::cpu_isa::sse41:
      return "sse41";
    default:
      return "other";
  }
}

std::string implementation(bool bf16, int64_t m, int64_t n, int64_t k) {
  if (bf16 && !bf16_supported()) return "none";
  return describe(key_of(bf16, false, true, m, n, k, k, k, n, 1.f, 0.f, false), state().eng).impl_info_str();
}

bool bf16_supported() {
  static const bool ok = [] {
    try {
      describe(key_of(true, false, true, 16, 16, 16, 16, 16, 16, 1.f, 0.f, false), state().eng);
      return true;
    } catch (const dnnl::error&) {  // dnnl_unimplemented: no bf16 matmul below AVX-512 in oneDNN 2.6
      return false;
    }
  }();
  return ok;
}

std::string summary() {
  const dnnl_version_t* v = dnnl_version();
  return fmt::format("oneDNN {}.{}.{} on {}", v->major, v->minor, v->patch, cpu_isa());
}

double bf16_gemm_flops_per_s(int n, int reps) {
  TSP_CHECK(n > 0 && reps > 0, "bf16_gemm_flops_per_s needs n > 0 and reps > 0 (got {} and {})", n, reps);
  if (!bf16_supported()) return 0.0;
  const size_t nn = size_t(n) * size_t(n);
  std::vector<uint16_t> a(nn, float_to_bf16(0.5f)), b(nn, float_to_bf16(0.25f));
  std::vector<float> c(nn, 0.f);
  auto gemm = [&] { matmul(false, false, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n); };
  // The first calls in a process create the primitive and wake OpenMP's team (measured here: 3 calls right
  // after one warm-up ran at half the rate of later ones); warm up for at least 3 calls and 200 ms.
  const auto w0 = std::chrono::steady_clock::now();
  for (int w = 0; w < 3 || std::chrono::steady_clock::now() - w0 < std::chrono::milliseconds(200); ++w)
    gemm();
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) gemm();
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Its primitive and scratchpad are not kept: a measurement must not stay resident in the run it precedes.
  state().cache.erase(key_of(true, false, false, n, n, n, n, n, n, 1.f, 0.f, false));
  return 2.0 * double(n) * double(n) * double(n) * reps / sec;
}

double set_one_thread_flops(double flops) {
  return g_one_thread_flops.exchange(flops);
}

size_t cached_primitives() {
  return state().cache.size();
}

}  // namespace tsp::kernels::onednn
