// step_product.inl: the forward's per-step recurrent product at large H,
// h_{t-1}·W_hhᵀ with W_hh read where it lies (no packed copy).
//
// Included inside an ISA namespace after gemm.inl (Tile, Vec). Team aware
// like gemm.inl: orphaned `omp for`, split over output tiles only, so the
// result does not depend on the thread count.
//
// Why: where the packed W_hhᵀ does not fit in L2 (H >= 512: 4 MiB and more)
// every step streams it from L3 anyway, so packing it once per call buys no
// reuse, and the copy is memory the training step holds besides its cache
// (16 MiB at H = 1024: half the cache at T = 50, B = 32). Read in place,
// W_hh is the broadcast operand (MR of its rows at a time, each row
// contiguous along k) and h_{t-1}ᵀ, packed per step (K × B, 128 KiB at
// B = 32, H = 1024), the vector operand; the tile comes out transposed (gate
// rows × batch) and is added into the batch-major gates. Standalone, 50
// steps of B = 32, H = 1024, medians of 7: 1 thread 158-170 -> 169-191
// GFLOP/s, 2 threads 313-336 -> 327-366 against the packed path. With two
// panels of batch rows (B = 64, H = 512) each row of W_hh is read twice and
// the packed path is faster (1 thread 175-177 against 161-163): one panel only.

// Aᵀ of A (M×K, row stride lda) in NR-wide panels of K rows: panel p holds
// rows m = p·NR + l of A as its columns l (zeros past M).
template <typename T>
void pack_rows_transposed(T* dst, const T* A, int64_t lda, int64_t M, int64_t K) {
  constexpr int NR = Tile<T>::NR;
  constexpr int64_t kChunk = 16;  // steps of k per task
  const int64_t panels = (M + NR - 1) / NR;
#pragma omp for schedule(static)
  for (int64_t k0 = 0; k0 < K; k0 += kChunk) {
    const int64_t k1 = (K - k0 < kChunk) ? K : k0 + kChunk;
    for (int64_t p = 0; p < panels; ++p) {
      T* out = dst + p * K * NR;
      const int64_t m0 = p * NR, mm = (M - m0 < NR) ? M - m0 : NR;
      int64_t l0 = 0;
#if defined(PYLSTM_ISA_AVX512)
      if constexpr (std::is_same_v<T, float>) {
        if (k1 - k0 == 16)  // 8 rows × 16 steps of k at a time
          for (; l0 + 8 <= mm; l0 += 8) transpose_8x16(A + (m0 + l0) * lda + k0, lda, out + k0 * NR + l0, NR);
      }
#endif
      for (int64_t k = k0; k < k1; ++k)
        for (int64_t l = l0; l < NR; ++l) out[k * NR + l] = l < mm ? A[(m0 + l) * lda + k] : T(0);
    }
  }
}

// C[b, n] += Σ_k W[n, k]·Aᵀ[k, b] for the MR rows n of W at `w` (row
// stride ldw) and the nb columns b of one packed panel of Aᵀ, written to C
// (row stride ldc, column n at C + n) transposed; the first `skip` rows
// of the tile are not written (an edge tile shifted back to stay in W).
template <typename T, int NV>
inline void micro_tile_transposed(T* C, int64_t ldc, int64_t skip, int64_t nb, const T* w, int64_t ldw,
                                  const T* panel, int64_t K) {
  constexpr int MR = Tile<T>::MR, W = Vec<T>::W, NR = Tile<T>::NR;
  Vec<T> acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = Vec<T>::zero();
  for (int64_t k = 0; k < K; ++k) {
    Vec<T> b[NV];
    for (int v = 0; v < NV; ++v) b[v] = Vec<T>::load(panel + k * NR + v * W);
    for (int r = 0; r < MR; ++r) {
      const Vec<T> a = Vec<T>::set1(w[r * ldw + k]);
      for (int v = 0; v < NV; ++v) acc[r][v] = Vec<T>::fma(a, b[v], acc[r][v]);
    }
  }
  alignas(64) T tile[MR * NR];  // row r: gate row n0 + r over the batch columns
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v].store(tile + r * NR + v * W);
#if defined(PYLSTM_ISA_AVX512)
  if constexpr (std::is_same_v<T, float> && MR == 8) {
    if (skip == 0 && nb == NV * W) {  // whole tile: 8×16 transposes, then 8 values per batch row
      alignas(64) float cols[NV * W * 8];
      for (int v = 0; v < NV; ++v) transpose_8x16(tile + v * W, NR, cols + v * W * 8, 8);
      for (int64_t b = 0; b < nb; ++b) {
        float* c = C + b * ldc;
        _mm256_storeu_ps(c, _mm256_add_ps(_mm256_loadu_ps(c), _mm256_load_ps(cols + b * 8)));
      }
      return;
    }
  }
#endif
  for (int64_t b = 0; b < nb; ++b) {
    T* c = C + b * ldc;
    for (int64_t r = skip; r < MR; ++r) c[r] += tile[r * NR + b];
  }
}

// C (M×N, row stride ldc) += A·Wᵀ, W (N×K, N >= MR) read in place, At =
// pack_rows_transposed(A) (M×K). A task is MR rows of W against every
// panel of At, so those rows are read from memory once per call.
template <typename T>
void gemm_transposed_in_place(T* C, int64_t ldc, int64_t M, int64_t N, int64_t K, const T* W, const T* At) {
  constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR, Wd = Vec<T>::W;
  const int64_t tiles = (N + MR - 1) / MR, panels = (M + NR - 1) / NR;
#pragma omp for schedule(static)
  for (int64_t i = 0; i < tiles; ++i) {
    int64_t n0 = i * MR, skip = 0;
    if (n0 + MR > N) {  // the last rows: a whole tile ending at N, the rows already done not written
      skip = n0 + MR - N;
      n0 = N - MR;
    }
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t nb = (M - p * NR < NR) ? M - p * NR : NR;
      T* c = C + p * NR * ldc + n0;
      const T* panel = At + p * K * NR;
      if (Tile<T>::NV > 1 && nb <= Wd)  // a last panel of one vector or less: half the work
        micro_tile_transposed<T, 1>(c, ldc, skip, nb, W + n0 * K, K, panel, K);
      else
        micro_tile_transposed<T, Tile<T>::NV>(c, ldc, skip, nb, W + n0 * K, K, panel, K);
    }
  }  // barrier
}
