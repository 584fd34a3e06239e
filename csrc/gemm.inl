// gemm.inl: the matrix products of the LSTM, written once, compiled per ISA.
//
// Included inside an ISA namespace after simd.h. Every routine here is
// "team aware": it uses orphaned `omp for` work-sharing, so it runs serially
// when called outside a parallel region and splits its work over the team
// when called inside one. Work is split over output tiles only, never over a
// reduction, so every result is bit-identical whatever the thread count.

static constexpr int64_t KC = 256;  // depth of one packed block of B

template <typename T>
struct Tile {
  // MR rows × NV vectors: 6×2 keeps 12 accumulators + 2 B vectors + 1
  // broadcast in registers on AVX2 (16 ymm) and leaves room on AVX-512.
  static constexpr int MR = (Vec<T>::W == 1) ? 4 : 6;
  static constexpr int NV = (Vec<T>::W == 1) ? 4 : 2;
  static constexpr int NR = NV * Vec<T>::W;
};

template <typename T>
inline int64_t padded_cols(int64_t N) {
  constexpr int NR = Tile<T>::NR;
  return (N + NR - 1) / NR * NR;
}

// Operand B of C = A·B, element (k, n), as a strided matrix.
template <typename T>
struct Strided {
  const T* p;
  int64_t rs, cs;
  const T* row(int64_t k) const { return p + k * rs; }
  int64_t col_stride() const { return cs; }
};

// Pack rows [k0, k0+kc) of B (K×N) into NR-wide panels: panel j holds
// kc rows of NR contiguous values (zero padded past N).
template <typename T, typename BOp>
void pack_b_block(T* dst, const BOp& B, int64_t k0, int64_t kc, int64_t N) {
  constexpr int NR = Tile<T>::NR;
  const int64_t npanels = (N + NR - 1) / NR;
  const int64_t cs = B.col_stride();
#pragma omp for schedule(static)
  for (int64_t j = 0; j < npanels; ++j) {
    T* out = dst + j * kc * NR;
    const int64_t n0 = j * NR;
    const int64_t nn = (N - n0 < NR) ? N - n0 : NR;
    for (int64_t k = 0; k < kc; ++k) {
      const T* src = B.row(k0 + k);
      T* o = out + k * NR;
      if (src == nullptr) {  // a row of zeros (e.g. the zero initial state)
        for (int c = 0; c < NR; ++c) o[c] = T(0);
        continue;
      }
      int64_t c = 0;
      for (; c < nn; ++c) o[c] = src[(n0 + c) * cs];
      for (; c < NR; ++c) o[c] = T(0);
    }
  }
}

// Pack all of B (K×N) once, block by block: block pc starts at pc * Npad.
template <typename T, typename BOp>
void pack_b_full(T* dst, const BOp& B, int64_t K, int64_t N) {
  const int64_t Np = padded_cols<T>(N);
  for (int64_t pc = 0; pc < K; pc += KC) {
    const int64_t kc = (K - pc < KC) ? K - pc : KC;
    pack_b_block(dst + pc * Np, B, pc, kc, N);
  }
}

// C[MR×NR tile] (+)= A[rows, k0:k0+kc] · Bpanel. Rows past M point at a valid
// row and are discarded; columns past N are padding and are discarded.
template <typename T>
inline void micro_tile(T* C, int64_t ldc, int64_t mr, int64_t nr, const T* A, int64_t a_rs,
                       int64_t a_cs, const T* Bp, int64_t kc, bool accumulate) {
  constexpr int MR = Tile<T>::MR, NV = Tile<T>::NV, NR = Tile<T>::NR, W = Vec<T>::W;
  const T* arow[MR];
  for (int r = 0; r < MR; ++r) arow[r] = A + (r < mr ? r : mr - 1) * a_rs;
  Vec<T> acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = Vec<T>::zero();
  for (int64_t k = 0; k < kc; ++k) {
    Vec<T> b[NV];
    for (int v = 0; v < NV; ++v) b[v] = Vec<T>::load(Bp + k * NR + v * W);
    const int64_t ka = k * a_cs;
    for (int r = 0; r < MR; ++r) {
      const Vec<T> a = Vec<T>::set1(arow[r][ka]);
      for (int v = 0; v < NV; ++v) acc[r][v] = Vec<T>::fma(a, b[v], acc[r][v]);
    }
  }
  if (mr == MR && nr == NR) {
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) {
        T* c = C + r * ldc + v * W;
        (accumulate ? Vec<T>::load(c) + acc[r][v] : acc[r][v]).store(c);
      }
    return;
  }
  T tmp[MR * NR];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v].store(tmp + r * NR + v * W);
  for (int64_t r = 0; r < mr; ++r)
    for (int64_t c = 0; c < nr; ++c)
      C[r * ldc + c] = accumulate ? C[r * ldc + c] + tmp[r * NR + c] : tmp[r * NR + c];
}

// C (M×N, row stride ldc) (+)= A · B with A(m, k) = A[m*a_rs + k*a_cs] and
// B already packed (pack_b_full). accumulate=false overwrites C.
template <typename T>
void gemm_prepacked(T* C, int64_t ldc, int64_t M, int64_t N, int64_t K, const T* A, int64_t a_rs,
                    int64_t a_cs, const T* Bpacked, bool accumulate) {
  constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR;
  const int64_t Np = padded_cols<T>(N);
  const int64_t mt = (M + MR - 1) / MR, nt = Np / NR;
  if (K == 0) {
    if (!accumulate) {
#pragma omp for schedule(static)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) C[m * ldc + n] = T(0);
    }
    return;
  }
  for (int64_t pc = 0; pc < K; pc += KC) {
    const int64_t kc = (K - pc < KC) ? K - pc : KC;
    const T* block = Bpacked + pc * Np;
    // Column panel outer, row tile inner: a thread streams one B panel
    // (kc×NR, L1/L2 resident) over its row tiles.
#pragma omp for schedule(static)
    for (int64_t tile = 0; tile < mt * nt; ++tile) {
      const int64_t j = tile / mt, i = tile % mt;
      const int64_t m0 = i * MR, n0 = j * NR;
      micro_tile(C + m0 * ldc + n0, ldc, (M - m0 < MR) ? M - m0 : MR, (N - n0 < NR) ? N - n0 : NR,
                 A + m0 * a_rs + pc * a_cs, a_rs, a_cs, block + j * kc * NR, kc,
                 accumulate || pc > 0);
    }
  }
}

// Same product with B packed block by block into `bpack` (KC × Npad elements).
template <typename T, typename BOp>
void gemm(T* C, int64_t ldc, int64_t M, int64_t N, int64_t K, const T* A, int64_t a_rs, int64_t a_cs,
          const BOp& B, bool accumulate, T* bpack) {
  constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR;
  const int64_t Np = padded_cols<T>(N);
  const int64_t mt = (M + MR - 1) / MR, nt = Np / NR;
  if (K == 0) {
    gemm_prepacked<T>(C, ldc, M, N, 0, A, a_rs, a_cs, bpack, accumulate);
    return;
  }
  for (int64_t pc = 0; pc < K; pc += KC) {
    const int64_t kc = (K - pc < KC) ? K - pc : KC;
    pack_b_block(bpack, B, pc, kc, N);  // ends in a barrier
#pragma omp for schedule(static)
    for (int64_t tile = 0; tile < mt * nt; ++tile) {
      const int64_t j = tile / mt, i = tile % mt;
      const int64_t m0 = i * MR, n0 = j * NR;
      micro_tile(C + m0 * ldc + n0, ldc, (M - m0 < MR) ? M - m0 : MR, (N - n0 < NR) ? N - n0 : NR,
                 A + m0 * a_rs + pc * a_cs, a_rs, a_cs, bpack + j * kc * NR, kc,
                 accumulate || pc > 0);
    }  // barrier: the next block may overwrite bpack
  }
}

// C (M×N) (+)= A · Btᵀ for few rows M (a matrix-vector product): each output
// is one dot product of contiguous rows, so nothing needs packing. Used for
// batch-1 steps, where packing would cost as much as the product.
template <typename T>
void gemm_few_rows(T* C, int64_t ldc, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
                   const T* Bt, int64_t ldb, bool accumulate) {
  constexpr int W = Vec<T>::W;
#pragma omp for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const T* b = Bt + n * ldb;
    for (int64_t m = 0; m < M; ++m) {
      const T* a = A + m * lda;
      Vec<T> acc0 = Vec<T>::zero(), acc1 = Vec<T>::zero();
      int64_t k = 0;
      for (; k + 2 * W <= K; k += 2 * W) {
        acc0 = Vec<T>::fma(Vec<T>::load(a + k), Vec<T>::load(b + k), acc0);
        acc1 = Vec<T>::fma(Vec<T>::load(a + k + W), Vec<T>::load(b + k + W), acc1);
      }
      T lanes[W];
      (acc0 + acc1).store(lanes);
      T s = T(0);
      for (int l = 0; l < W; ++l) s += lanes[l];
      for (; k < K; ++k) s += a[k] * b[k];
      C[m * ldc + n] = accumulate ? C[m * ldc + n] + s : s;
    }
  }
}
