// Helpers shared by the kernel tests: seeded random data, relative Frobenius errors, and a central-difference
// gradient of a scalar loss. Gradient checks use a random linear functional L = sum(r * out) as the loss, so
// dL/d(out) = r is what the backward receives.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

namespace tsp::test {

template <class T>
void fill_uniform(T* x, int64_t n, std::mt19937_64& rng, double lo = -1.0, double hi = 1.0) {
  std::uniform_real_distribution<double> dist(lo, hi);
  for (int64_t i = 0; i < n; ++i) x[i] = T(dist(rng));
}

template <class T>
std::vector<T> random_vector(int64_t n, std::mt19937_64& rng, double lo = -1.0, double hi = 1.0) {
  std::vector<T> x(static_cast<std::size_t>(n));
  fill_uniform(x.data(), n, rng, lo, hi);
  return x;
}

// Element-wise conversion, e.g. the float copy of a double test input.
template <class To, class From>
std::vector<To> convert(const std::vector<From>& x) {
  return std::vector<To>(x.begin(), x.end());
}

// ||a - b||_F / ||b||_F; falls back to ||a - b||_F when b is exactly zero. NaN anywhere gives NaN, which
// fails every `<=` tolerance check.
template <class A, class B>
double rel_error(const A* a, const B* b, int64_t n) {
  double diff = 0, ref = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(a[i]) - double(b[i]);
    diff += d * d;
    ref += double(b[i]) * double(b[i]);
  }
  return ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff);
}

template <class A, class B>
double rel_error(const std::vector<A>& a, const std::vector<B>& b) {
  if (a.size() != b.size()) return INFINITY;
  return rel_error(a.data(), b.data(), int64_t(a.size()));
}

// sum(r * y) in double: the random linear functional used as a scalar loss.
template <class T>
double dot(const std::vector<double>& r, const T* y) {
  double s = 0;
  for (std::size_t i = 0; i < r.size(); ++i) s += r[i] * double(y[i]);
  return s;
}

template <class T>
double dot(const std::vector<double>& r, const std::vector<T>& y) {
  return dot(r, y.data());
}

// Central-difference gradient of loss() with respect to x, which loss() must read. Each entry is perturbed
// by eps * max(1, |x_i|) in place and restored exactly afterwards; the O(step^2) truncation and the
// O(ulp(L) / step) cancellation error both stay near 1e-10 for eps = 1e-6 in double.
inline std::vector<double> numerical_gradient(const std::function<double()>& loss, std::vector<double>& x,
                                              double eps = 1e-6) {
  std::vector<double> grad(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    const double step = eps * std::max(1.0, std::abs(saved));
    const double x_up = saved + step, x_down = saved - step;  // the points actually evaluated, after rounding
    x[i] = x_up;
    const double up = loss();
    x[i] = x_down;
    const double down = loss();
    x[i] = saved;
    grad[i] = (up - down) / (x_up - x_down);
  }
  return grad;
}

// a - b element-wise: recovers what an accumulating backward added on top of a known starting value.
template <class T>
std::vector<double> minus(const std::vector<T>& a, const std::vector<T>& b) {
  std::vector<double> d(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) d[i] = double(a[i]) - double(b[i]);
  return d;
}

}  // namespace tsp::test
