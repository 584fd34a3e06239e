// simd.h: the few vector operations the kernels use, one definition per ISA.
//
// Included only from kernels_<isa>.cpp, inside that file's namespace, after
// PYLSTM_ISA_{SCALAR,AVX2,AVX512} is defined. Every type here is therefore a
// distinct type per ISA (no ODR clash between translation units compiled with
// different -m flags), and no AVX code leaks into baseline code.
//
// Vec<T> holds Vec<T>::W lanes of T. All loads/stores are unaligned.
// (intentionally no include guard: included once per ISA namespace)

// System headers (<immintrin.h>) are included by kernels_<isa>.cpp before
// it opens its namespace.

template <typename T> struct Vec;

#if defined(PYLSTM_ISA_AVX512)
static constexpr int kVectorRegisters = 32;
template <> struct Vec<float> {
  static constexpr int W = 16;
  __m512 v;
  static Vec zero() { return {_mm512_setzero_ps()}; }
  static Vec set1(float a) { return {_mm512_set1_ps(a)}; }
  static Vec load(const float* p) { return {_mm512_loadu_ps(p)}; }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  static Vec fma(Vec a, Vec b, Vec c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
  friend Vec operator+(Vec a, Vec b) { return {_mm512_add_ps(a.v, b.v)}; }
  friend Vec operator-(Vec a, Vec b) { return {_mm512_sub_ps(a.v, b.v)}; }
  friend Vec operator*(Vec a, Vec b) { return {_mm512_mul_ps(a.v, b.v)}; }
  friend Vec operator/(Vec a, Vec b) { return {_mm512_div_ps(a.v, b.v)}; }
  static Vec min(Vec a, Vec b) { return {_mm512_min_ps(a.v, b.v)}; }
  static Vec max(Vec a, Vec b) { return {_mm512_max_ps(a.v, b.v)}; }
  static Vec round(Vec a) { return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
  // where |x| < t: a, else b (NaN x takes b)
  static Vec select_if_abs_below(Vec x, float t, Vec a, Vec b) {
    const __mmask16 m = _mm512_cmp_ps_mask(_mm512_abs_ps(x.v), _mm512_set1_ps(t), _CMP_LT_OQ);
    return {_mm512_mask_blend_ps(m, b.v, a.v)};
  }
  float sum() const { return _mm512_reduce_add_ps(v); }
  // a · 2^n for integral-valued n
  static Vec scale2(Vec a, Vec n) { return {_mm512_scalef_ps(a.v, n.v)}; }
};
// Eight rows of 16 floats (row r at p + r*rs) transposed into 16 groups of
// eight, group k at out + k*os (os = 8: contiguous): packing eight rows of A,
// or eight columns of a transposed B, for the GEMM, in 32 shuffles instead
// of 128 scalar loads and stores.
inline void transpose_8x16(const float* p, int64_t rs, float* out, int64_t os = 8) {
  __m512 r[8], t[8], u[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm512_loadu_ps(p + i * rs);
  for (int i = 0; i < 8; i += 2) {  // per 128-bit lane j: rows i, i+1 at k = 4j, 4j+1 | 4j+2, 4j+3
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int h = 0; h < 8; h += 4) {  // u[h+m], lane j: rows h..h+3 at k = 4j + m
    u[h + 0] = _mm512_shuffle_ps(t[h], t[h + 2], 0x44);
    u[h + 1] = _mm512_shuffle_ps(t[h], t[h + 2], 0xEE);
    u[h + 2] = _mm512_shuffle_ps(t[h + 1], t[h + 3], 0x44);
    u[h + 3] = _mm512_shuffle_ps(t[h + 1], t[h + 3], 0xEE);
  }
  for (int m = 0; m < 4; ++m) {  // s: lanes j=0,1 of u[m] then of u[m+4]; s2: lanes j=2,3
    t[m] = _mm512_shuffle_f32x4(u[m], u[m + 4], 0x44);
    t[m + 4] = _mm512_shuffle_f32x4(u[m], u[m + 4], 0xEE);
  }
  // Output vector q holds k = 2q, 2q+1, each as rows 0-3 then rows 4-7.
  for (int half = 0; half < 2; ++half) {  // j in {0,1} then {2,3}
    const __m512* s = t + 4 * half;
    const __m512 q[4] = {
        _mm512_shuffle_f32x4(s[0], s[1], 0x88),   // k = 8·half + 0, 1 (m = 0, 1 of the even j)
        _mm512_shuffle_f32x4(s[2], s[3], 0x88),   // k = 8·half + 2, 3 (m = 2, 3)
        _mm512_shuffle_f32x4(s[0], s[1], 0xDD),   // k = 8·half + 4, 5 (the odd j)
        _mm512_shuffle_f32x4(s[2], s[3], 0xDD)};  // k = 8·half + 6, 7
    for (int v = 0; v < 4; ++v) {
      const int64_t k = 8 * half + 2 * v;
      if (os == 8) {
        _mm512_storeu_ps(out + k * 8, q[v]);
      } else {
        _mm256_storeu_ps(out + k * os, _mm512_castps512_ps256(q[v]));
        _mm256_storeu_ps(out + (k + 1) * os, _mm512_extractf32x8_ps(q[v], 1));
      }
    }
  }
}
template <> struct Vec<double> {
  static constexpr int W = 8;
  __m512d v;
  static Vec zero() { return {_mm512_setzero_pd()}; }
  static Vec set1(double a) { return {_mm512_set1_pd(a)}; }
  static Vec load(const double* p) { return {_mm512_loadu_pd(p)}; }
  void store(double* p) const { _mm512_storeu_pd(p, v); }
  static Vec fma(Vec a, Vec b, Vec c) { return {_mm512_fmadd_pd(a.v, b.v, c.v)}; }
  friend Vec operator+(Vec a, Vec b) { return {_mm512_add_pd(a.v, b.v)}; }
  double sum() const { return _mm512_reduce_add_pd(v); }
};
#elif defined(PYLSTM_ISA_AVX2)
static constexpr int kVectorRegisters = 16;
template <> struct Vec<float> {
  static constexpr int W = 8;
  __m256 v;
  static Vec zero() { return {_mm256_setzero_ps()}; }
  static Vec set1(float a) { return {_mm256_set1_ps(a)}; }
  static Vec load(const float* p) { return {_mm256_loadu_ps(p)}; }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  static Vec fma(Vec a, Vec b, Vec c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
  friend Vec operator+(Vec a, Vec b) { return {_mm256_add_ps(a.v, b.v)}; }
  friend Vec operator-(Vec a, Vec b) { return {_mm256_sub_ps(a.v, b.v)}; }
  friend Vec operator*(Vec a, Vec b) { return {_mm256_mul_ps(a.v, b.v)}; }
  friend Vec operator/(Vec a, Vec b) { return {_mm256_div_ps(a.v, b.v)}; }
  static Vec min(Vec a, Vec b) { return {_mm256_min_ps(a.v, b.v)}; }
  static Vec max(Vec a, Vec b) { return {_mm256_max_ps(a.v, b.v)}; }
  static Vec round(Vec a) { return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
  // where |x| < t: a, else b (NaN x takes b)
  static Vec select_if_abs_below(Vec x, float t, Vec a, Vec b) {
    const __m256 absx = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x.v);
    return {_mm256_blendv_ps(b.v, a.v, _mm256_cmp_ps(absx, _mm256_set1_ps(t), _CMP_LT_OQ))};
  }
  float sum() const {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
  }
  // a · 2^n for integral-valued n in [-126, 127] (exp() clamps its input so)
  static Vec scale2(Vec a, Vec n) {
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127)), 23);
    return {_mm256_mul_ps(a.v, _mm256_castsi256_ps(e))};
  }
};
template <> struct Vec<double> {
  static constexpr int W = 4;
  __m256d v;
  static Vec zero() { return {_mm256_setzero_pd()}; }
  static Vec set1(double a) { return {_mm256_set1_pd(a)}; }
  static Vec load(const double* p) { return {_mm256_loadu_pd(p)}; }
  void store(double* p) const { _mm256_storeu_pd(p, v); }
  static Vec fma(Vec a, Vec b, Vec c) { return {_mm256_fmadd_pd(a.v, b.v, c.v)}; }
  friend Vec operator+(Vec a, Vec b) { return {_mm256_add_pd(a.v, b.v)}; }
  double sum() const {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
};
#else
static constexpr int kVectorRegisters = 0;
// Portable path: one lane, plain multiply-add (no contraction, so results do
// not depend on whether the target has FMA).
template <typename T> struct Vec {
  static constexpr int W = 1;
  T v;
  static Vec zero() { return {T(0)}; }
  static Vec set1(T a) { return {a}; }
  static Vec load(const T* p) { return {*p}; }
  void store(T* p) const { *p = v; }
  static Vec fma(Vec a, Vec b, Vec c) { return {a.v * b.v + c.v}; }
  friend Vec operator+(Vec a, Vec b) { return {a.v + b.v}; }
  T sum() const { return v; }
};
#endif

#if defined(PYLSTM_ISA_AVX2) || defined(PYLSTM_ISA_AVX512)
#define PYLSTM_VECTOR_MATH 1
// exp(x) for float lanes: x = n·ln2 + r, |r| <= ln2/2, exp(r) by Cephes'
// degree-6 polynomial (about 1 ulp), then scaled by 2^n. The input is
// clamped so 2^n stays a normal number (exp saturates to about 1e-38 and
// 1.6e38, which the sigmoid and tanh below turn into exact 0 and 1).
inline Vec<float> vexp(Vec<float> x) {
  using V = Vec<float>;
  // min/max return their second operand when either is NaN: x goes second
  // so that a NaN input stays NaN.
  x = V::min(V::set1(88.0f), V::max(V::set1(-87.0f), x));
  const V n = V::round(x * V::set1(1.44269504088896341f));
  V r = V::fma(n, V::set1(-0.693359375f), x);      // ln2 split in two for an exact n·ln2_hi
  r = V::fma(n, V::set1(2.12194440e-4f), r);
  V p = V::set1(1.9875691500e-4f);
  p = V::fma(p, r, V::set1(1.3981999507e-3f));
  p = V::fma(p, r, V::set1(8.3334519073e-3f));
  p = V::fma(p, r, V::set1(4.1665795894e-2f));
  p = V::fma(p, r, V::set1(1.6666665459e-1f));
  p = V::fma(p, r, V::set1(5.0000001201e-1f));
  p = V::fma(p, r * r, r + V::set1(1.0f));
  return V::scale2(p, n);
}
// 1/d, correctly rounded: a refined estimate measured no faster here, and it
// is not exact at d = 1 (so σ(+large) would miss 1 by an ulp and σ' not be 0).
inline Vec<float> vrcp(Vec<float> d) { return Vec<float>::set1(1.0f) / d; }
inline Vec<float> vsigmoid(Vec<float> a) {
  using V = Vec<float>;
  return vrcp(V::set1(1.0f) + vexp(V::zero() - a));
}
// tanh(a): 1 - 2/(exp(2a) + 1) for |a| >= 0.625 (exact at the extremes),
// Cephes' odd polynomial below, where the subtraction would cancel (tanh of a
// tiny a is a, not 0).
inline Vec<float> vtanh(Vec<float> a) {
  using V = Vec<float>;
  const V large = V::set1(1.0f) - V::set1(2.0f) * vrcp(vexp(a + a) + V::set1(1.0f));
  const V s = a * a;
  V p = V::set1(-5.70498872745e-3f);
  p = V::fma(p, s, V::set1(2.06390887954e-2f));
  p = V::fma(p, s, V::set1(-5.37397155531e-2f));
  p = V::fma(p, s, V::set1(1.33314422036e-1f));
  p = V::fma(p, s, V::set1(-3.33332819422e-1f));
  const V small = V::fma(p * s, a, a);
  return V::select_if_abs_below(a, 0.625f, small, large);
}
#endif
