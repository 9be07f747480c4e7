//! f32 GEMM against weights re-laid out once into panels of [`PANEL`] output features
//! stored feature-minor (`panel[k][j]`); `x · Wᵀ` runs as an AVX2/FMA register-tiled outer
//! product over them. Two reasons:
//!
//! - a general matmul re-packs the whole weight on every call, which dominates the
//!   few-row products of decode steps;
//! - every output element is accumulated by one FMA chain in `k` order, however many rows
//!   are in the batch and wherever a row falls in a tile, so a sequence gets bit-identical
//!   numbers alone or batched with others.

use std::sync::Arc;

use super::disjoint::OutPtr;
use super::features::avx2_fma;

/// Output features per packed panel: two 8-lane vectors.
pub const PANEL: usize = 16;
/// Input rows per register tile: 6 rows x 2 vectors = 12 accumulators, plus two weight
/// vectors and one broadcast, fits the 16 ymm registers.
const TILE_ROWS: usize = 6;
/// How far ahead (in `k` steps of one 64-byte panel row) weights are prefetched.
const PREFETCH_K: usize = 256;
/// `k` is walked in blocks of this many so a panel block and the rows' slices of `x` stay
/// in L1 while every row tile uses them.
const K_BLOCK: usize = 256;

/// A `[out_features, in_features]` weight packed for [`matmul`](Self::matmul).
#[derive(Debug, Clone)]
pub struct PackedF32Weight {
    /// `ceil(out / PANEL)` panels of `[in][PANEL]`, zero-padded past `out`.
    panels: Arc<Vec<f32>>,
    out_features: usize,
    in_features: usize,
}

impl PackedF32Weight {
    /// Packs a row-major `[out_features, in_features]` weight. `None` when this CPU lacks
    /// AVX2/FMA or `weight` has another length: the caller keeps its general path.
    pub fn pack(weight: &[f32], out_features: usize, in_features: usize) -> Option<Self> {
        let (n, k) = (out_features, in_features);
        if !avx2_fma() || weight.len() != n * k || k == 0 {
            return None;
        }
        let mut panels = vec![0f32; n.div_ceil(PANEL) * k * PANEL];
        for (j, row) in weight.chunks_exact(k).enumerate() {
            let base = j / PANEL * k * PANEL + j % PANEL;
            for (kk, v) in row.iter().enumerate() {
                panels[base + kk * PANEL] = *v;
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
        Some((0..k).map(|kk| self.panels[base + kk * PANEL]).collect())
    }

    /// `y[m][n] = sum_k x[m][k] * w[n][k]` for the `m` rows of `x` (`[m, in_features]`);
    /// panels are split across candle's pinned pool.
    ///
    /// # Panics
    /// If `x` holds fewer than `m * in_features` values.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        let (n, k) = (self.out_features, self.in_features);
        assert!(x.len() >= m * k, "gemm_f32: x is shorter than {m} rows");
        let mut y = vec![0f32; m * n];
        let out = OutPtr(y.as_mut_ptr());
        let panels_n = n.div_ceil(PANEL);
        // candle's own pinned pool (the one `vlm_engine::threads` configures): its workers
        // are already spinning from the previous op, and a second pool would fight them
        // for the same cores.
        candle_core::utils::barrier_pool().execute_chunked(panels_n, |range| {
            // Accumulators for one panel, reused across the chunk's panels.
            let mut acc = Vec::with_capacity(m);
            for p in range {
                let panel = &self.panels[p * k * PANEL..(p + 1) * k * PANEL];
                let cols = (n - p * PANEL).min(PANEL);
                // SAFETY: AVX2/FMA were detected when the weight was packed; each panel
                // writes only its own columns `p*PANEL..p*PANEL+cols` of `y`, so the
                // parallel writes are disjoint, and `y` outlives the parallel loop.
                unsafe { panel_rows(x, m, k, panel, &mut acc, out, n, p * PANEL, cols) };
            }
        });
        y
    }
}

/// All `m` rows of `x` against one panel, `k` walked in [`K_BLOCK`]s; accumulators go
/// through memory between blocks unchanged, so each element is still one FMA chain.
/// `acc` is scratch space, reset here.
#[allow(clippy::too_many_arguments)]
unsafe fn panel_rows(
    x: &[f32],
    m: usize,
    k: usize,
    panel: &[f32],
    acc: &mut Vec<[f32; PANEL]>,
    out: OutPtr,
    ldy: usize,
    col0: usize,
    cols: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        acc.clear();
        acc.resize(m, [0f32; PANEL]);
        let mut k0 = 0;
        while k0 < k {
            let k1 = (k0 + K_BLOCK).min(k);
            let mut r = 0;
            while r < m {
                let rows = (m - r).min(TILE_ROWS);
                let x_rows = &x[r * k..(r + rows) * k];
                let a = &mut acc[r..r + rows];
                match rows {
                    6 => tile_avx2::<6>(x_rows, k, k0..k1, panel, a),
                    5 => tile_avx2::<5>(x_rows, k, k0..k1, panel, a),
                    4 => tile_avx2::<4>(x_rows, k, k0..k1, panel, a),
                    3 => tile_avx2::<3>(x_rows, k, k0..k1, panel, a),
                    2 => tile_avx2::<2>(x_rows, k, k0..k1, panel, a),
                    _ => tile_avx2::<1>(x_rows, k, k0..k1, panel, a),
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
    let _ = (x, m, k, panel, acc, out, ldy, col0, cols);
}

/// `R` rows of `x` (`[R][k]`) times one panel (`[k][16]`) over `ks`, continuing the
/// accumulators in `acc`: one FMA per accumulator per `k`, in `k` order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const R: usize>(
    x: &[f32],
    k: usize,
    ks: std::ops::Range<usize>,
    panel: &[f32],
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
        let w0 = _mm256_loadu_ps(wp.add(kk * PANEL));
        let w1 = _mm256_loadu_ps(wp.add(kk * PANEL + 8));
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
