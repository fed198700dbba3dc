#include "kernels/product_paths.h"

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <shared_mutex>
#include <vector>

#include "core/check.h"
#include "core/json_integer.h"
#include "core/trace.h"
#include "kernels/bf16.h"
#include "kernels/frozen_weights.h"
#include "kernels/gemm.h"
#include "kernels/onednn_matmul.h"

namespace tsp::kernels {

namespace {

constexpr int64_t kMaxTokenBucket = 512;
// Best of kSamples samples, each of enough calls to last kSampleSeconds: one call of a small product takes
// microseconds, the size of one cache miss's or one clock read's noise.
constexpr int kSamples = 3;
constexpr double kSampleSeconds = 2e-4;
constexpr double kMaxCallsPerSample = 1000;
// A call longer than this is timed twice, not four times: its noise is a small part of it, and a large
// model's first step pays every such call of its measurement.
constexpr double kLongCallSeconds = 1e-2;

enum class Product { forward, dx, dw };
// How the product's weight operand is held: what each path pays to read it. dW reads none.
enum class WeightForm { none, fp32, bf16 };

constexpr std::array<const char*, 3> kProductNames = {"forward", "dx", "dw"};
constexpr std::array<const char*, 3> kWeightNames = {"none", "fp32", "bf16"};

struct Key {
  Product product;
  WeightForm weight;
  int64_t out, in, ld_out, tokens;
  auto operator<=>(const Key&) const = default;
};

struct Choice {
  bool bf16;
  double fp32_seconds, bf16_seconds;  // NaN: unknown (a restored table that did not carry them)
};

struct Table {
  std::shared_mutex mu;
  std::map<Key, Choice> choices;
  int64_t measured = 0;
};

Table& table() {
  static Table t;
  return t;
}

// The weight as the two paths read it. Held in bf16 (`bf16` set: a shard that travelled in bf16, or a
// registered copy, which is the weight the model computes with), the fp32 path widens it; else the bf16 path
// rounds `fp32`.
struct Weight {
  const float* fp32 = nullptr;
  const uint16_t* bf16 = nullptr;
  WeightForm form() const { return bf16 ? WeightForm::bf16 : WeightForm::fp32; }
};

Weight held_as(WeightRef<float> w, int64_t n) {
  if (w.b) return {nullptr, w.b};
  return {w.f, frozen_bf16(w.f, n)};
}

// Per-thread converted operands (grown, never shrunk: a run's shapes repeat).
struct Converted {
  std::vector<uint16_t> x, w, dy;
  std::vector<float> wide_w;
};

Converted& converted() {
  thread_local Converted c;
  return c;
}

// Traced like kernels/gemm.cpp's conversions under --matmul-precision bf16 (category "convert").
const uint16_t* rounded(std::vector<uint16_t>& buf, const float* x, int64_t n) {
  TraceSpan span("linear.bf16_convert", "convert");
  if (int64_t(buf.size()) < n) buf.resize(size_t(n));
  to_bf16(x, n, buf.data());
  return buf.data();
}

const float* widened(std::vector<float>& buf, const uint16_t* x, int64_t n) {
  TraceSpan span("linear.bf16_widen", "convert");
  if (int64_t(buf.size()) < n) buf.resize(size_t(n));
  from_bf16(x, n, buf.data());
  return buf.data();
}

const uint16_t* weight_in_bf16(const Weight& w, int64_t n) {
  return w.bf16 ? w.bf16 : rounded(converted().w, w.fp32, n);
}
const float* weight_in_fp32(const Weight& w, int64_t n) {
  return w.bf16 ? widened(converted().wide_w, w.bf16, n) : w.fp32;
}

// The products on each path: the calls --matmul-precision fp32 and bf16 make (kernels/gemm.cpp), so that a
// product under auto has the bits of the path it took.
// Y[n, out] (rows ldy apart) = X·Wᵀ + beta·Y.
void run_forward(bool bf16, float* y, const float* x, const Weight& w, int64_t n, int64_t in, int64_t out,
                 float beta, int64_t ldy) {
  if (bf16)
    onednn::matmul(false, true, n, out, in, 1.0f, rounded(converted().x, x, n * in), in,
                   weight_in_bf16(w, out * in), in, beta, y, ldy);
  else
    gemm<float>(false, true, n, out, in, 1.0f, x, in, weight_in_fp32(w, out * in), in, beta, y, ldy);
}

// dX += dY·W; dy16 is dY in bf16 (the bf16 path's, rounded by the caller: dW may share it).
void run_dx(bool bf16, float* dx, const float* dy, const uint16_t* dy16, const Weight& w, int64_t n,
            int64_t in, int64_t out) {
  if (bf16)
    onednn::matmul(false, false, n, in, out, 1.0f, dy16, out, weight_in_bf16(w, out * in), in, 1.0f, dx, in);
  else
    gemm<float>(false, false, n, in, out, 1.0f, dy, out, weight_in_fp32(w, out * in), in, 1.0f, dx, in);
}

// dW += dYᵀ·X.
void run_dw(bool bf16, float* dw, const float* dy, const uint16_t* dy16, const float* x, int64_t n,
            int64_t in, int64_t out) {
  if (bf16)
    onednn::matmul(true, false, out, in, n, 1.0f, dy16, out, rounded(converted().x, x, n * in), in, 1.0f, dw,
                   in);
  else
    gemm<float>(true, false, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in);
}

// Seconds per call of call(false) (fp32) and call(true) (bf16): the best of a timed call and kSamples samples
// (one for a long call) after a warm-up call. The paths' samples alternate, so that a slow spell (another
// process, a frequency change) is seen by both, and each sample follows the other path as it does inside a
// model, where the two libraries' thread pools take turns.
template <class F>
std::array<double, 2> seconds_per_call(F&& call) {
  using clock = std::chrono::steady_clock;
  std::array<double, 2> best{};
  std::array<int, 2> calls{}, samples{};
  for (int path = 0; path < 2; ++path) {
    call(path == 1);  // creates the oneDNN primitive, grows the conversion buffers, warms the caches
    const clock::time_point t0 = clock::now();
    call(path == 1);
    const double once = std::chrono::duration<double>(clock::now() - t0).count();
    best[size_t(path)] = once;
    calls[size_t(path)] =
        int(std::clamp(std::ceil(kSampleSeconds / std::max(once, 1e-9)), 1.0, kMaxCallsPerSample));
    samples[size_t(path)] = once > kLongCallSeconds ? 1 : kSamples;
  }
  for (int s = 0; s < kSamples; ++s)
    for (int path = 0; path < 2; ++path) {
      if (s >= samples[size_t(path)]) continue;
      const clock::time_point t0 = clock::now();
      for (int i = 0; i < calls[size_t(path)]; ++i) call(path == 1);
      const double t = std::chrono::duration<double>(clock::now() - t0).count() / calls[size_t(path)];
      best[size_t(path)] = std::min(best[size_t(path)], t);
    }
  return best;
}

// Values in [-1, 1) on a 2^-23 grid: no subnormals, which would slow one path and not the other.
std::vector<float> synthetic(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  uint32_t s = 12345;
  for (float& e : v) {
    s = s * 1664525u + 1013904223u;
    e = float(int32_t(s >> 8) - (1 << 23)) * 0x1p-23f;
  }
  return v;
}

// Measures every token bucket of `met`'s row that the table lacks, on synthetic activations (the caller's may
// have fewer rows than a bucket) and the real weight, with the caller's beta. Called under the table's lock.
void measure_row(Table& t, const Key& met, const Weight& w, float beta) {
  TraceSpan span("linear.auto_measure", "compute");
  const int64_t rows = kMaxTokenBucket, out = met.out, in = met.in;
  // A: X (forward) or dY; B: X (dW); C: the output, Y [rows, ld_out], dX [rows, in] or dW [out, in].
  const std::vector<float> a = synthetic(rows * (met.product == Product::forward ? in : out));
  const std::vector<float> b = met.product == Product::dw ? synthetic(rows * in) : std::vector<float>();
  std::vector<float> c(size_t(met.product == Product::forward ? rows * met.ld_out
                              : met.product == Product::dx    ? rows * in
                                                              : out * in));
  for (int64_t tokens = 1; tokens <= kMaxTokenBucket; tokens *= 2) {
    Key k = met;
    k.tokens = tokens;
    if (t.choices.count(k)) continue;
    const std::array<double, 2> seconds = seconds_per_call([&](bool bf16) {
      switch (met.product) {
        case Product::forward:
          return run_forward(bf16, c.data(), a.data(), w, tokens, in, out, beta, met.ld_out);
        case Product::dx:
          return run_dx(bf16, c.data(), a.data(),
                        bf16 ? rounded(converted().dy, a.data(), tokens * out) : nullptr, w, tokens, in, out);
        case Product::dw:
          return run_dw(bf16, c.data(), a.data(),
                        bf16 ? rounded(converted().dy, a.data(), tokens * out) : nullptr, b.data(), tokens,
                        in, out);
      }
    });
    // A tie keeps fp32, the reference.
    t.choices[k] = Choice{seconds[1] < seconds[0], seconds[0], seconds[1]};
    ++t.measured;
  }
}

// The table's path for `key`, measuring its row the first time. Without a bf16 product on this CPU every
// product is fp32 and nothing is measured or recorded.
bool choose_bf16(const Key& key, const Weight& w, float beta) {
  if (!onednn::bf16_supported()) return false;
  Table& t = table();
  {
    std::shared_lock lock(t.mu);
    auto it = t.choices.find(key);
    if (it != t.choices.end()) return it->second.bf16;
  }
  // Another thread may have measured it between the two locks.
  std::unique_lock lock(t.mu);
  if (!t.choices.count(key)) measure_row(t, key, w, beta);
  return t.choices.at(key).bf16;
}

std::string summary_of(const std::map<Key, Choice>& choices) {
  if (!onednn::bf16_supported())
    return fmt::format("auto: every product fp32 (oneDNN has no bf16 product on {})", onednn::cpu_isa());
  if (choices.empty()) return "auto: no product met yet";
  std::array<int64_t, 3> bf16{}, all{};
  for (const auto& [k, c] : choices) {
    ++all[size_t(k.product)];
    bf16[size_t(k.product)] += c.bf16;
  }
  return fmt::format("auto: {} of {} products bf16 (forward {}/{}, dx {}/{}, dw {}/{})",
                     bf16[0] + bf16[1] + bf16[2], all[0] + all[1] + all[2], bf16[0], all[0], bf16[1], all[1],
                     bf16[2], all[2]);
}

nlohmann::json seconds_json(double s) {
  return std::isnan(s) ? nlohmann::json(nullptr) : nlohmann::json(s);
}

constexpr const char* kWhere = "product paths";

template <size_t N>
size_t name_index(const nlohmann::json& e, const char* field, const std::array<const char*, N>& names) {
  const auto it = e.find(field);
  if (it != e.end() && it->is_string())
    for (size_t i = 0; i < N; ++i)
      if (*it == names[i]) return i;
  throw UsageError(fmt::format("{}: entry {} needs \"{}\" to be one of {}", kWhere, e.dump().substr(0, 200),
                               field, fmt::join(names, ", ")));
}

double seconds_at(const nlohmann::json& e, const char* field) {
  const auto it = e.find(field);
  if (it == e.end() || it->is_null()) return std::numeric_limits<double>::quiet_NaN();
  TSP_REQUIRE(it->is_number() && it->get<double>() >= 0,
              "{}: \"{}\" must be a number of seconds or null, got {}", kWhere, field,
              it->dump().substr(0, 100));
  return it->get<double>();
}

}  // namespace

void auto_linear_forward(float* y, const float* x, WeightRef<float> w, int64_t n, int64_t in, int64_t out,
                         float beta, int64_t ldy) {
  const Weight held = held_as(w, out * in);
  const bool bf16 =
      choose_bf16({Product::forward, held.form(), out, in, ldy, product_token_bucket(n)}, held, beta);
  run_forward(bf16, y, x, held, n, in, out, beta, ldy);
}

void auto_linear_backward(float* dx, float* dw, const float* dy, const float* x, WeightRef<float> w,
                          int64_t n, int64_t in, int64_t out) {
  const int64_t tokens = product_token_bucket(n);
  // Both choices before either product: a measurement reuses this thread's conversion buffers.
  Weight held;
  bool dx_bf16 = false, dw_bf16 = false;
  if (dx) {
    held = held_as(w, out * in);
    dx_bf16 = choose_bf16({Product::dx, held.form(), out, in, in, tokens}, held, 1.0f);
  }
  if (dw) dw_bf16 = choose_bf16({Product::dw, WeightForm::none, out, in, in, tokens}, Weight{}, 1.0f);
  // dY is rounded once for both products that read it in bf16, as under --matmul-precision bf16; the
  // measurement charged each of them the rounding (it cannot know the other's path), so a product whose win
  // is thinner than the rounding of dY keeps fp32.
  const uint16_t* dy16 = dx_bf16 || dw_bf16 ? rounded(converted().dy, dy, n * out) : nullptr;
  if (dx) run_dx(dx_bf16, dx, dy, dy16, held, n, in, out);
  if (dw) run_dw(dw_bf16, dw, dy, dy16, x, n, in, out);
}

nlohmann::json product_paths_json() {
  Table& t = table();
  std::shared_lock lock(t.mu);
  nlohmann::json products = nlohmann::json::array();
  for (const auto& [k, c] : t.choices)
    products.push_back({{"product", kProductNames[size_t(k.product)]},
                        {"weight", kWeightNames[size_t(k.weight)]},
                        {"out", k.out},
                        {"in", k.in},
                        {"ld_out", k.ld_out},
                        {"tokens", k.tokens},
                        {"path", c.bf16 ? "bf16" : "fp32"},
                        {"fp32_seconds", seconds_json(c.fp32_seconds)},
                        {"bf16_seconds", seconds_json(c.bf16_seconds)}});
  return {{"summary", summary_of(t.choices)}, {"isa", onednn::cpu_isa()}, {"products", std::move(products)}};
}

std::string product_paths_summary() {
  Table& t = table();
  std::shared_lock lock(t.mu);
  return summary_of(t.choices);
}

void set_product_paths(const nlohmann::json& saved) {
  TSP_REQUIRE(saved.is_object() && saved.contains("products") && saved["products"].is_array(),
              "{}: expected an object with a \"products\" array (kernels::product_paths_json()), got {}",
              kWhere, saved.dump().substr(0, 200));
  std::map<Key, Choice> choices;
  for (const nlohmann::json& e : saved["products"]) {
    TSP_REQUIRE(e.is_object(), "{}: every entry of \"products\" must be an object, got {}", kWhere,
                e.dump().substr(0, 200));
    Key k{Product(name_index(e, "product", kProductNames)), WeightForm(name_index(e, "weight", kWeightNames)),
          json_integer_at<int64_t>(e, "out", kWhere),       json_integer_at<int64_t>(e, "in", kWhere),
          json_integer_at<int64_t>(e, "ld_out", kWhere),    json_integer_at<int64_t>(e, "tokens", kWhere)};
    TSP_REQUIRE(k.out >= 1 && k.in >= 1 && k.tokens >= 1 && k.tokens <= kMaxTokenBucket &&
                    std::has_single_bit(uint64_t(k.tokens)),
                "{}: entry {} needs out, in >= 1 and tokens a power of two up to {}", kWhere, e.dump(),
                kMaxTokenBucket);
    TSP_REQUIRE(k.product == Product::forward ? k.ld_out >= k.out : k.ld_out == k.in,
                "{}: entry {} has an ld_out its product never has (forward: >= out; dx, dw: in)", kWhere,
                e.dump());
    TSP_REQUIRE((k.product == Product::dw) == (k.weight == WeightForm::none),
                "{}: entry {}: dw, and only dw, has weight \"none\"", kWhere, e.dump());
    const bool bf16 = name_index(e, "path", std::array<const char*, 2>{"fp32", "bf16"}) == 1;
    TSP_REQUIRE(
        !bf16 || onednn::bf16_supported(),
        "{}: the saved table runs {} in bf16, but oneDNN has no bf16 product on this CPU ({}); restore it "
        "on a CPU with AVX-512, or run --matmul-precision fp32",
        kWhere, e.dump(), onednn::cpu_isa());
    TSP_REQUIRE(
        choices.emplace(k, Choice{bf16, seconds_at(e, "fp32_seconds"), seconds_at(e, "bf16_seconds")}).second,
        "{}: entry {} appears twice", kWhere, e.dump());
  }
  Table& t = table();
  std::unique_lock lock(t.mu);
  t.choices = std::move(choices);
}

void reset_product_paths() {
  Table& t = table();
  std::unique_lock lock(t.mu);
  t.choices.clear();
}

int64_t product_path_measurements() {
  Table& t = table();
  std::shared_lock lock(t.mu);
  return t.measured;
}

int64_t product_token_bucket(int64_t n) {
  TSP_CHECK(n >= 1, "product_token_bucket: n = {} (a product with no rows has no path)", n);
  return int64_t(std::bit_ceil(uint64_t(std::min(n, kMaxTokenBucket))));
}

}  // namespace tsp::kernels
