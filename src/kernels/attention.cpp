// Blocked online-softmax attention (FlashAttention-2 schedule) on CPU: every tile product runs on the calling
// thread (oneDNN for fp32, OpenBLAS for fp64), parallelism comes from OpenMP over independent tiles.
//
// Under --matmul-precision bf16 (fp32 only) the tile products take bf16 operands with fp32 accumulation, as
// FlashAttention does on GPUs: Q, K, V and dO are rounded to bf16 once per call, each probability tile P and
// each dS tile once per tile; the scores, the running max and sum, the log-sum-exp, the softmax and dS
// arithmetic, and every accumulator (O, dQ, dK, dV) stay fp32.
//
// Forward: one task per (query block, head). It streams the key blocks, keeps the running row max m and sum
// l, and rescales its private output tile whenever m grows, so only [block_q x block_k] scores exist at a
// time.
//
// Backward: one task per (KV head, key block). The task owns dK and dV of its key block outright (it loops
// over every query head of its GQA group and every query block), so those need no reduction. dQ rows, in
// contrast, receive contributions from every key block; each thread accumulates them into its own dQ copy
// (thread 0 into dq itself) and the copies are summed once at the end, in thread order; tasks are assigned
// to threads statically, so the result is bitwise reproducible for a given thread count. That costs (threads
// - 1) * |q| of memory but keeps the five tile products of FlashAttention-2 (a two-pass dK/dV + dQ split
// would need seven).
#include "kernels/attention.h"

#include <cblas.h>
#include <omp.h>

#if defined(__x86_64__)
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_ps() as the unused source of their unmasked forms, which
// -Wmaybe-uninitialized reports at the header's lines (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

#include <algorithm>
#include <bit>
#include <climits>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/check.h"
#include "core/memory.h"
#include "kernels/bf16.h"
#include "kernels/gemm.h"
#include "kernels/matmul_precision.h"
#include "kernels/onednn_matmul.h"
#include "kernels/softmax_exp.h"

namespace tsp::kernels {

namespace {

// The tile products. fp64 runs on OpenBLAS; fp32 on oneDNN by default, whose cached per-thread primitives
// skip the packing OpenBLAS repeats on every short tile call (docs/performance.md, "Attention tiles"), or on
// OpenBLAS when AttentionBlocks::products says so (the benchmark compares both in one run).
//
// Full tiles (block_q x block_k, the bulk of the work) get a oneDNN primitive of their exact shape; every
// edge tile (the last block, the causal diagonal's trimmed tiles, short sequences) shares one any-shape
// primitive per product, so the primitives stay a handful whatever sequence lengths a run meets. The choice
// depends on the tile's shape alone, so a resumed run repeats an uninterrupted one bit for bit.
struct TileGemm {
  bool onednn = true;
  template <class T>
  void operator()(bool full, bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
                  int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) const {
    if constexpr (std::is_same_v<T, float>)
      if (onednn) return onednn::matmul(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, !full);
    gemm<T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  // bf16 operands (bit patterns), fp32 accumulation and result: always oneDNN.
  void operator()(bool full, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                  const uint16_t* a, int64_t lda, const uint16_t* b, int64_t ldb, float beta, float* c,
                  int64_t ldc) const {
    onednn::matmul(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, !full);
  }
};

// Whether the tile products read bf16 operands (bit patterns, uint16_t) rather than T: a float kernel with
// oneDNN tiles under --matmul-precision bf16.
template <class T>
bool bf16_tiles(const AttentionBlocks& blocks) {
  return std::is_same_v<T, float> && blocks.products == TileProducts::onednn &&
         matmul_precision() == MatmulPrecision::bf16;
}

// Where row `row` of head `head` of an operand of the tile products starts: token-major [tokens, heads, d] as
// the caller stores it (ld = heads * d, head stride d), or head-major [heads, tokens, d] (ld = d, head stride
// tokens * d) for the bf16 copies. Tiles of a head-major operand are dense, which oneDNN 2.6 needs to pick
// its AMX brgemm kernel: with any leading dimension other than the row length it falls back to gemm:jit,
// which ran bf16 tiles at half the fp32 rate (docs/performance.md, "Attention tiles").
template <class E>
struct HeadRows {
  E* data;
  int64_t ld;
  int64_t head_stride;
  E* at(int64_t row, int64_t head) const { return data + row * ld + head * head_stride; }
};

template <class E>
HeadRows<E> token_major(E* x, int64_t heads, int64_t d) {
  return {x, heads * d, d};
}

// The bf16 tiles' softmax rows (where a bf16 step spends most of its time outside the tile products) and the
// operands' bf16 copies. GCC's vectorisation of exp_score (blends and masked operations for the clamps, four
// operations for 2^n) ran at 0.4 ns per score, a third of a tile product's time, and rounding P and dS to
// bf16 in a second pass over each tile cost a tenth more. On CPUs with AVX512-BF16 (every CPU whose bf16
// tile products do not emulate bf16) the rows below compute the same exp_score with fewer instructions
// (vscalefps for 2^n, the clamps as min/max) and round with vcvtneps2bf16 as they go: ~1.4x on the
// exponentials, the rounding nearly free. The operands' copies round with it too (to_bf16 called per head
// row of 64 elements ran at 1/3 of its speed). vcvtneps2bf16 flushes subnormals, which the tile products
// (vdpbf16ps, AMX) treat as zero anyway; P is never subnormal (exp_score gives 0 or at least e^-87). Other
// CPUs take the portable loops.
#if defined(__x86_64__) && defined(__GNUC__)
#define TSP_ATTENTION_AVX512_BF16 1
#define TSP_TARGET_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

bool has_avx512_bf16() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                         __builtin_cpu_supports("avx512bf16");
  return ok;
}

// exp_score on 16 lanes, bit for bit what GCC makes of it (the same contractions into FMAs) for every input
// but NaN, which stays a NaN. The clamp keeps 2^n normal, so vscalefps equals the multiplication by 2^n.
TSP_TARGET_AVX512_BF16 inline __m512 exp_score16(__m512 x) {
  const __m512 round_to_int = _mm512_set1_ps(12582912.0f);
  const __m512 lowest = _mm512_set1_ps(-87.0f);
  // max/min return their second operand when either is NaN: a NaN x passes through.
  const __m512 xc = _mm512_min_ps(_mm512_set1_ps(88.0f), _mm512_max_ps(lowest, x));
  const __m512 n =
      _mm512_sub_ps(_mm512_fmadd_ps(xc, _mm512_set1_ps(1.44269504088896341f), round_to_int), round_to_int);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 er = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
  // Below e^-87 (masked scores: -inf) exactly 0; "not less than" is true for NaN, which stays.
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, lowest, _CMP_NLT_UQ), _mm512_scalef_ps(er, n));
}

// The lanes of a row's 16-wide chunk starting at j that lie inside its n entries.
inline __mmask16 live_lanes(int64_t n, int64_t j) {
  return n - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j)) - 1u);
}

TSP_TARGET_AVX512_BF16 inline void store_bf16(uint16_t* y, __mmask16 live, __m512 x) {
  _mm256_mask_storeu_epi16(y, live, reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(x)));
}

// to_bf16 on AVX512-BF16.
TSP_TARGET_AVX512_BF16 void to_bf16_avx512(const float* x, int64_t n, uint16_t* y) {
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 live = live_lanes(n, j);
    store_bf16(y + j, live, _mm512_maskz_loadu_ps(live, x + j));
  }
}

// exp_row_bf16 on AVX512-BF16; the sum runs over 16 lanes, then across them.
TSP_TARGET_AVX512_BF16 float exp_row_bf16_avx512(const float* row, int64_t n, float shift, uint16_t* p) {
  const __m512 vshift = _mm512_set1_ps(shift);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 live = live_lanes(n, j);
    const __m512 e = exp_score16(_mm512_sub_ps(_mm512_maskz_loadu_ps(live, row + j), vshift));
    sum = _mm512_mask_add_ps(sum, live, sum, e);
    store_bf16(p + j, live, e);
  }
  return _mm512_reduce_add_ps(sum);
}

TSP_TARGET_AVX512_BF16 void probabilities_and_ds_row_avx512(const float* s, const float* dp, int64_t n,
                                                            float shift, float di, uint16_t* p,
                                                            uint16_t* ds) {
  const __m512 vshift = _mm512_set1_ps(shift), vdi = _mm512_set1_ps(di);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 live = live_lanes(n, j);
    const __m512 e = exp_score16(_mm512_sub_ps(_mm512_maskz_loadu_ps(live, s + j), vshift));
    store_bf16(p + j, live, e);
    store_bf16(ds + j, live, _mm512_mul_ps(e, _mm512_sub_ps(_mm512_maskz_loadu_ps(live, dp + j), vdi)));
  }
}
#endif

// One row rounded to bf16 (kernels::to_bf16, or its AVX512-BF16 form where the CPU has it).
void round_row_to_bf16(const float* x, int64_t n, uint16_t* y) {
#ifdef TSP_ATTENTION_AVX512_BF16
  if (has_avx512_bf16()) return to_bf16_avx512(x, n, y);
#endif
  to_bf16(x, n, y);
}

// A whole operand (Q, K, V or dO, [n, heads, d] token-major) rounded to bf16 into `copy` head-major by the
// call's team (workspace, counted).
HeadRows<const uint16_t> bf16_head_major(const float* x, int64_t n, int64_t heads, int64_t d,
                                         Buffer<uint16_t>& copy, int n_threads) {
  copy = Buffer<uint16_t>(n * heads * d, Mem::workspace);
  uint16_t* y = copy.data();
  // Token by token, so that x streams in order (head by head it was read at a stride of heads * d).
#pragma omp parallel for schedule(static) num_threads(n_threads)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t h = 0; h < heads; ++h) round_row_to_bf16(x + (i * heads + h) * d, d, y + (h * n + i) * d);
  return {y, d, n * d};
}

AttentionBlocks g_default_blocks;

}  // namespace

const AttentionBlocks& default_attention_blocks() {
  return g_default_blocks;
}

void set_default_attention_blocks(const AttentionBlocks& blocks) {
  g_default_blocks = blocks;
}

namespace {

template <class T>
constexpr T kNegInf = -std::numeric_limits<T>::infinity();

// The smallest and largest position of each block: a key block is invisible to a query block when its
// smallest key comes after the largest query, and needs no mask when its largest key precedes the smallest
// query. Taking min/max (not the first/last entry) keeps this right for unsorted lists such as zigzag shards
// or keys gathered from several ranks.
struct PositionRange {
  int64_t lo;
  int64_t hi;
};

std::vector<PositionRange> block_ranges(const int64_t* pos, int64_t n, int64_t block) {
  std::vector<PositionRange> r;
  for (int64_t b0 = 0; b0 < n; b0 += block) {
    const int64_t b1 = std::min(n, b0 + block);
    PositionRange pr{pos[b0], pos[b0]};
    for (int64_t i = b0 + 1; i < b1; ++i) {
      pr.lo = std::min(pr.lo, pos[i]);
      pr.hi = std::max(pr.hi, pos[i]);
    }
    r.push_back(pr);
  }
  return r;
}

// The part of a [query block x key block] tile that has to be computed: queries [i0, i0 + rows) against keys
// [j0, j0 + cols). `masked` says some pairs inside are invisible and need the per-score mask.
struct Tile {
  int64_t i0 = 0;
  int64_t rows = 0;
  int64_t j0 = 0;
  int64_t cols = 0;
  bool masked = false;
};

// Blocks start at bi0 / bj0 with bq / bk entries and position ranges qr / kr. A straddling tile is trimmed to
// the bounding box of its visible pairs: leading and trailing queries that precede every key of the block,
// and keys that follow every query of the block, would only produce masked scores. On the diagonal of sorted
// (or piecewise sorted, as in zigzag) positions this cuts the tile down to its triangle's box.
Tile visible_tile(const int64_t* q_pos, const int64_t* k_pos, int64_t bi0, int64_t bq, int64_t bj0,
                  int64_t bk, const PositionRange& qr, const PositionRange& kr) {
  if (kr.lo > qr.hi) return {};
  if (kr.hi <= qr.lo) return {bi0, bq, bj0, bk, false};
  // Both loops stop: the query at qr.hi sees the key at kr.lo.
  int64_t r0 = bi0, r1 = bi0 + bq, c0 = bj0, c1 = bj0 + bk;
  while (q_pos[r0] < kr.lo) ++r0;
  while (q_pos[r1 - 1] < kr.lo) --r1;
  while (k_pos[c0] > qr.hi) ++c0;
  while (k_pos[c1 - 1] > qr.hi) --c1;
  return {r0, r1 - r0, c0, c1 - c0, true};
}

// How a tile's products run: on primitives of its exact shape (TileGemm) or on the any-shape ones, and the
// row stride of its score, probability and dS tiles. Full tiles are fixed-shape. With bf16 operands so are
// the tiles that trimming cuts from the causal diagonal of sorted positions, block_q rows by a multiple of
// block_q columns, stored densely: oneDNN's any-shape bf16 kernel (gemm:jit), which it also picks for a
// fixed shape with a row stride other than the row length, ran them at a third of the rate of its brgemm
// kernel. There are at most block_k / block_q such shapes whatever the sequence length. Every other tile
// keeps the row stride lds = block_k, so that one any-shape primitive serves them all; fp32 tiles are laid
// out as before, and keep their bits.
struct TileLayout {
  bool fixed_shape;
  int64_t ld;
};

template <class T, class In>
TileLayout tile_layout(int64_t rows, int64_t cols, const AttentionBlocks& blocks, int64_t lds) {
  const bool trimmed_diagonal = !std::is_same_v<In, T> && cols < blocks.block_k && cols % blocks.block_q == 0;
  if (rows == blocks.block_q && (cols == blocks.block_k || trimmed_diagonal)) return {true, cols};
  return {false, lds};
}

void check_shape(const AttentionShape& s, const AttentionBlocks& b, const char* who) {
  TSP_CHECK(s.nq >= 0 && s.nk >= 0, "{}: token counts must be non-negative (nq={}, nk={})", who, s.nq, s.nk);
  TSP_CHECK(s.n_heads > 0 && s.n_kv_heads > 0 && s.head_dim > 0,
            "{}: heads and head_dim must be positive (n_heads={}, n_kv_heads={}, head_dim={})", who,
            s.n_heads, s.n_kv_heads, s.head_dim);
  TSP_CHECK(s.n_heads % s.n_kv_heads == 0, "{}: n_heads={} is not a multiple of n_kv_heads={}", who,
            s.n_heads, s.n_kv_heads);
  TSP_CHECK(b.block_q > 0 && b.block_k > 0, "{}: block sizes must be positive (block_q={}, block_k={})", who,
            b.block_q, b.block_k);
  // Tile dimensions and row strides go to BLAS as 32-bit integers.
  TSP_CHECK(b.block_q <= INT_MAX && b.block_k <= INT_MAX && s.n_heads * s.head_dim <= INT_MAX,
            "{}: block sizes ({}, {}) and n_heads * head_dim = {} must fit a 32-bit BLAS integer", who,
            b.block_q, b.block_k, s.n_heads * s.head_dim);
}

// The tiles are issued from inside an OpenMP team, so each BLAS call must stay on its calling thread; the
// previous OpenBLAS thread count is restored for the GEMMs that run outside attention.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() : saved_(openblas_get_num_threads()) { openblas_set_num_threads(1); }
  ~SingleThreadedBlas() { openblas_set_num_threads(saved_); }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int saved_;
};

// Threads for a call doing `macs` multiply-adds per tile product. Below about a million a parallel region's
// start-up and barrier cost more than they save, and on a loaded machine a team waiting for a descheduled
// member stalls: small calls (decoding one token, the tests' finite differences) stay on the calling thread.
int team_size(int64_t nq, int64_t nk, int64_t n_heads, int64_t head_dim) {
  const double macs = double(nq) * double(nk) * double(n_heads) * double(head_dim);
  return macs < double(1 << 20) ? 1 : omp_get_max_threads();
}

// Masked scores become -inf, so the max ignores them and exp_score turns them into exact zeros.
template <class T>
void mask_row(T* row, const int64_t* k_pos, int64_t n, int64_t q_pos) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) row[j] = k_pos[j] <= q_pos ? row[j] : kNegInf<T>;
}

// NaN when the row holds one (a NaN score must make the output NaN, not be skipped by the comparisons).
template <class T>
T row_max(const T* row, int64_t n) {
  T m = kNegInf<T>;
  int nan = 0;
#pragma omp simd reduction(max : m) reduction(| : nan)
  for (int64_t j = 0; j < n; ++j) {
    m = row[j] > m ? row[j] : m;
    nan |= row[j] != row[j];
  }
  return nan ? std::numeric_limits<T>::quiet_NaN() : m;
}

// row[j] = exp(row[j] - shift); returns the sum of the new row.
template <class T>
T exp_row(T* row, int64_t n, T shift) {
  T sum = T(0);
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) {
    const T p = exp_score(row[j] - shift);
    row[j] = p;
    sum += p;
  }
  return sum;
}

// exp_row for bf16 tiles: p[j] = bf16(exp(row[j] - shift)); returns the sum of the fp32 exponentials. The
// portable path leaves the exponentials in row.
float exp_row_bf16(float* row, int64_t n, float shift, uint16_t* p) {
#ifdef TSP_ATTENTION_AVX512_BF16
  if (has_avx512_bf16()) return exp_row_bf16_avx512(row, n, shift, p);
#endif
  const float sum = exp_row(row, n, shift);
  to_bf16(row, n, p);
  return sum;
}

// A forward row's probabilities exp(row - shift) where the P·V product reads them, returning their sum: in
// place for T (p is the row itself), rounded into p in the same pass for bf16.
template <class T>
T probabilities_row(T* row, int64_t n, T shift, T* /*p: row*/) {
  return exp_row(row, n, shift);
}

float probabilities_row(float* row, int64_t n, float shift, uint16_t* p) {
  return exp_row_bf16(row, n, shift, p);
}

// One row of a backward tile: P = exp(S - shift) and dS = P (dP - D), in place over s and dp for T (p and
// ds are s and dp), rounded into p and ds for bf16 (below).
template <class T>
void probabilities_and_ds_row(T* s, T* dp, int64_t n, T shift, T di, T* /*p: s*/, T* /*ds: dp*/) {
  exp_row(s, n, shift);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) dp[j] = s[j] * (dp[j] - di);
}

// The bf16 form rounds P and dS into p and ds in the same pass, and never stores P in fp32; the portable
// path computes the fp32 row as above and then rounds it.
void probabilities_and_ds_row(float* s, float* dp, int64_t n, float shift, float di, uint16_t* p,
                              uint16_t* ds) {
#ifdef TSP_ATTENTION_AVX512_BF16
  if (has_avx512_bf16()) return probabilities_and_ds_row_avx512(s, dp, n, shift, di, p, ds);
#endif
  probabilities_and_ds_row<float>(s, dp, n, shift, di, s, dp);
  to_bf16(s, n, p);
  to_bf16(dp, n, ds);
}

}  // namespace

namespace {

// The forward with the tile products reading In (T, or bf16 for float): q, k and v are already in In.
template <class T, class In>
void forward_tiles(T* out, T* lse, HeadRows<const In> q, HeadRows<const In> k, HeadRows<const In> v,
                   const int64_t* q_pos, const int64_t* k_pos, const AttentionShape& s, double scale,
                   const AttentionBlocks& blocks, int n_threads) {
  const TileGemm tile_gemm{blocks.products == TileProducts::onednn};
  const int64_t nq = s.nq, nk = s.nk, n_heads = s.n_heads, d = s.head_dim;
  const int64_t group = n_heads / s.n_kv_heads;
  const int64_t ldq = n_heads * d;
  const int64_t bq = std::min(blocks.block_q, nq);
  const int64_t bk = std::max<int64_t>(1, std::min(blocks.block_k, nk));
  // Row stride of the score tile: block_k whatever the tile's width, so every edge tile of every sequence
  // length has the same strides (one any-shape primitive, TileGemm).
  const int64_t lds = std::max(bk, blocks.block_k);
  const auto q_ranges = block_ranges(q_pos, nq, bq);
  const auto k_ranges = block_ranges(k_pos, nk, bk);
  const int64_t n_qblocks = static_cast<int64_t>(q_ranges.size());
  const int64_t n_kblocks = static_cast<int64_t>(k_ranges.size());
  const int64_t n_tasks = n_qblocks * n_heads;
  const T alpha_qk = static_cast<T>(scale);

  SingleThreadedBlas single_threaded_blas;
#pragma omp parallel num_threads(n_threads)
  {
    std::vector<T> scores(static_cast<size_t>(bq * lds));
    std::vector<T> acc(static_cast<size_t>(bq * d));
    std::vector<T> row_m(static_cast<size_t>(bq));
    std::vector<T> row_l(static_cast<size_t>(bq));
    // The probability tile the P·V product reads (row stride lds or less, TileLayout): the scores themselves,
    // overwritten, for T; for bf16 a tile of its own that the softmax writes in the pass that computes it.
    std::vector<In> p_in(std::is_same_v<In, T> ? 0 : static_cast<size_t>(bq * lds));
    In* const p_tile = [&] {
      if constexpr (std::is_same_v<In, T>)
        return scores.data();
      else
        return p_in.data();
    }();

    // Under causal masking later query blocks see more keys: hand them out first so the cheap ones fill gaps.
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < n_tasks; ++t) {
      const int64_t qb = n_qblocks - 1 - t / n_heads;
      const int64_t h = t % n_heads;
      const int64_t kvh = h / group;
      const int64_t i0 = qb * bq;
      const int64_t mq = std::min(bq, nq - i0);
      std::fill(acc.begin(), acc.end(), T(0));
      std::fill(row_m.begin(), row_m.end(), kNegInf<T>);
      std::fill(row_l.begin(), row_l.end(), T(0));

      for (int64_t kb = 0; kb < n_kblocks; ++kb) {
        const int64_t j0 = kb * bk;
        const Tile tile =
            visible_tile(q_pos, k_pos, i0, mq, j0, std::min(bk, nk - j0), q_ranges[qb], k_ranges[kb]);
        if (tile.rows == 0) continue;
        const int64_t r0 = tile.i0 - i0;  // first tile row within this task's accumulators
        const int64_t cols = tile.cols;
        const auto [full, ld] = tile_layout<T, In>(tile.rows, cols, blocks, lds);
        tile_gemm(full, false, true, tile.rows, cols, d, alpha_qk, q.at(tile.i0, h), q.ld, k.at(tile.j0, kvh),
                  k.ld, T(0), scores.data(), ld);

        for (int64_t i = 0; i < tile.rows; ++i) {
          T* row = scores.data() + i * ld;
          In* p_row = p_tile + i * ld;
          T* m = &row_m[static_cast<size_t>(r0 + i)];
          T* l = &row_l[static_cast<size_t>(r0 + i)];
          if (tile.masked) mask_row(row, k_pos + tile.j0, cols, q_pos[tile.i0 + i]);
          const T rm = row_max(row, cols);
          const T m_new = rm != rm ? rm : std::max(*m, rm);  // a NaN stays: the output becomes NaN
          if (m_new == kNegInf<T>) {
            // Nothing visible to this query yet: its probabilities are zero, not exp(-inf - -inf).
            std::fill(p_row, p_row + cols, In(0));
            continue;
          }
          // Online softmax: earlier numerators were relative to the old max, rescale them to the new one.
          const T correction = exp_score(*m - m_new);
          *l = *l * correction + probabilities_row(row, cols, m_new, p_row);
          *m = m_new;
          if (correction != T(1)) {
            T* acc_row = acc.data() + (r0 + i) * d;
            for (int64_t c = 0; c < d; ++c) acc_row[c] *= correction;
          }
        }
        tile_gemm(full, false, false, tile.rows, d, cols, T(1), p_tile, ld, v.at(tile.j0, kvh), v.ld, T(1),
                  acc.data() + r0 * d, d);
      }

      for (int64_t i = 0; i < mq; ++i) {
        T* out_row = out + (i0 + i) * ldq + h * d;
        const T* acc_row = acc.data() + i * d;
        if (row_l[i] == T(0)) {
          std::fill(out_row, out_row + d, T(0));
          lse[(i0 + i) * n_heads + h] = kNegInf<T>;
          continue;
        }
        const T inv_l = T(1) / row_l[i];
        for (int64_t c = 0; c < d; ++c) out_row[c] = acc_row[c] * inv_l;
        lse[(i0 + i) * n_heads + h] = row_m[i] + std::log(row_l[i]);
      }
    }
  }
}

}  // namespace

template <class T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const int64_t* q_pos,
                       const int64_t* k_pos, const AttentionShape& s, double scale,
                       const AttentionBlocks& blocks) {
  check_shape(s, blocks, "attention_forward");
  if (s.nq == 0) return;
  const int n_threads = team_size(s.nq, s.nk, s.n_heads, s.head_dim);
  if constexpr (std::is_same_v<T, float>) {
    if (bf16_tiles<T>(blocks)) {
      Buffer<uint16_t> q16, k16, v16;
      const int64_t d = s.head_dim;
      return forward_tiles<T, uint16_t>(out, lse, bf16_head_major(q, s.nq, s.n_heads, d, q16, n_threads),
                                        bf16_head_major(k, s.nk, s.n_kv_heads, d, k16, n_threads),
                                        bf16_head_major(v, s.nk, s.n_kv_heads, d, v16, n_threads), q_pos,
                                        k_pos, s, scale, blocks, n_threads);
    }
  }
  forward_tiles<T, T>(out, lse, token_major(q, s.n_heads, s.head_dim),
                      token_major(k, s.n_kv_heads, s.head_dim), token_major(v, s.n_kv_heads, s.head_dim),
                      q_pos, k_pos, s, scale, blocks, n_threads);
}

template <class T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const int64_t* q_pos,
                       const int64_t* k_pos, const AttentionShape& s, double scale) {
  attention_forward(out, lse, q, k, v, q_pos, k_pos, s, scale, default_attention_blocks());
}

namespace {

// The backward with the tile products reading In (T, or bf16 for float): q, k, v and dout_in are in In; dout
// and out (for the row terms D) stay T. With bf16 operands (head-major, dense tiles) the dQ accumulators are
// head-major too, so that the dS·K product writes a dense tile: every thread then has its own copy, and the
// copies are summed into dq in thread order.
template <class T, class In>
void backward_tiles(T* dq, T* dk, T* dv, const T* dout, HeadRows<const In> dout_in, HeadRows<const In> q,
                    HeadRows<const In> k, HeadRows<const In> v, const T* out, const T* lse,
                    const int64_t* q_pos, const int64_t* k_pos, const AttentionShape& s, double scale,
                    const AttentionBlocks& blocks, int n_threads) {
  const TileGemm tile_gemm{blocks.products == TileProducts::onednn};
  const int64_t nq = s.nq, nk = s.nk, n_heads = s.n_heads, n_kv_heads = s.n_kv_heads, d = s.head_dim;
  const int64_t group = n_heads / n_kv_heads;
  const int64_t ldq = n_heads * d, ldk = n_kv_heads * d;
  constexpr bool head_major_dq = !std::is_same_v<In, T>;
  const int64_t bq = std::min(blocks.block_q, nq);
  const int64_t bk = std::min(blocks.block_k, nk);
  const int64_t lds = std::max(bk, blocks.block_k);  // the score tiles' row stride, as in the forward
  const auto q_ranges = block_ranges(q_pos, nq, bq);
  const auto k_ranges = block_ranges(k_pos, nk, bk);
  const int64_t n_qblocks = static_cast<int64_t>(q_ranges.size());
  const int64_t n_kblocks = static_cast<int64_t>(k_ranges.size());
  const T alpha = static_cast<T>(scale);

  // FlashAttention-2 row terms: D_i = dout_i . out_i equals sum_j P_ij dP_ij, the softmax Jacobian's diagonal
  // correction. A query that saw no key (lse = -inf) gets shift +inf, which makes every recomputed P zero.
  std::vector<T> row_d(static_cast<size_t>(nq * n_heads));
  std::vector<T> row_shift(static_cast<size_t>(nq * n_heads));
#pragma omp parallel for schedule(static) num_threads(n_threads)
  for (int64_t i = 0; i < nq; ++i) {
    for (int64_t h = 0; h < n_heads; ++h) {
      const T* o = out + i * ldq + h * d;
      const T* g = dout + i * ldq + h * d;
      T sum = T(0);
      for (int64_t c = 0; c < d; ++c) sum += o[c] * g[c];
      row_d[i * n_heads + h] = sum;
      const T l = lse[i * n_heads + h];
      row_shift[i * n_heads + h] = l == kNegInf<T> ? std::numeric_limits<T>::infinity() : l;
    }
  }

  std::vector<Buffer<T>> dq_private;
  for (int t = head_major_dq ? 0 : 1; t < n_threads; ++t)
    dq_private.emplace_back(nq * ldq, Mem::workspace);  // zero-filled
  const int64_t n_tasks = n_kblocks * n_kv_heads;

  SingleThreadedBlas single_threaded_blas;
  // num_threads bounds the team by the number of dQ copies even when called from inside another team.
#pragma omp parallel num_threads(n_threads)
  {
    const int tid = omp_get_thread_num();
    const HeadRows<T> dq_acc =
        head_major_dq ? HeadRows<T>{dq_private[size_t(tid)].data(), d, nq * d}
                      : token_major(tid == 0 ? dq : dq_private[size_t(tid - 1)].data(), n_heads, d);
    std::vector<T> p(static_cast<size_t>(bq * lds));
    std::vector<T> ds(static_cast<size_t>(bq * lds));
    std::vector<T> dk_acc(static_cast<size_t>(bk * d));
    std::vector<T> dv_acc(static_cast<size_t>(bk * d));
    // The P and dS tiles the products read (row stride lds or less, TileLayout): p and ds themselves,
    // overwritten, for T; for bf16 tiles of their own, written by the row pass that computes them.
    std::vector<In> p_in(std::is_same_v<In, T> ? 0 : static_cast<size_t>(bq * lds));
    std::vector<In> ds_in(p_in.size());
    In* const p_tile = [&] {
      if constexpr (std::is_same_v<In, T>)
        return p.data();
      else
        return p_in.data();
    }();
    In* const ds_tile = [&] {
      if constexpr (std::is_same_v<In, T>)
        return ds.data();
      else
        return ds_in.data();
    }();

    // Tasks go round-robin (static, 1), not first-come: which dQ copy a task adds into, and in what order,
    // must not depend on timing, so that a training run is bitwise reproducible (exact resume) for a given
    // thread count. Cyclic assignment also spreads the heavy early key blocks (visible to the most queries
    // under causal masking) over all threads.
#pragma omp for schedule(static, 1)
    for (int64_t t = 0; t < n_tasks; ++t) {
      const int64_t kb = t / n_kv_heads;
      const int64_t kvh = t % n_kv_heads;
      const int64_t j0 = kb * bk;
      const int64_t nkk = std::min(bk, nk - j0);
      std::fill(dk_acc.begin(), dk_acc.end(), T(0));
      std::fill(dv_acc.begin(), dv_acc.end(), T(0));

      for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
        for (int64_t qb = 0; qb < n_qblocks; ++qb) {
          const int64_t i0 = qb * bq;
          const Tile tile =
              visible_tile(q_pos, k_pos, i0, std::min(bq, nq - i0), j0, nkk, q_ranges[qb], k_ranges[kb]);
          if (tile.rows == 0) continue;
          const int64_t rows = tile.rows, cols = tile.cols;
          const auto [full, ld] = tile_layout<T, In>(rows, cols, blocks, lds);
          const int64_t c0 = tile.j0 - j0;  // first tile column within this task's dK/dV accumulators
          const In* q_tile = q.at(tile.i0, h);
          const In* dout_tile = dout_in.at(tile.i0, h);
          const In* k_tile = k.at(tile.j0, kvh);
          const In* v_tile = v.at(tile.j0, kvh);

          // S = scale * Q K^T (P is recomputed instead of stored) and dP = dO V^T.
          tile_gemm(full, false, true, rows, cols, d, alpha, q_tile, q.ld, k_tile, k.ld, T(0), p.data(), ld);
          tile_gemm(full, false, true, rows, cols, d, T(1), dout_tile, dout_in.ld, v_tile, v.ld, T(0),
                    ds.data(), ld);
          // P = exp(S - lse) and dS = P * (dP - D), one pass per row.
          for (int64_t i = 0; i < rows; ++i) {
            T* s_row = p.data() + i * ld;
            if (tile.masked) mask_row(s_row, k_pos + tile.j0, cols, q_pos[tile.i0 + i]);
            probabilities_and_ds_row(s_row, ds.data() + i * ld, cols, row_shift[(tile.i0 + i) * n_heads + h],
                                     row_d[(tile.i0 + i) * n_heads + h], p_tile + i * ld, ds_tile + i * ld);
          }
          // dV += P^T dO
          tile_gemm(full, true, false, cols, d, rows, T(1), p_tile, ld, dout_tile, dout_in.ld, T(1),
                    dv_acc.data() + c0 * d, d);
          // dQ += scale * dS K ;  dK += scale * dS^T Q
          tile_gemm(full, false, false, rows, d, cols, alpha, ds_tile, ld, k_tile, k.ld, T(1),
                    dq_acc.at(tile.i0, h), dq_acc.ld);
          tile_gemm(full, true, false, cols, d, rows, alpha, ds_tile, ld, q_tile, q.ld, T(1),
                    dk_acc.data() + c0 * d, d);
        }
      }

      for (int64_t j = 0; j < nkk; ++j) {
        T* dk_row = dk + (j0 + j) * ldk + kvh * d;
        T* dv_row = dv + (j0 + j) * ldk + kvh * d;
        for (int64_t c = 0; c < d; ++c) {
          dk_row[c] += dk_acc[static_cast<size_t>(j * d + c)];
          dv_row[c] += dv_acc[static_cast<size_t>(j * d + c)];
        }
      }
    }
  }

  if (head_major_dq) {
#pragma omp parallel for collapse(2) schedule(static) num_threads(n_threads)
    for (int64_t i = 0; i < nq; ++i)
      for (int64_t h = 0; h < n_heads; ++h)
        for (int64_t c = 0; c < d; ++c) {
          T sum = dq[(i * n_heads + h) * d + c];
          for (const Buffer<T>& b : dq_private) sum += b[(h * nq + i) * d + c];
          dq[(i * n_heads + h) * d + c] = sum;
        }
  } else if (!dq_private.empty()) {
    const int64_t n = nq * ldq;
#pragma omp parallel for schedule(static) num_threads(n_threads)
    for (int64_t e = 0; e < n; ++e) {
      T sum = dq[e];
      for (const Buffer<T>& b : dq_private) sum += b[e];
      dq[e] = sum;
    }
  }
}

}  // namespace

template <class T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,
                        const T* lse, const int64_t* q_pos, const int64_t* k_pos, const AttentionShape& s,
                        double scale, const AttentionBlocks& blocks) {
  check_shape(s, blocks, "attention_backward");
  if (s.nq == 0 || s.nk == 0) return;
  const int n_threads = team_size(s.nq, s.nk, s.n_heads, s.head_dim);
  if constexpr (std::is_same_v<T, float>) {
    if (bf16_tiles<T>(blocks)) {
      Buffer<uint16_t> dout16, q16, k16, v16;
      const int64_t d = s.head_dim;
      return backward_tiles<T, uint16_t>(dq, dk, dv, dout,
                                         bf16_head_major(dout, s.nq, s.n_heads, d, dout16, n_threads),
                                         bf16_head_major(q, s.nq, s.n_heads, d, q16, n_threads),
                                         bf16_head_major(k, s.nk, s.n_kv_heads, d, k16, n_threads),
                                         bf16_head_major(v, s.nk, s.n_kv_heads, d, v16, n_threads), out, lse,
                                         q_pos, k_pos, s, scale, blocks, n_threads);
    }
  }
  const int64_t d = s.head_dim;
  backward_tiles<T, T>(dq, dk, dv, dout, token_major(dout, s.n_heads, d), token_major(q, s.n_heads, d),
                       token_major(k, s.n_kv_heads, d), token_major(v, s.n_kv_heads, d), out, lse, q_pos,
                       k_pos, s, scale, blocks, n_threads);
}

template <class T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,
                        const T* lse, const int64_t* q_pos, const int64_t* k_pos, const AttentionShape& s,
                        double scale) {
  attention_backward(dq, dk, dv, dout, q, k, v, out, lse, q_pos, k_pos, s, scale, default_attention_blocks());
}

template <class T>
void attention_forward_naive(T* out, T* lse, const T* q, const T* k, const T* v, const int64_t* q_pos,
                             const int64_t* k_pos, const AttentionShape& s, double scale) {
  check_shape(s, AttentionBlocks{}, "attention_forward_naive");
  const int64_t nq = s.nq, nk = s.nk, n_heads = s.n_heads, d = s.head_dim;
  const int64_t group = n_heads / s.n_kv_heads;
  const int64_t ldq = n_heads * d, ldk = s.n_kv_heads * d;
  // Accumulates in double whatever T is, so that it serves as the reference for the float kernel too.
  std::vector<double> prob(static_cast<size_t>(nk));
  std::vector<double> o(static_cast<size_t>(d));
  for (int64_t i = 0; i < nq; ++i) {
    for (int64_t h = 0; h < n_heads; ++h) {
      const int64_t kvh = h / group;
      const T* qi = q + i * ldq + h * d;
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < nk; ++j) {
        if (k_pos[j] > q_pos[i]) continue;
        const T* kj = k + j * ldk + kvh * d;
        double dot = 0.0;
        for (int64_t c = 0; c < d; ++c) dot += double(qi[c]) * double(kj[c]);
        prob[static_cast<size_t>(j)] = scale * dot;
        m = std::isnan(scale * dot) || std::isnan(m) ? std::numeric_limits<double>::quiet_NaN()
                                                     : std::max(m, scale * dot);
      }
      T* out_row = out + i * ldq + h * d;
      if (m == -std::numeric_limits<double>::infinity()) {
        std::fill(out_row, out_row + d, T(0));
        lse[i * n_heads + h] = kNegInf<T>;
        continue;
      }
      double l = 0.0;
      std::fill(o.begin(), o.end(), 0.0);
      for (int64_t j = 0; j < nk; ++j) {
        if (k_pos[j] > q_pos[i]) continue;
        const double pj = std::exp(prob[static_cast<size_t>(j)] - m);
        l += pj;
        const T* vj = v + j * ldk + kvh * d;
        for (int64_t c = 0; c < d; ++c) o[static_cast<size_t>(c)] += pj * double(vj[c]);
      }
      for (int64_t c = 0; c < d; ++c) out_row[c] = static_cast<T>(o[static_cast<size_t>(c)] / l);
      lse[i * n_heads + h] = static_cast<T>(m + std::log(l));
    }
  }
}

#define TSP_INSTANTIATE_ATTENTION(T)                                                                       \
  template void attention_forward<T>(T*, T*, const T*, const T*, const T*, const int64_t*, const int64_t*, \
                                     const AttentionShape&, double);                                       \
  template void attention_forward<T>(T*, T*, const T*, const T*, const T*, const int64_t*, const int64_t*, \
                                     const AttentionShape&, double, const AttentionBlocks&);               \
  template void attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*,        \
                                      const T*, const int64_t*, const int64_t*, const AttentionShape&,     \
                                      double);                                                             \
  template void attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*,        \
                                      const T*, const int64_t*, const int64_t*, const AttentionShape&,     \
                                      double, const AttentionBlocks&);                                     \
  template void attention_forward_naive<T>(T*, T*, const T*, const T*, const T*, const int64_t*,           \
                                           const int64_t*, const AttentionShape&, double);

TSP_INSTANTIATE_ATTENTION(float)
TSP_INSTANTIATE_ATTENTION(double)
#undef TSP_INSTANTIATE_ATTENTION

}  // namespace tsp::kernels
