//! GEMM against weights re-laid out once into panels of [`PANEL`] output features stored
//! feature-minor (`panel[k][j]`), in f32 or in half precision (bf16 / f16, converted to f32
//! in registers: half the bytes to stream, the same arithmetic); `x · Wᵀ` runs as an
//! AVX2/FMA register-tiled outer product over them. Two reasons:
//!
//! - a general matmul re-packs the whole weight on every call, which dominates the
//!   few-row products of decode steps;
//! - every output element is accumulated by one FMA chain in `k` order, however many rows
//!   are in the batch and wherever a row falls in a tile, so a sequence gets bit-identical
//!   numbers alone or batched with others.

use std::sync::Arc;

use half::{bf16, f16};

use super::disjoint::OutPtr;
use super::features::{avx2_fma, avx512, f16c};

/// Output features per packed panel: two 8-lane vectors.
pub const PANEL: usize = 16;
/// Input rows per register tile: 6 rows x 2 vectors = 12 accumulators, plus two weight
/// vectors and one broadcast, fits the 16 ymm registers.
const TILE_ROWS: usize = 6;
/// Input rows per AVX-512 register tile: one 16-lane accumulator each.
const TILE_ROWS_512: usize = 12;
/// Input rows per AVX-512 tile over two panels: 2 x 12 accumulators, two weight vectors
/// and a broadcast in the 32 registers.
const TILE_ROWS_PAIR: usize = 12;
/// How far ahead (in `k` steps of one panel row) weights are prefetched.
const PREFETCH_K: usize = 256;
/// `k` is walked in blocks of this many so a panel block and the rows' slices of `x` stay
/// in L1 while every row tile uses them.
const K_BLOCK: usize = 256;

/// How a panel stores its values: f32, bf16 or f16.
pub trait PanelElem: Copy + Default + Send + Sync + 'static {
    /// Rounds to nearest (even) from f32.
    fn from_f32(v: f32) -> Self;
    fn to_f32(self) -> f32;
    /// Sixteen consecutive panel values as two 8-lane f32 vectors.
    ///
    /// # Safety
    /// `ptr` must point at 16 readable values, on a CPU with AVX2, FMA and F16C.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load16(ptr: *const Self) -> (std::arch::x86_64::__m256, std::arch::x86_64::__m256);
    /// The same sixteen values as one 16-lane f32 vector.
    ///
    /// # Safety
    /// `ptr` must point at 16 readable values, on a CPU with AVX-512F.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load16_512(ptr: *const Self) -> std::arch::x86_64::__m512;
}

impl PanelElem for f32 {
    fn from_f32(v: f32) -> Self {
        v
    }
    fn to_f32(self) -> f32 {
        self
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load16(ptr: *const f32) -> (std::arch::x86_64::__m256, std::arch::x86_64::__m256) {
        use std::arch::x86_64::*;
        (_mm256_loadu_ps(ptr), _mm256_loadu_ps(ptr.add(8)))
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load16_512(ptr: *const f32) -> std::arch::x86_64::__m512 {
        std::arch::x86_64::_mm512_loadu_ps(ptr)
    }
}

impl PanelElem for bf16 {
    fn from_f32(v: f32) -> Self {
        bf16::from_f32(v)
    }
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load16(ptr: *const bf16) -> (std::arch::x86_64::__m256, std::arch::x86_64::__m256) {
        use std::arch::x86_64::*;
        // A bf16 is the top half of an f32: widen to 32 bits and shift into place.
        let raw = _mm256_loadu_si256(ptr as *const __m256i);
        let lo = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(raw));
        let hi = _mm256_cvtepu16_epi32(_mm256_extracti128_si256::<1>(raw));
        (
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(lo)),
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(hi)),
        )
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load16_512(ptr: *const bf16) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        let raw = _mm256_loadu_si256(ptr as *const __m256i);
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(raw)))
    }
}

impl PanelElem for f16 {
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load16(ptr: *const f16) -> (std::arch::x86_64::__m256, std::arch::x86_64::__m256) {
        use std::arch::x86_64::*;
        let p = ptr as *const __m128i;
        (
            _mm256_cvtph_ps(_mm_loadu_si128(p)),
            _mm256_cvtph_ps(_mm_loadu_si128(p.add(1))),
        )
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load16_512(ptr: *const f16) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        _mm512_cvtph_ps(_mm256_loadu_si256(ptr as *const __m256i))
    }
}

/// A `[out_features, in_features]` weight packed for [`matmul`](Self::matmul), its values
/// stored as `E`.
#[derive(Debug, Clone)]
pub struct PackedWeight<E> {
    /// `ceil(out / PANEL)` panels of `[in][PANEL]`, zero-padded past `out`.
    panels: Arc<Vec<E>>,
    out_features: usize,
    in_features: usize,
}

/// f32 panels.
pub type PackedF32Weight = PackedWeight<f32>;

impl<E: PanelElem> PackedWeight<E> {
    /// Packs a row-major `[out_features, in_features]` weight, each value rounded to `E`.
    /// `None` when this CPU lacks AVX2, FMA or F16C, or `weight` has another length: the
    /// caller keeps its general path.
    pub fn pack(weight: &[f32], out_features: usize, in_features: usize) -> Option<Self> {
        let (n, k) = (out_features, in_features);
        if !avx2_fma() || !f16c() || weight.len() != n * k || k == 0 {
            return None;
        }
        let mut panels = vec![E::default(); n.div_ceil(PANEL) * k * PANEL];
        for (j, row) in weight.chunks_exact(k).enumerate() {
            let base = j / PANEL * k * PANEL + j % PANEL;
            for (kk, v) in row.iter().enumerate() {
                panels[base + kk * PANEL] = E::from_f32(*v);
            }
        }
        Some(Self {
            panels: Arc::new(panels),
            out_features: n,
            in_features: k,
        })
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Row `index` of the original `[out_features, in_features]` weight (a tied model's
    /// embedding row, read from the head's panels so the table is held once); `None` past
    /// the last row.
    pub fn row(&self, index: usize) -> Option<Vec<f32>> {
        if index >= self.out_features {
            return None;
        }
        let k = self.in_features;
        let base = index / PANEL * k * PANEL + index % PANEL;
        Some(
            (0..k)
                .map(|kk| self.panels[base + kk * PANEL].to_f32())
                .collect(),
        )
    }

    /// Bytes the panels take (padding included).
    pub fn bytes(&self) -> usize {
        self.panels.len() * std::mem::size_of::<E>()
    }

    /// `y[m][n] = sum_k x[m][k] * w[n][k]` for the `m` rows of `x` (`[m, in_features]`);
    /// panels are split across candle's pinned pool.
    ///
    /// # Panics
    /// If `x` holds fewer than `m * in_features` values.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        self.matmul_on(x, m, avx512())
    }

    /// [`matmul`](Self::matmul) with AVX-512 tiles or not (`wide`).
    fn matmul_on(&self, x: &[f32], m: usize, wide: bool) -> Vec<f32> {
        let (n, k) = (self.out_features, self.in_features);
        assert!(x.len() >= m * k, "gemm_f32: x is shorter than {m} rows");
        let mut y = vec![0f32; m * n];
        let out = OutPtr(y.as_mut_ptr());
        let panels_n = n.div_ceil(PANEL);
        // candle's own pinned pool (the one `vlm_engine::threads` configures): its workers
        // are already spinning from the previous op, and a second pool would fight them
        // for the same cores.
        candle_core::utils::barrier_pool().execute_chunked(panels_n, |range| {
            // Accumulators for one or two panels, reused across the chunk's panels.
            let mut acc = Vec::with_capacity(m);
            let mut pair = Vec::new();
            let mut p = range.start;
            while p < range.end {
                let panel = &self.panels[p * k * PANEL..(p + 1) * k * PANEL];
                let cols = (n - p * PANEL).min(PANEL);
                if wide && p + 1 < range.end {
                    // Two panels at once: each broadcast of `x` feeds two FMAs.
                    let next = &self.panels[(p + 1) * k * PANEL..(p + 2) * k * PANEL];
                    let cols2 = (n - (p + 1) * PANEL).min(PANEL);
                    // SAFETY: as below, for panels `p` and `p + 1`; AVX-512 was detected.
                    unsafe {
                        panel_pair_rows(
                            x,
                            m,
                            k,
                            [panel, next],
                            &mut pair,
                            out,
                            n,
                            p * PANEL,
                            [cols, cols2],
                        )
                    };
                    p += 2;
                    continue;
                }
                // SAFETY: AVX2/FMA (F16C) were detected when the weight was packed; each panel
                // writes only its own columns `p*PANEL..p*PANEL+cols` of `y`, so the
                // parallel writes are disjoint, and `y` outlives the parallel loop.
                unsafe { panel_rows(x, m, k, panel, &mut acc, out, n, p * PANEL, cols, wide) };
                p += 1;
            }
        });
        y
    }
}

/// All `m` rows of `x` against one panel, `k` walked in [`K_BLOCK`]s; accumulators go
/// through memory between blocks unchanged, so each element is still one FMA chain.
/// `acc` is scratch space, reset here.
#[allow(clippy::too_many_arguments)]
unsafe fn panel_rows<E: PanelElem>(
    x: &[f32],
    m: usize,
    k: usize,
    panel: &[E],
    acc: &mut Vec<[f32; PANEL]>,
    out: OutPtr,
    ldy: usize,
    col0: usize,
    cols: usize,
    wide: bool,
) {
    #[cfg(target_arch = "x86_64")]
    {
        acc.clear();
        acc.resize(m, [0f32; PANEL]);
        let mut k0 = 0;
        while k0 < k {
            let k1 = (k0 + K_BLOCK).min(k);
            let mut r = 0;
            while wide && r < m {
                // One 16-lane accumulator per row: twelve rows keep both FMA pipes busy.
                let rows = (m - r).min(TILE_ROWS_512);
                let x_rows = &x[r * k..(r + rows) * k];
                let a = &mut acc[r..r + rows];
                match rows {
                    12 => tile_avx512::<E, 12>(x_rows, k, k0..k1, panel, a),
                    11 => tile_avx512::<E, 11>(x_rows, k, k0..k1, panel, a),
                    10 => tile_avx512::<E, 10>(x_rows, k, k0..k1, panel, a),
                    9 => tile_avx512::<E, 9>(x_rows, k, k0..k1, panel, a),
                    8 => tile_avx512::<E, 8>(x_rows, k, k0..k1, panel, a),
                    7 => tile_avx512::<E, 7>(x_rows, k, k0..k1, panel, a),
                    6 => tile_avx512::<E, 6>(x_rows, k, k0..k1, panel, a),
                    5 => tile_avx512::<E, 5>(x_rows, k, k0..k1, panel, a),
                    4 => tile_avx512::<E, 4>(x_rows, k, k0..k1, panel, a),
                    3 => tile_avx512::<E, 3>(x_rows, k, k0..k1, panel, a),
                    2 => tile_avx512::<E, 2>(x_rows, k, k0..k1, panel, a),
                    _ => tile_avx512::<E, 1>(x_rows, k, k0..k1, panel, a),
                }
                r += rows;
            }
            while r < m {
                let rows = (m - r).min(TILE_ROWS);
                let x_rows = &x[r * k..(r + rows) * k];
                let a = &mut acc[r..r + rows];
                match rows {
                    6 => tile_avx2::<E, 6>(x_rows, k, k0..k1, panel, a),
                    5 => tile_avx2::<E, 5>(x_rows, k, k0..k1, panel, a),
                    4 => tile_avx2::<E, 4>(x_rows, k, k0..k1, panel, a),
                    3 => tile_avx2::<E, 3>(x_rows, k, k0..k1, panel, a),
                    2 => tile_avx2::<E, 2>(x_rows, k, k0..k1, panel, a),
                    _ => tile_avx2::<E, 1>(x_rows, k, k0..k1, panel, a),
                }
                r += rows;
            }
            k0 = k1;
        }
        for (i, row) in acc.iter().enumerate() {
            std::ptr::copy_nonoverlapping(row.as_ptr(), out.at(i * ldy + col0), cols);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (x, m, k, panel, acc, out, ldy, col0, cols, wide);
}

/// [`panel_rows`] for two adjacent panels with AVX-512 tiles of up to [`TILE_ROWS_PAIR`]
/// rows x 2 panels; each element is the same FMA chain as on every other path.
#[allow(clippy::too_many_arguments)]
unsafe fn panel_pair_rows<E: PanelElem>(
    x: &[f32],
    m: usize,
    k: usize,
    panels: [&[E]; 2],
    acc: &mut Vec<[[f32; PANEL]; 2]>,
    out: OutPtr,
    ldy: usize,
    col0: usize,
    cols: [usize; 2],
) {
    #[cfg(target_arch = "x86_64")]
    {
        acc.clear();
        acc.resize(m, [[0f32; PANEL]; 2]);
        let mut k0 = 0;
        while k0 < k {
            let k1 = (k0 + K_BLOCK).min(k);
            let mut r = 0;
            while r < m {
                let rows = (m - r).min(TILE_ROWS_PAIR);
                let x_rows = &x[r * k..(r + rows) * k];
                let a = &mut acc[r..r + rows];
                macro_rules! tile {
                    ($($n:literal)+) => {
                        match rows {
                            $($n => tile_pair_avx512::<E, $n>(x_rows, k, k0..k1, panels, a),)+
                            _ => unreachable!("tile of {rows} rows"),
                        }
                    };
                }
                tile!(1 2 3 4 5 6 7 8 9 10 11 12);
                r += rows;
            }
            k0 = k1;
        }
        for (i, row) in acc.iter().enumerate() {
            std::ptr::copy_nonoverlapping(row[0].as_ptr(), out.at(i * ldy + col0), cols[0]);
            std::ptr::copy_nonoverlapping(row[1].as_ptr(), out.at(i * ldy + col0 + PANEL), cols[1]);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (x, m, k, panels, acc, out, ldy, col0, cols);
}

/// [`tile_avx512`] over two panels: 2 x `R` accumulators, one broadcast of `x` per row per
/// `k` feeding both.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_pair_avx512<E: PanelElem, const R: usize>(
    x: &[f32],
    k: usize,
    ks: std::ops::Range<usize>,
    panels: [&[E]; 2],
    acc: &mut [[[f32; PANEL]; 2]],
) {
    use std::arch::x86_64::*;
    debug_assert!(x.len() >= R * k && acc.len() >= R);
    debug_assert!(panels.iter().all(|p| p.len() >= k * PANEL) && ks.end <= k);
    let xp = x.as_ptr();
    let (w0p, w1p) = (panels[0].as_ptr(), panels[1].as_ptr());
    let mut a = [[_mm512_setzero_ps(); 2]; R];
    for (ai, row) in a.iter_mut().zip(acc.iter()) {
        ai[0] = _mm512_loadu_ps(row[0].as_ptr());
        ai[1] = _mm512_loadu_ps(row[1].as_ptr());
    }
    for kk in ks {
        let w0 = E::load16_512(w0p.add(kk * PANEL));
        let w1 = E::load16_512(w1p.add(kk * PANEL));
        _mm_prefetch::<_MM_HINT_T0>(w0p.wrapping_add((kk + PREFETCH_K) * PANEL) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(w1p.wrapping_add((kk + PREFETCH_K) * PANEL) as *const i8);
        for (i, ai) in a.iter_mut().enumerate() {
            let xv = _mm512_set1_ps(*xp.add(i * k + kk));
            ai[0] = _mm512_fmadd_ps(xv, w0, ai[0]);
            ai[1] = _mm512_fmadd_ps(xv, w1, ai[1]);
        }
    }
    for (ai, row) in a.iter().zip(acc.iter_mut()) {
        _mm512_storeu_ps(row[0].as_mut_ptr(), ai[0]);
        _mm512_storeu_ps(row[1].as_mut_ptr(), ai[1]);
    }
}

/// [`tile_avx2`] with one 16-lane vector per row: the same FMA per element per `k`, in
/// the same order, so the two paths give the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512<E: PanelElem, const R: usize>(
    x: &[f32],
    k: usize,
    ks: std::ops::Range<usize>,
    panel: &[E],
    acc: &mut [[f32; PANEL]],
) {
    use std::arch::x86_64::*;
    debug_assert!(x.len() >= R * k && panel.len() >= k * PANEL && acc.len() >= R);
    debug_assert!(ks.end <= k);
    let xp = x.as_ptr();
    let wp = panel.as_ptr();
    let mut a = [_mm512_setzero_ps(); R];
    for (ai, row) in a.iter_mut().zip(acc.iter()) {
        *ai = _mm512_loadu_ps(row.as_ptr());
    }
    for kk in ks {
        let w = E::load16_512(wp.add(kk * PANEL));
        _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add((kk + PREFETCH_K) * PANEL) as *const i8);
        for (i, ai) in a.iter_mut().enumerate() {
            *ai = _mm512_fmadd_ps(_mm512_set1_ps(*xp.add(i * k + kk)), w, *ai);
        }
    }
    for (ai, row) in a.iter().zip(acc.iter_mut()) {
        _mm512_storeu_ps(row.as_mut_ptr(), *ai);
    }
}

/// `R` rows of `x` (`[R][k]`) times one panel (`[k][16]`) over `ks`, continuing the
/// accumulators in `acc`: one FMA per accumulator per `k`, in `k` order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_avx2<E: PanelElem, const R: usize>(
    x: &[f32],
    k: usize,
    ks: std::ops::Range<usize>,
    panel: &[E],
    acc: &mut [[f32; PANEL]],
) {
    use std::arch::x86_64::*;
    debug_assert!(x.len() >= R * k && panel.len() >= k * PANEL && acc.len() >= R);
    debug_assert!(ks.end <= k);
    let xp = x.as_ptr();
    let wp = panel.as_ptr();
    let mut lo = [_mm256_setzero_ps(); R];
    let mut hi = [_mm256_setzero_ps(); R];
    for i in 0..R {
        lo[i] = _mm256_loadu_ps(acc[i].as_ptr());
        hi[i] = _mm256_loadu_ps(acc[i].as_ptr().add(8));
    }
    for kk in ks {
        let (w0, w1) = E::load16(wp.add(kk * PANEL));
        // Weights stream from DRAM once per step; ask for them early enough to overlap.
        _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add((kk + PREFETCH_K) * PANEL) as *const i8);
        for i in 0..R {
            let xv = _mm256_broadcast_ss(&*xp.add(i * k + kk));
            lo[i] = _mm256_fmadd_ps(xv, w0, lo[i]);
            hi[i] = _mm256_fmadd_ps(xv, w1, hi[i]);
        }
    }
    for i in 0..R {
        _mm256_storeu_ps(acc[i].as_mut_ptr(), lo[i]);
        _mm256_storeu_ps(acc[i].as_mut_ptr().add(8), hi[i]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    #[test]
    fn matches_a_plain_product_and_each_row_is_independent_of_the_batch() {
        assert!(
            avx2_fma(),
            "this machine lacks AVX2/FMA: the packed kernel is not exercised"
        );
        // Ragged on purpose: a partial panel, k across two K_BLOCKs, rows across tiles.
        let (n, k, m) = (37, 300, 13);
        let w = random(n * k, 1);
        let x = random(m * k, 2);
        let packed = PackedF32Weight::pack(&w, n, k).unwrap();
        let y = packed.matmul(&x, m);
        for r in 0..m {
            for j in 0..n {
                let want: f64 = (0..k)
                    .map(|kk| f64::from(x[r * k + kk]) * f64::from(w[j * k + kk]))
                    .sum();
                assert!((f64::from(y[r * n + j]) - want).abs() < 1e-4, "({r}, {j})");
            }
        }
        for r in 0..m {
            let alone = packed.matmul(&x[r * k..(r + 1) * k], 1);
            assert_eq!(alone, y[r * n..(r + 1) * n], "row {r}");
        }
    }

    /// Half-precision panels: the product of `x` with the rounded weights (f64 reference),
    /// rows independent of the batch, rows read back as the rounded values.
    fn half_matches<E: PanelElem + std::fmt::Debug>() {
        let (n, k, m) = (37, 300, 13);
        let w = random(n * k, 3);
        let x = random(m * k, 4);
        let packed = PackedWeight::<E>::pack(&w, n, k).unwrap();
        assert_eq!(packed.bytes(), 48 * k * std::mem::size_of::<E>());
        let rounded: Vec<f32> = w.iter().map(|&v| E::from_f32(v).to_f32()).collect();
        let y = packed.matmul(&x, m);
        for r in 0..m {
            for j in 0..n {
                let want: f64 = (0..k)
                    .map(|kk| f64::from(x[r * k + kk]) * f64::from(rounded[j * k + kk]))
                    .sum();
                assert!((f64::from(y[r * n + j]) - want).abs() < 1e-4, "({r}, {j})");
            }
            let alone = packed.matmul(&x[r * k..(r + 1) * k], 1);
            assert_eq!(alone, y[r * n..(r + 1) * n], "row {r}");
        }
        assert_eq!(packed.row(5).unwrap(), rounded[5 * k..6 * k]);
    }

    #[test]
    fn bf16_and_f16_panels_compute_with_the_rounded_weights() {
        assert!(
            avx2_fma() && f16c(),
            "the half-precision kernels are not exercised"
        );
        half_matches::<bf16>();
        half_matches::<f16>();
    }

    #[test]
    fn avx512_tiles_give_the_avx2_bits() {
        if !avx512() {
            eprintln!("no AVX-512 here: only the AVX2 path runs");
            return;
        }
        let (n, k, m) = (37, 600, 29);
        let w = random(n * k, 9);
        let x = random(m * k, 10);
        let f32s = PackedWeight::<f32>::pack(&w, n, k).unwrap();
        assert_eq!(f32s.matmul_on(&x, m, true), f32s.matmul_on(&x, m, false));
        let halves = PackedWeight::<bf16>::pack(&w, n, k).unwrap();
        assert_eq!(
            halves.matmul_on(&x, m, true),
            halves.matmul_on(&x, m, false)
        );
        let halves = PackedWeight::<f16>::pack(&w, n, k).unwrap();
        assert_eq!(
            halves.matmul_on(&x, m, true),
            halves.matmul_on(&x, m, false)
        );
    }

    #[test]
    fn refuses_a_weight_of_the_wrong_length() {
        assert!(PackedF32Weight::pack(&[0.0; 10], 3, 4).is_none());
    }

    #[test]
    fn rows_read_back_from_the_panels() {
        if !avx2_fma() {
            return;
        }
        // 37 rows: three panels, the last one partly padding.
        let (n, k) = (37, 29);
        let w = random(n * k, 5);
        let packed = PackedF32Weight::pack(&w, n, k).unwrap();
        for r in 0..n {
            assert_eq!(packed.row(r).unwrap(), w[r * k..(r + 1) * k]);
        }
        assert_eq!(packed.row(n), None);
    }
}
