// gemm.inl: the matrix products of the LSTM, written once, compiled per ISA.
//
// Included inside an ISA namespace after simd.h. Every routine here is
// "team aware": it uses orphaned `omp for` work-sharing, so it runs serially
// when called outside a parallel region and splits its work over the team
// when called inside one. Work is split over output tiles only, never over a
// reduction, so every result is bit-identical whatever the thread count.

static constexpr int64_t KC = 256;  // depth of one packed block (B panel KC×NR stays in L1)
static constexpr int64_t MC = 144;  // rows of A packed per block (MC×KC stays in L2)
static constexpr int64_t kL2Floats = int64_t(1) << 18;  // 1 MB: half of a 2 MB L2, in 4-byte values

template <typename T>
struct Tile {
  // MR rows × NV vectors of accumulators. AVX-512: 8×2 = 16 of 32 zmm (8 rows
  // divide the usual batch sizes; 12 rows measured no faster on large ones);
  // AVX2: 6×2 = 12 of 16 ymm; portable: 4×4 scalars.
  static constexpr int W = Vec<T>::W;
  static constexpr int MR = (W == 1) ? 4 : (kVectorRegisters >= 32 ? 8 : 6);
  static constexpr int NV = (W == 1) ? 4 : 2;
  static constexpr int NR = NV * W;
};

// Width of B's packed panels: NR, or a single vector when all of N fits in
// one (small hidden sizes: half the padding work of a two-vector panel).
template <typename T>
inline int64_t panel_width(int64_t N) {
  constexpr int W = Vec<T>::W;
  if (W > 1 && N <= W) return W;
  // N in (2W, 3W] (e.g. H = 40 with 16 lanes): three-vector panels, 48 wide instead of 64.
  if (W > 1 && kVectorRegisters >= 32 && Tile<T>::NV == 2 && N > 2 * W && N <= 3 * W) return 3 * W;
  return Tile<T>::NR;
}

template <typename T>
inline int64_t padded_cols(int64_t N) {
  const int64_t nr = panel_width<T>(N);
  return (N + nr - 1) / nr * nr;
}

// Each thread's buffer for packed blocks of A, sized for the largest block
// any product in the call packs (at most MC × KC), so small problems
// allocate little.
template <typename T>
struct APack {
  T* base;
  int64_t stride;  // elements per thread
};
template <typename T>
inline int64_t apack_stride(int64_t max_rows, int64_t max_depth) {
  constexpr int MR = Tile<T>::MR;
  const int64_t rows = (max_rows < MC ? (max_rows + MR - 1) / MR * MR : MC);
  return rows * (max_depth < KC ? max_depth : KC);
}

inline int thread_index() {
#if defined(_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}
// Threads in the team running this code (1 outside a parallel region).
inline int64_t team_threads() {
#if defined(_OPENMP)
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// Row blocks of a product: `count` blocks of `rows` rows (a multiple of MR,
// at most MC; the last may be shorter). In a team, the rows are spread
// evenly (M = 512: four blocks of 128, not 144, 144, 144 and 80, which left
// one of two threads a fifth more work: 64,32,65,128 training step 8.0 ->
// 7.5 ms at 2 threads), and the count goes up to a multiple of the team
// where blocks stay at least half of MC, so every thread gets as many (M =
// 2048 on 16 threads: 16 blocks of 128 rows, not 15 of 144 with one thread
// idle). When even one column panel per task leaves threads idle, the rows
// are cut further (the backward's per-step product at H = 256: 8 panels on
// 16 threads). Which rows share a block changes no result: each row of C is
// computed alone.
struct RowBlocks {
  int64_t rows, count;
};
template <typename T>
inline RowBlocks row_blocks(int64_t M, int64_t panels) {
  constexpr int MR = Tile<T>::MR;
  auto even = [](int64_t m, int64_t n) { return ((m + n - 1) / n + MR - 1) / MR * MR; };
  int64_t count = (M + MC - 1) / MC;
  const int64_t team = team_threads();
  if (team == 1) return RowBlocks{MC, count};  // one thread: nothing to balance
  if (count % team != 0) {
    const int64_t want = (count + team - 1) / team * team;
    if (2 * even(M, want) >= MC) count = want;
  }
  if (count * panels < team) count = (team + panels - 1) / panels;
  const int64_t rows = even(M, count > 0 ? count : 1);
  return RowBlocks{rows, rows > 0 ? (M + rows - 1) / rows : 0};
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
  const int64_t NR = panel_width<T>(N);
  const int64_t npanels = (N + NR - 1) / NR;
  const int64_t cs = B.col_stride();
  if (cs == 1) {
    // B's rows run along n (W_hh and W_ih in the backward, X, h_{t-1}): a
    // few rows at a time into every panel, so that those rows are read in
    // order and each panel gets one contiguous run. (Panel by panel, each
    // panel walked all kc rows of the block, a page apart at N = 1024: about
    // 4 GB/s, 3-4% of a 2048³ product.)
    constexpr int64_t kRows = 8;
#pragma omp for schedule(static)
    for (int64_t k1 = 0; k1 < kc; k1 += kRows) {
      const int64_t k2 = (kc - k1 < kRows) ? kc : k1 + kRows;
      const T* src[kRows];
      for (int64_t k = k1; k < k2; ++k) src[k - k1] = B.row(k0 + k);
      for (int64_t j = 0; j < npanels; ++j) {
        const int64_t n0 = j * NR, nn = (N - n0 < NR) ? N - n0 : NR;
        for (int64_t k = k1; k < k2; ++k) {
          T* o = dst + j * kc * NR + k * NR;
          const T* row = src[k - k1];
          int64_t c = 0;
          if (row)  // (null: a row of zeros, e.g. the zero initial state)
            for (; c < nn; ++c) o[c] = row[n0 + c];
          for (; c < NR; ++c) o[c] = T(0);
        }
      }
    }
    return;
  }
#pragma omp for schedule(static)
  for (int64_t j = 0; j < npanels; ++j) {
    T* out = dst + j * kc * NR;
    const int64_t n0 = j * NR;
    const int64_t nn = (N - n0 < NR) ? N - n0 : NR;
    int64_t kdone = 0;
#if defined(PYLSTM_ISA_AVX512)
    if constexpr (std::is_same_v<T, float> && std::is_same_v<BOp, Strided<T>>) {
      // A transposed B (the forward's W_ihᵀ, W_hhᵀ): eight of its columns
      // are eight contiguous rows of W, 16 values of k at a time through an
      // 8×16 transpose (the scalar gather below walks 32 rows at once).
      if (B.rs == 1 && cs != 1 && nn == NR && NR % 8 == 0) {
        for (; kdone + 16 <= kc; kdone += 16)
          for (int64_t c = 0; c < NR; c += 8)
            transpose_8x16(B.p + (k0 + kdone) + (n0 + c) * cs, cs, out + kdone * NR + c, NR);
      }
    }
#endif
    for (int64_t k = kdone; k < kc; ++k) {
      const T* src = B.row(k0 + k);
      T* o = out + k * NR;
      if (src == nullptr) {  // a row of zeros (e.g. the zero initial state)
        for (int64_t c = 0; c < NR; ++c) o[c] = T(0);
        continue;
      }
      int64_t c = 0;
      for (; c < nn; ++c) o[c] = src[(n0 + c) * cs];
      for (; c < NR; ++c) o[c] = T(0);
    }
  }
}

// Columns [n0, N) of an operand B, as an operand whose column 0 is B's n0:
// a product over a range of columns packs only those.
template <typename T>
inline Strided<T> columns_from(const Strided<T>& B, int64_t n0) {
  return Strided<T>{B.p + n0 * B.cs, B.rs, B.cs};
}
template <typename BOp>
struct ColumnsFrom {
  BOp b;
  int64_t n0;
  auto row(int64_t k) const {
    const auto r = b.row(k);
    return r ? r + n0 * b.col_stride() : r;  // (null: a row of zeros stays one)
  }
  int64_t col_stride() const { return b.col_stride(); }
};
template <typename BOp>
inline ColumnsFrom<BOp> columns_from(const BOp& B, int64_t n0) {
  return ColumnsFrom<BOp>{B, n0};
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

// Pack rows [m0, m0+mc) × cols [k0, k0+kc) of A into MR-row micro-panels:
// panel i holds kc steps of MR contiguous values (zero rows past mc).
template <typename T>
void pack_a_block(T* dst, const T* A, int64_t a_rs, int64_t a_cs, int64_t m0, int64_t mc, int64_t k0,
                  int64_t kc) {
  constexpr int MR = Tile<T>::MR;
  if (a_rs == 1 && a_cs != 1 && mc % MR == 0) {
    // A transposed (dGᵀ in the weight gradients): row k of the block is mc
    // contiguous values, rows a_cs apart, too far for the hardware to fetch
    // ahead. Row by row, asking for row k + 8 meanwhile: this product ran 12%
    // slower than with A untransposed when packed panel by panel.
    constexpr int64_t ahead = 8;
    for (int64_t k = 0; k < kc; ++k) {
      const T* a = A + m0 + (k0 + k) * a_cs;
      if (k + ahead < kc)
        for (int64_t l = 0; l < mc; l += 64 / int64_t(sizeof(T))) __builtin_prefetch(a + ahead * a_cs + l);
      for (int64_t i = 0; i < mc; i += MR)
        for (int r = 0; r < MR; ++r) dst[i * kc + k * MR + r] = a[i + r];
    }
    return;
  }
  for (int64_t i = 0; i < mc; i += MR) {
    T* out = dst + i * kc;
    const int64_t mr = (mc - i < MR) ? mc - i : MR;
    const T* a = A + (m0 + i) * a_rs + k0 * a_cs;
    if (a_cs == 1) {
#if defined(PYLSTM_ISA_AVX512)
      if constexpr (std::is_same_v<T, float> && MR == 8) {
        if (mr == MR) {  // full panels: 16 steps of k at a time through an 8×16 transpose
          int64_t k = 0;
          for (; k + 16 <= kc; k += 16) transpose_8x16(a + k, a_rs, out + k * MR);
          for (int64_t r = 0; r < MR; ++r)
            for (int64_t kk = k; kk < kc; ++kk) out[kk * MR + r] = a[r * a_rs + kk];
          continue;
        }
      }
#endif
      for (int64_t r = 0; r < mr; ++r)
        for (int64_t k = 0; k < kc; ++k) out[k * MR + r] = a[r * a_rs + k];
    } else {
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t r = 0; r < mr; ++r) out[k * MR + r] = a[r * a_rs + k * a_cs];
    }
    for (int64_t r = mr; r < MR; ++r)
      for (int64_t k = 0; k < kc; ++k) out[k * MR + r] = T(0);
  }
}

// Where a micro-tile reads its MR rows of A: a packed panel (lda = 0:
// element (k, r) at p[k*MR + r]), or rows in place (element (k, r) at
// p[r*lda + k]). The per-step products read A in place when its rows run
// along k and a thread's task has few column panels: every thread of a team
// would otherwise pack the same rows again for little use (at H = 512 on 16
// threads, packing was an eighth of a thread's work in the backward's
// product). With many panels per task, packing pays: rows in place far apart
// share cache sets with the B panel (2-thread forward at H = 512: about 3% slower).
static constexpr int64_t kDirectMaxPanels = 8;
template <typename T>
struct ATile {
  const T* p;
  int64_t lda;
};

// Gets rows [m0, m0+mc) × depth [pc, pc+kc) of A ready for micro-tiles:
// packed into `mine`, or, with `direct` (A's rows contiguous along k), left
// in place but for a last partial tile of fewer than MR rows, which is packed
// (zero rows pad it).
template <typename T>
inline void prepare_a(T* mine, const T* A, int64_t a_rs, int64_t a_cs, int64_t m0, int64_t mc, int64_t pc,
                      int64_t kc, bool direct) {
  constexpr int MR = Tile<T>::MR;
  if (!direct) {
    pack_a_block(mine, A, a_rs, a_cs, m0, mc, pc, kc);
    return;
  }
  const int64_t whole = mc / MR * MR;
  if (whole < mc) pack_a_block(mine + whole * kc, A, a_rs, a_cs, m0 + whole, mc - whole, pc, kc);
}
template <typename T>
inline ATile<T> a_tile(const T* mine, const T* A, int64_t a_rs, int64_t m0, int64_t mc, int64_t i, int64_t pc,
                       int64_t kc, bool direct) {
  if (direct && i + Tile<T>::MR <= mc) return ATile<T>{A + (m0 + i) * a_rs + pc, a_rs};
  return ATile<T>{mine + i * kc, 0};
}

// C[MR×NR tile] (+)= A (kc×MR, packed or in place: ATile) · Bpanel (kc×NR)
// (+ bias, a row of NR values added to every row, when not null), NR = NV
// vectors; only the mr×nr top-left part is stored (the rest is padding).
// `ahead`: rows of the B panel the next tiles use, asked for one NR row per
// step of this tile's k loop, so that the panel arrives from L3 while this
// panel is in use instead of stalling the tile that needs it.
template <typename T>
struct Ahead {
  const T* p = nullptr;  // first row to ask for (null: none)
  int64_t rows = 0;
};
// The share of the next panel (kc rows of NR) that tile i (of a block of mc
// rows) asks for: every tile of the block an equal slice. (Asked for by the
// last tile alone, the whole panel had a quarter of the time to arrive in a
// per-step product of 32 rows. Spread, and into L2 rather than L1, where
// this panel stays: T=50, B=32, I=H=1024 training step 499 -> 482 ms at 1
// thread, 273 -> 269 ms at 2, medians of five interleaved pairs.)
template <typename T>
inline Ahead<T> ahead_slice(const T* next, int64_t kc, int64_t NR, int64_t mc, int64_t i) {
  constexpr int MR = Tile<T>::MR;
  if (!next) return {};
  const int64_t tiles = (mc + MR - 1) / MR, slice = (kc + tiles - 1) / tiles, first = (i / MR) * slice;
  if (first >= kc) return {};
  return Ahead<T>{next + first * NR, (kc - first < slice) ? kc - first : slice};
}
template <typename T, int NV, bool Direct>
inline void micro_tile_impl(T* C, int64_t ldc, int64_t mr, int64_t nr, const T* Ap, int64_t lda, const T* Bp,
                            int64_t kc, bool accumulate, const T* bias, Ahead<T> ahead) {
  constexpr int MR = Tile<T>::MR, W = Vec<T>::W, NR = NV * W;
  Vec<T> acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = Vec<T>::zero();
  // Ask for the C tile now, so its rows (far apart in a large C) have
  // arrived by the time the k loop ends: measured 10-25% on large products.
  for (int64_t r = 0; r < mr; ++r) {
    __builtin_prefetch(C + r * ldc, 1);
    __builtin_prefetch(C + r * ldc + NR - 1, 1);
  }
  auto step = [&](int64_t k) {
    Vec<T> b[NV];
    for (int v = 0; v < NV; ++v) b[v] = Vec<T>::load(Bp + k * NR + v * W);
    for (int r = 0; r < MR; ++r) {
      const Vec<T> a = Vec<T>::set1(Direct ? Ap[r * lda + k] : Ap[k * MR + r]);
      for (int v = 0; v < NV; ++v) acc[r][v] = Vec<T>::fma(a, b[v], acc[r][v]);
    }
  };
  int64_t k = 0;
  if (ahead.p) {
    const int64_t n = ahead.rows < kc ? ahead.rows : kc;
    for (; k < n; ++k) {
      for (int64_t l = 0; l < NR * int64_t(sizeof(T)); l += 64)
        __builtin_prefetch(ahead.p + k * NR + l / int64_t(sizeof(T)), 0, 2);  // to L2: L1 holds this panel
      step(k);
    }
  }
  for (; k < kc; ++k) step(k);
  if (bias)
    for (int v = 0; v < NV; ++v) {
      const Vec<T> b = Vec<T>::load(bias + v * W);
      for (int r = 0; r < MR; ++r) acc[r][v] = acc[r][v] + b;
    }
  if (mr == MR && nr == NR) {
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) {
        T* c = C + r * ldc + v * W;
        (accumulate ? Vec<T>::load(c) + acc[r][v] : acc[r][v]).store(c);
      }
    return;
  }
  // Edge tile: spill the accumulators with compile-time indices first (a
  // runtime index into acc would make the compiler keep acc in memory, and
  // store it on every step of the k loop above), then copy what is valid.
  T tmp[MR * NR];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v].store(tmp + r * NR + v * W);
  for (int64_t r = 0; r < mr; ++r) {
    T* c = C + r * ldc;
    const T* t = tmp + r * NR;
    for (int64_t l = 0; l < nr; ++l) c[l] = accumulate ? c[l] + t[l] : t[l];
  }
}

template <typename T, int NV>
inline void micro_tile(T* C, int64_t ldc, int64_t mr, int64_t nr, ATile<T> a, const T* Bp, int64_t kc,
                       bool accumulate, const T* bias, Ahead<T> ahead = {}) {
  if (a.lda)
    micro_tile_impl<T, NV, true>(C, ldc, mr, nr, a.p, a.lda, Bp, kc, accumulate, bias, ahead);
  else
    micro_tile_impl<T, NV, false>(C, ldc, mr, nr, a.p, 0, Bp, kc, accumulate, bias, ahead);
}

template <typename T, int NV>
void gemm_block_nv(T* C, int64_t ldc, int64_t M, int64_t N, const T* A, int64_t a_rs, int64_t a_cs, int64_t pc,
                   int64_t kc, const T* bblock, bool accumulate, APack<T> apack, const T* bias, bool direct) {
  constexpr int MR = Tile<T>::MR, NR = NV * Vec<T>::W;
  const int64_t nj = padded_cols<T>(N) / NR;
  const RowBlocks rb = row_blocks<T>(M, nj);
  const int64_t nic = rb.count;
  direct = direct && nj < kDirectMaxPanels * team_threads();  // panels per thread, about
  T* mine = apack.base + static_cast<int64_t>(thread_index()) * apack.stride;
  int64_t packed_ic = -1;
#pragma omp for schedule(static)
  for (int64_t task = 0; task < nic * nj; ++task) {
    const int64_t ic = task / nj, j = task % nj;
    const int64_t m0 = ic * rb.rows, mc = (M - m0 < rb.rows) ? M - m0 : rb.rows;
    if (ic != packed_ic) {
      prepare_a(mine, A, a_rs, a_cs, m0, mc, pc, kc, direct);
      packed_ic = ic;
    }
    const int64_t n0 = j * NR, nr = (N - n0 < NR) ? N - n0 : NR;
    const T* next = (j + 1 < nj) ? bblock + (j + 1) * kc * NR : nullptr;  // asked for by this panel's tiles
    for (int64_t i = 0; i < mc; i += MR)
      micro_tile<T, NV>(C + (m0 + i) * ldc + n0, ldc, (mc - i < MR) ? mc - i : MR, nr,
                        a_tile(mine, A, a_rs, m0, mc, i, pc, kc, direct), bblock + j * kc * NR, kc, accumulate,
                        bias ? bias + n0 : nullptr, ahead_slice(next, kc, NR, mc, i));
  }  // barrier
}

// One KC-deep block of C (M×N) (+)= A · B, B's block already packed.
// Tasks are (row block ic, column panel j), ic-major, split statically: a
// thread packs its A block (MC×KC, L2) once and reuses it across panels.
template <typename T>
void gemm_block(T* C, int64_t ldc, int64_t M, int64_t N, const T* A, int64_t a_rs, int64_t a_cs, int64_t pc,
                int64_t kc, const T* bblock, bool accumulate, APack<T> apack, const T* bias, bool direct = false) {
  if (panel_width<T>(N) == Tile<T>::NR)
    gemm_block_nv<T, Tile<T>::NV>(C, ldc, M, N, A, a_rs, a_cs, pc, kc, bblock, accumulate, apack, bias, direct);
  else if (panel_width<T>(N) == 3 * Vec<T>::W)
    gemm_block_nv<T, 3>(C, ldc, M, N, A, a_rs, a_cs, pc, kc, bblock, accumulate, apack, bias, direct);
  else
    gemm_block_nv<T, 1>(C, ldc, M, N, A, a_rs, a_cs, pc, kc, bblock, accumulate, apack, bias, direct);
}

template <typename T>
void zero_rows(T* C, int64_t ldc, int64_t M, int64_t N) {
#pragma omp for schedule(static)
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) C[m * ldc + n] = T(0);
}

// Rows first, for products with many rows: C (+)= A · B over the K blocks
// [k0, k0 + klen), all already packed in `bgroup` (block pc at (pc-k0)·Npad,
// as pack_b_full lays them out). A task is one row block of C (MC rows) and a
// range of its column panels; it runs every K block of the group before the
// next task, so that part of C stays in L2 across the blocks instead of being
// read back from memory once per block. Each element's sum still runs over
// the K blocks in order, so the result does not depend on the split.
template <typename T, int NV>
void gemm_rows_first_nv(T* C, int64_t ldc, int64_t M, int64_t N, const T* A, int64_t a_rs, int64_t a_cs,
                        int64_t k0, int64_t klen, const T* bgroup, bool accumulate, APack<T> apack,
                        const T* bias, bool direct, int64_t thread_rows) {
  constexpr int MR = Tile<T>::MR, NR = NV * Vec<T>::W;
  const int64_t Np = padded_cols<T>(N), nj = Np / NR, team = team_threads();
  const RowBlocks rb = thread_rows > 0 ? RowBlocks{thread_rows, (M + thread_rows - 1) / thread_rows}
                                       : row_blocks<T>(M, nj);
  const int64_t nic = rb.count;
  // Column ranges per row block: few enough panels per task that its part
  // of C stays in half the L2 (the B blocks stream through: each is used by
  // this row block's tiles from L1, then by other tasks, not from L2), at
  // least 4 tasks where there are several row blocks, at least one per
  // thread (a per-step product has one row block: split 4 ways, it kept 12
  // of 16 threads idle), and as many tasks for every thread where the
  // panels allow (5 tasks on 2 threads gave one thread 3: the forward's
  // per-step product at H = 1024 ran 1.56× faster on 2 threads than on 1).
  // Every task packs its row block's A blocks again, so no more tasks than
  // that: with room for a B block per panel too, a 2048³ product packed A 4
  // times (5% of its time; 2.5-5% faster at 1 thread without), and the
  // backward's per-step product at H = 1024 packed its 32-row A blocks 4
  // times where one task would do.
  const int64_t rows = M < rb.rows ? M : rb.rows;
  const int64_t fit = kL2Floats / (NR * rows) > 0 ? kL2Floats / (NR * rows) : 1;
  int64_t want = nic == 1 ? 1 : (4 + nic - 1) / nic;
  if (want < (nj + fit - 1) / fit) want = (nj + fit - 1) / fit;
  if (want < (team + nic - 1) / nic) want = (team + nic - 1) / nic;
  int64_t splits = thread_rows > 0 ? 1 : (want < nj ? want : nj), per = 0, nsplit = 0;
  for (;; ++splits) {
    per = (nj + splits - 1) / splits;
    nsplit = (nj + per - 1) / per;  // no empty task
    if (thread_rows > 0 || (nic * nsplit) % team == 0 || splits >= nj) break;
  }
  direct = direct && per < kDirectMaxPanels;
  // With thread_rows over several steps' rows (s, b) (the inference chunk:
  // M = steps × B), thread p takes block p of every step, as the gate math does.
  const int64_t cycle = (thread_rows > 0 && nic % team == 0) ? nic / team : 0;
  T* mine = apack.base + static_cast<int64_t>(thread_index()) * apack.stride;
#pragma omp for schedule(static)
  for (int64_t task = 0; task < nic * nsplit; ++task) {
    const int64_t ic = cycle ? (task % cycle) * team + task / cycle : task / nsplit, j0 = (task % nsplit) * per;
    const int64_t j1 = (j0 + per < nj) ? j0 + per : nj;
    const int64_t m0 = ic * rb.rows, mc = (M - m0 < rb.rows) ? M - m0 : rb.rows;
    for (int64_t pc = k0; pc < k0 + klen; pc += KC) {
      const int64_t kc = (k0 + klen - pc < KC) ? k0 + klen - pc : KC;
      const T* bblock = bgroup + (pc - k0) * Np;
      const bool acc = accumulate || pc > k0;
      const T* bias_here = (pc == k0 && !accumulate) ? bias : nullptr;
      prepare_a(mine, A, a_rs, a_cs, m0, mc, pc, kc, direct);
      // The panel after this task's last one is the first of the next K
      // block (asked for too: the backward's per-step product at H = 1024
      // runs 16 blocks of 16 panels per thread, and stalled at each start).
      const int64_t kc_next = (k0 + klen - pc - kc < KC) ? k0 + klen - pc - kc : KC;
      const T* next_block = kc_next > 0 ? bgroup + (pc + kc - k0) * Np + j0 * kc_next * NR : nullptr;
      for (int64_t j = j0; j < j1; ++j) {
        const int64_t n0 = j * NR, nr = (N - n0 < NR) ? N - n0 : NR;
        const T* next = (j + 1 < j1) ? bblock + (j + 1) * kc * NR : next_block;  // asked for by this panel's tiles
        const int64_t next_rows = (j + 1 < j1) ? kc : kc_next;
        for (int64_t i = 0; i < mc; i += MR)
          micro_tile<T, NV>(C + (m0 + i) * ldc + n0, ldc, (mc - i < MR) ? mc - i : MR, nr,
                            a_tile(mine, A, a_rs, m0, mc, i, pc, kc, direct), bblock + j * kc * NR, kc, acc,
                            bias_here ? bias_here + n0 : nullptr, ahead_slice(next, next_rows, NR, mc, i));
      }
    }
  }  // barrier
}

template <typename T>
void gemm_rows_first(T* C, int64_t ldc, int64_t M, int64_t N, const T* A, int64_t a_rs, int64_t a_cs, int64_t k0,
                     int64_t klen, const T* bgroup, bool accumulate, APack<T> apack, const T* bias,
                     bool direct = false, int64_t thread_rows = 0) {
  if (panel_width<T>(N) == Tile<T>::NR)
    gemm_rows_first_nv<T, Tile<T>::NV>(C, ldc, M, N, A, a_rs, a_cs, k0, klen, bgroup, accumulate, apack, bias,
                                       direct, thread_rows);
  else if (panel_width<T>(N) == 3 * Vec<T>::W)
    gemm_rows_first_nv<T, 3>(C, ldc, M, N, A, a_rs, a_cs, k0, klen, bgroup, accumulate, apack, bias, direct,
                             thread_rows);
  else
    gemm_rows_first_nv<T, 1>(C, ldc, M, N, A, a_rs, a_cs, k0, klen, bgroup, accumulate, apack, bias, direct,
                             thread_rows);
}

// Rows of C per thread when a per-step product splits its rows, not its
// columns, over the team (0: it does not). The time loop's gate math splits
// the batch rows; a product split by columns left each thread half of its
// rows' pre-activations in the other core's cache (the 2-thread forward at
// H = 256 spent as long in its gate math as the 1-thread one). By rows,
// each thread computes, then reads, its own rows, but streams all of W_hh:
// worth it where the packed W_hh (K × N) fits in L2 and each thread has
// rows enough for a few tiles. The gate math loops over the same blocks
// (thread_rows), so that one split serves both.
template <typename T>
inline int64_t per_step_thread_rows(int64_t M, int64_t N, int64_t K) {
  constexpr int MR = Tile<T>::MR;
  const int64_t team = team_threads();
  if (team == 1 || M < 2 * MR * team || K * padded_cols<T>(N) > kL2Floats) return 0;
  const int64_t rows = ((M + team - 1) / team + MR - 1) / MR * MR;
  return rows <= MC ? rows : 0;  // (a thread's A buffer holds MC rows)
}

// Whether a product goes rows first: more than one K block (with a single
// block, C is never read back), and C too large to stay in half the L2 while
// a B block streams through it (many rows, or few rows but wide: the
// forward's per-step products at H >= 256 measured 6-9% faster so; the
// backward's, with C of 64 × 512, lose to packing A once per block).
template <typename T>
inline bool rows_first(int64_t M, int64_t N, int64_t K) {
  const int64_t Np = padded_cols<T>(N);
  return K > KC && (M > MC || (M + KC) * Np > kL2Floats);
}

// C (M×N, row stride ldc) (+)= A · B with A(m, k) = A[m*a_rs + k*a_cs] and
// B already packed (pack_b_full). accumulate=false overwrites C, adding a
// non-null `bias` (Npad values) to every row (C = bias + A·B; K >= 1).
template <typename T>
void gemm_prepacked(T* C, int64_t ldc, int64_t M, int64_t N, int64_t K, const T* A, int64_t a_rs,
                    int64_t a_cs, const T* Bpacked, bool accumulate, APack<T> apack, const T* bias = nullptr,
                    int64_t thread_rows = 0) {
  if (K == 0 && !accumulate) zero_rows(C, ldc, M, N);
  if (accumulate) bias = nullptr;
  if (thread_rows > 0 && K > 0) {  // one block of rows per thread (per_step_thread_rows)
    gemm_rows_first(C, ldc, M, N, A, a_rs, a_cs, 0, K, Bpacked, accumulate, apack, bias, a_cs == 1, thread_rows);
    return;
  }
  // In a team, rows first also when C is small: each thread then runs all K
  // blocks of its own columns with one barrier at the end, not one per block
  // (the backward's per-step product at H = 512: eight barriers per step).
  const bool direct = a_cs == 1;  // rows in place where few panels per thread (see ATile)
  if (rows_first<T>(M, N, K) || (K > KC && team_threads() > 1)) {
    gemm_rows_first(C, ldc, M, N, A, a_rs, a_cs, 0, K, Bpacked, accumulate, apack, bias, direct);
    return;
  }
  const int64_t Np = padded_cols<T>(N);
  for (int64_t pc = 0; pc < K; pc += KC) {
    const int64_t kc = (K - pc < KC) ? K - pc : KC;
    gemm_block(C, ldc, M, N, A, a_rs, a_cs, pc, kc, Bpacked + pc * Np, accumulate || pc > 0, apack,
               pc == 0 ? bias : nullptr, direct);
  }
}

// C (+)= A · B with B packed into `bpack` (bcap elements: at least one KC
// block of all N columns) on the way: all of B at once where it fits, else
// groups of K blocks run rows first (C goes through memory once per group),
// else block by block.
template <typename T, typename BOp>
void gemm_in_blocks(T* C, int64_t ldc, int64_t M, int64_t N, int64_t K, const T* A, int64_t a_rs, int64_t a_cs,
                    const BOp& B, bool accumulate, T* bpack, APack<T> apack, const T* bias, int64_t bcap) {
  const int64_t Np = padded_cols<T>(N);
  const int64_t group = bcap / (KC * Np) * KC;  // K rows per packed group
  if (rows_first<T>(M, N, K) && group >= 2 * KC) {
    for (int64_t k0 = 0; k0 < K; k0 += group) {
      const int64_t klen = (K - k0 < group) ? K - k0 : group;
      for (int64_t pc = k0; pc < k0 + klen; pc += KC)  // each ends in a barrier
        pack_b_block(bpack + (pc - k0) * Np, B, pc, (k0 + klen - pc < KC) ? k0 + klen - pc : KC, N);
      gemm_rows_first(C, ldc, M, N, A, a_rs, a_cs, k0, klen, bpack, accumulate || k0 > 0, apack,
                      (k0 == 0 && !accumulate) ? bias : nullptr);
    }
    return;
  }
  for (int64_t pc = 0; pc < K; pc += KC) {
    const int64_t kc = (K - pc < KC) ? K - pc : KC;
    pack_b_block(bpack, B, pc, kc, N);  // ends in a barrier
    gemm_block(C, ldc, M, N, A, a_rs, a_cs, pc, kc, bpack, accumulate || pc > 0, apack,
               (pc == 0 && !accumulate) ? bias : nullptr);
  }
}

// Fewest column panels per range when a product runs its columns range by
// range (gemm): each range packs A again.
constexpr int64_t kMinRangePanels = 8;

// The room gemm needs for B: one KC block of kMinRangePanels panels (all of
// B where it is smaller).
template <typename T>
inline int64_t gemm_min_room(int64_t N, int64_t K) {
  const int64_t Np = padded_cols<T>(N), cols = kMinRangePanels * Tile<T>::NR;
  return (K < KC ? K : KC) * (Np < cols ? Np : cols);
}

// The same product with B packed into `bpack` on the way: `bcap` elements
// (0: one KC block of all columns; at least gemm_min_room) hold as much of
// B as fits. Where B does not fit, its columns go range by range: all K
// rows of each range, run rows first, where the room holds kMinRangePanels
// panels of them (C then goes through memory once: the LSTM lends its
// products rooms that hold a third of W_ih or so, its outputs not yet
// written, instead of a packed copy of their own); else ranges as wide as a
// KC block of them allows, each in blocks. Each element of C sums over K in
// the same order whatever the room: the room changes no result.
// With accumulate=false, a non-null `bias` (Npad values) is added to every
// row of C in the same pass (C = bias + A·B).
template <typename T, typename BOp>
void gemm(T* C, int64_t ldc, int64_t M, int64_t N, int64_t K, const T* A, int64_t a_rs, int64_t a_cs,
          const BOp& B, bool accumulate, T* bpack, APack<T> apack, const T* bias = nullptr, int64_t bcap = 0) {
  if (K == 0 && !accumulate) zero_rows(C, ldc, M, N);  // (K >= 1 whenever a bias is given)
  constexpr int64_t NR = Tile<T>::NR;
  const int64_t Np = padded_cols<T>(N), nj = Np / NR, kc = K < KC ? K : KC;
  if (bcap == 0) bcap = kc * Np;
  const bool whole_k = K > 0 && rows_first<T>(M, N, K) && bcap / (K * NR) >= kMinRangePanels;
  // No ranges where all of B fits, or (but for all K rows of a range) one block of all its columns
  if (K == 0 || bcap >= K * Np || panel_width<T>(N) != NR || (!whole_k && bcap >= kc * Np)) {
    gemm_in_blocks(C, ldc, M, N, K, A, a_rs, a_cs, B, accumulate, bpack, apack, bias, bcap);
    return;
  }
  const int64_t fit = bcap / ((whole_k ? K : kc) * NR);  // panels per range
  const int64_t ranges = (nj + fit - 1) / fit;
  const int64_t per = (nj + ranges - 1) / ranges * NR;   // columns per range, ranges alike
  for (int64_t n0 = 0; n0 < N; n0 += per) {
    const int64_t nc = (N - n0 < per) ? N - n0 : per;
    const T* bias_here = (bias && !accumulate) ? bias + n0 : nullptr;
    if (whole_k) {
      pack_b_full<T>(bpack, columns_from(B, n0), K, nc);  // each block ends in a barrier
      gemm_rows_first(C + n0, ldc, M, nc, A, a_rs, a_cs, 0, K, bpack, accumulate, apack, bias_here);
    } else {
      gemm_in_blocks(C + n0, ldc, M, nc, K, A, a_rs, a_cs, columns_from(B, n0), accumulate, bpack, apack,
                     bias_here, bcap);
    }
  }
}

// C (M×N) (+)= A · Btᵀ for few rows M (a matrix-vector product): each output
// is one dot product of contiguous rows, so nothing needs packing. Used for
// batch-1 steps, where packing would cost as much as the product. Four
// outputs at a time share each load of A.
template <typename T>
void gemm_few_rows(T* C, int64_t ldc, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
                   const T* Bt, int64_t ldb, bool accumulate) {
  constexpr int W = Vec<T>::W;
  constexpr int64_t NB = 4;
  const int64_t Kv = K / W * W;
#pragma omp for schedule(static)
  for (int64_t n0 = 0; n0 < N; n0 += NB) {
    const int64_t nb = (N - n0 < NB) ? N - n0 : NB;
    for (int64_t m = 0; m < M; ++m) {
      const T* a = A + m * lda;
      Vec<T> acc[NB] = {Vec<T>::zero(), Vec<T>::zero(), Vec<T>::zero(), Vec<T>::zero()};
      for (int64_t k = 0; k < Kv; k += W) {
        const Vec<T> av = Vec<T>::load(a + k);
        for (int64_t q = 0; q < nb; ++q) acc[q] = Vec<T>::fma(av, Vec<T>::load(Bt + (n0 + q) * ldb + k), acc[q]);
      }
      for (int64_t q = 0; q < nb; ++q) {
        const T* b = Bt + (n0 + q) * ldb;
        T s = acc[q].sum();
        for (int64_t k = Kv; k < K; ++k) s += a[k] * b[k];
        T* c = C + m * ldc + n0 + q;
        *c = accumulate ? *c + s : s;
      }
    }
  }
}

// C (M×N) (+)= A · B for few rows M with B row-major (K×N, row stride ldb):
// an axpy per k, vectorized over contiguous columns. The backward's batch-1
// steps use it (dh_{t-1} = dG_t · W_hh), where packing would cost more, and
// the forward's when H is below one vector (a dot product of H < W terms
// would be all scalar tail and horizontal sums).
template <typename T>
void gemm_few_rows_nn(T* C, int64_t ldc, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
                      int64_t ldb, bool accumulate = false) {
  constexpr int W = Vec<T>::W;
  constexpr int64_t CHUNK = 8 * W;  // columns per task
#pragma omp for schedule(static)
  for (int64_t n0 = 0; n0 < N; n0 += CHUNK) {
    const int64_t n1 = (n0 + CHUNK < N) ? n0 + CHUNK : N;
    for (int64_t m = 0; m < M; ++m) {
      T* c = C + m * ldc;
      if (!accumulate)
        for (int64_t n = n0; n < n1; ++n) c[n] = T(0);
      for (int64_t k = 0; k < K; ++k) {
        const T a = A[m * lda + k];
        const T* b = B + k * ldb;
        int64_t n = n0;
        const Vec<T> av = Vec<T>::set1(a);
        for (; n + W <= n1; n += W) Vec<T>::fma(av, Vec<T>::load(b + n), Vec<T>::load(c + n)).store(c + n);
        for (; n < n1; ++n) c[n] += a * b[n];
      }
    }
  }
}
