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
  // The first n lanes (1 <= n <= W) from p, zeros after; and to p, nothing after.
  static Vec load_first(const float* p, int64_t n) { return {_mm512_maskz_loadu_ps(first(n), p)}; }
  void store_first(float* p, int64_t n) const { _mm512_mask_storeu_ps(p, first(n), v); }
  static __mmask16 first(int64_t n) { return __mmask16((1u << n) - 1); }
  static Vec fma(Vec a, Vec b, Vec c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
  friend Vec operator+(Vec a, Vec b) { return {_mm512_add_ps(a.v, b.v)}; }
  friend Vec operator-(Vec a, Vec b) { return {_mm512_sub_ps(a.v, b.v)}; }
  friend Vec operator*(Vec a, Vec b) { return {_mm512_mul_ps(a.v, b.v)}; }
  friend Vec operator/(Vec a, Vec b) { return {_mm512_div_ps(a.v, b.v)}; }
  static Vec min(Vec a, Vec b) { return {_mm512_min_ps(a.v, b.v)}; }
  static Vec max(Vec a, Vec b) { return {_mm512_max_ps(a.v, b.v)}; }
  static Vec round(Vec a) { return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
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
  static Vec load_first(const double* p, int64_t n) { return {_mm512_maskz_loadu_pd(first(n), p)}; }
  void store_first(double* p, int64_t n) const { _mm512_mask_storeu_pd(p, first(n), v); }
  static __mmask8 first(int64_t n) { return __mmask8((1u << n) - 1); }
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
  static Vec load_first(const float* p, int64_t n) { return {_mm256_maskload_ps(p, first(n))}; }
  void store_first(float* p, int64_t n) const { _mm256_maskstore_ps(p, first(n), v); }
  static __m256i first(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static Vec fma(Vec a, Vec b, Vec c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
  friend Vec operator+(Vec a, Vec b) { return {_mm256_add_ps(a.v, b.v)}; }
  friend Vec operator-(Vec a, Vec b) { return {_mm256_sub_ps(a.v, b.v)}; }
  friend Vec operator*(Vec a, Vec b) { return {_mm256_mul_ps(a.v, b.v)}; }
  friend Vec operator/(Vec a, Vec b) { return {_mm256_div_ps(a.v, b.v)}; }
  static Vec min(Vec a, Vec b) { return {_mm256_min_ps(a.v, b.v)}; }
  static Vec max(Vec a, Vec b) { return {_mm256_max_ps(a.v, b.v)}; }
  static Vec round(Vec a) { return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
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
  static Vec load_first(const double* p, int64_t n) { return {_mm256_maskload_pd(p, first(n))}; }
  void store_first(double* p, int64_t n) const { _mm256_maskstore_pd(p, first(n), v); }
  static __m256i first(int64_t n) { return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3)); }
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
  static Vec load_first(const T* p, int64_t) { return {*p}; }  // (n is 1: the only lane)
  void store_first(T* p, int64_t) const { *p = v; }
  static Vec fma(Vec a, Vec b, Vec c) { return {a.v * b.v + c.v}; }
  friend Vec operator+(Vec a, Vec b) { return {a.v + b.v}; }
  T sum() const { return v; }
};
#endif

// out[0..3] = the lane sums of a, b, c, d. The float paths below fold the four
// vectors into one before summing within it: a quarter of the shuffles of
// four separate horizontal sums (the lanes path's weight gradients end with
// one per weight).
template <typename T>
inline void sum4(Vec<T> a, Vec<T> b, Vec<T> c, Vec<T> d, T* out) {
  out[0] = a.sum(); out[1] = b.sum(); out[2] = c.sum(); out[3] = d.sum();
}
#if defined(PYLSTM_ISA_AVX512)
template <>
inline void sum4<float>(Vec<float> a, Vec<float> b, Vec<float> c, Vec<float> d, float* out) {
  // 128-bit blocks: ab = [a0+a2, a1+a3, b0+b2, b1+b3], cd likewise, then [a, b, c, d] of 4 partial lanes each
  const __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(a.v, b.v, 0x44), _mm512_shuffle_f32x4(a.v, b.v, 0xEE));
  const __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(c.v, d.v, 0x44), _mm512_shuffle_f32x4(c.v, d.v, 0xEE));
  __m512 t = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, 0x88), _mm512_shuffle_f32x4(ab, cd, 0xDD));
  t = _mm512_add_ps(t, _mm512_permute_ps(t, _MM_SHUFFLE(1, 0, 3, 2)));
  t = _mm512_add_ps(t, _mm512_permute_ps(t, _MM_SHUFFLE(2, 3, 0, 1)));  // every lane of a block: its total
  _mm_storeu_ps(out, _mm512_castps512_ps128(_mm512_maskz_compress_ps(0x1111, t)));
}
#elif defined(PYLSTM_ISA_AVX2)
template <>
inline void sum4<float>(Vec<float> a, Vec<float> b, Vec<float> c, Vec<float> d, float* out) {
  const __m256 ab = _mm256_hadd_ps(a.v, b.v), cd = _mm256_hadd_ps(c.v, d.v);
  const __m256 abcd = _mm256_hadd_ps(ab, cd);  // [a, b, c, d] of the low half, then of the high half
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)));
}
#endif

#if defined(PYLSTM_ISA_AVX2) || defined(PYLSTM_ISA_AVX512)
#define PYLSTM_VECTOR_MATH 1
// exp(x) for float lanes: x = n·ln2 + r, |r| <= ln2/2, exp(r) by Cephes'
// degree-6 polynomial (about 1 ulp), then scaled by 2^n. The input is
// clamped so 2^n stays a normal number (exp saturates to about 1e-38 and
// 1.6e38, which the sigmoid and tanh below turn into exact 0 and 1).
struct ExpParts {
  Vec<float> n, r, p;  // x = n·ln2 + r;  e^r = 1 + r + r²·p
};
inline ExpParts exp_parts(Vec<float> x) {
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
  return {n, r, p};
}
inline Vec<float> vexp(Vec<float> x) {
  using V = Vec<float>;
  const ExpParts e = exp_parts(x);
  return V::scale2(V::fma(e.p, e.r * e.r, e.r + V::set1(1.0f)), e.n);
}
// exp(x) - 1 without the cancellation near 0: 2^n·(e^r - 1) + (2^n - 1),
// where e^r - 1 = r + r²·p keeps its relative accuracy however small r is.
inline Vec<float> vexpm1(Vec<float> x) {
  using V = Vec<float>;
  const ExpParts e = exp_parts(x);
  const V em1_r = V::fma(e.p, e.r * e.r, e.r);
  const V two_n = V::scale2(V::set1(1.0f), e.n);
  return V::fma(two_n, em1_r, two_n - V::set1(1.0f));
}
// 1/d, correctly rounded: a refined estimate measured no faster here, and it
// is not exact at d = 1 (so σ(+large) would miss 1 by an ulp and σ' not be 0).
inline Vec<float> vrcp(Vec<float> d) { return Vec<float>::set1(1.0f) / d; }
inline Vec<float> vsigmoid(Vec<float> a) {
  using V = Vec<float>;
  return vrcp(V::set1(1.0f) + vexp(V::zero() - a));
}
// tanh(a) = m / (m + 2) with m = e^{2a} - 1: one exponential and one
// division, accurate near 0 (tanh of a tiny a is a, not 0) and exactly ±1 at
// the extremes (m + 2 rounds to m for large a; m rounds to -1 for very
// negative a).
inline Vec<float> vtanh(Vec<float> a) {
  using V = Vec<float>;
  const V m = vexpm1(a + a);
  return m / (m + V::set1(2.0f));
}
#endif
