// AdamW (Loshchilov & Hutter): decoupled weight decay, bias-corrected moments.
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   p -= lr * ( (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) + wd * p )
#pragma once

#include <cstdint>

namespace tsp::kernels {

struct AdamWHyper {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
};

// One update of n parameters at step t (1-based) with learning rate lr. Moments kept in T.
template <class T>
void adamw_update(T* p, const T* g, T* m, T* v, int64_t n, int64_t t, double lr, double weight_decay,
                  const AdamWHyper& hp);
// The same with the moments held as bf16 bits (--optimizer-dtype bf16): read widened, updated in double
// like the above, stored rounded to nearest even (each stored moment within 2^-8 of its fp32 value).
void adamw_update(float* p, const float* g, uint16_t* m, uint16_t* v, int64_t n, int64_t t, double lr,
                  double weight_decay, const AdamWHyper& hp);

// Sum of squares, accumulated in double (for the global gradient norm).
template <class T>
double sum_squares(const T* x, int64_t n);

// x *= s.
template <class T>
void scale_inplace(T* x, int64_t n, double s);

// Clipping factor for a global norm: min(1, max_norm / (norm + 1e-6)); max_norm <= 0 disables clipping.
double clip_coefficient(double global_norm, double max_norm);

// Learning rate with linear warm-up to lr_max over `warmup` steps then cosine decay to lr_min at `total`.
// step is 1-based; steps past total stay at lr_min.
double cosine_lr(int64_t step, int64_t warmup, int64_t total, double lr_max, double lr_min);

}  // namespace tsp::kernels
