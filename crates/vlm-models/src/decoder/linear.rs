//! Linear layers. On a CPU with AVX2 and FMA, f32 weights are re-laid out once at load
//! into panels of [`PANEL`] output features stored feature-minor (`panel[k][j]`), and
//! `x · Wᵀ` runs as a register-tiled outer product over them. Two reasons:
//!
//! - candle's general matmul re-packs the whole weight on every call, which dominates the
//!   few-row products of decode steps;
//! - every output element is accumulated by one FMA chain in `k` order, however many rows
//!   are in the batch and wherever a row falls in a tile, so a sequence gets bit-identical
//!   numbers alone or batched with others.
//!
//! Other dtypes and devices use candle's `Linear`.

use candle_core::{DType, Device, Module, Storage, Tensor};

/// Output features per packed panel: two 8-lane vectors.
const PANEL: usize = 16;
/// Input rows per register tile: 6 rows x 2 vectors = 12 accumulators, plus two weight
/// vectors and one broadcast, fits the 16 ymm registers.
const TILE_ROWS: usize = 6;
/// How far ahead (in `k` steps of one 64-byte panel row) weights are prefetched.
const PREFETCH_K: usize = 256;

#[derive(Debug, Clone)]
pub struct Linear {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Candle(candle_nn::Linear),
    Packed(PackedWeight),
}

#[derive(Debug, Clone)]
struct PackedWeight {
    /// `ceil(out / PANEL)` panels of `[in][PANEL]`, zero-padded past `out`.
    panels: std::sync::Arc<Vec<f32>>,
    out_features: usize,
    in_features: usize,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn new(inner: candle_nn::Linear) -> Self {
        let kind = match PackedWeight::pack(&inner) {
            Some(p) => Kind::Packed(p),
            None => Kind::Candle(inner),
        };
        Self { kind }
    }

    pub fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match &self.kind {
            Kind::Candle(l) => l.forward(xs),
            Kind::Packed(p) if xs.dtype() == DType::F32 && xs.device().is_cpu() => p.forward(xs),
            Kind::Packed(_) => {
                candle_core::bail!(
                    "linear: weights are packed for f32 on the CPU, input is {:?} on {:?}",
                    xs.dtype(),
                    xs.device()
                )
            }
        }
    }
}

impl PackedWeight {
    fn pack(l: &candle_nn::Linear) -> Option<Self> {
        let w = l.weight();
        if w.dtype() != DType::F32 || !matches!(w.device(), Device::Cpu) || !avx2_fma() {
            return None;
        }
        let (n, k) = w.dims2().ok()?;
        let w = w.contiguous().ok()?;
        let panels_n = n.div_ceil(PANEL);
        let mut panels = vec![0f32; panels_n * k * PANEL];
        {
            let (store, layout) = w.storage_and_layout();
            let Storage::Cpu(cpu) = &*store else {
                return None;
            };
            let data = &cpu.as_slice::<f32>().ok()?[layout.start_offset()..][..n * k];
            for (j, row) in data.chunks_exact(k).enumerate() {
                let base = j / PANEL * k * PANEL + j % PANEL;
                for (kk, v) in row.iter().enumerate() {
                    panels[base + kk * PANEL] = *v;
                }
            }
        }
        Some(Self {
            panels: std::sync::Arc::new(panels),
            out_features: n,
            in_features: k,
            bias: l.bias().cloned(),
        })
    }

    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let k = self.in_features;
        let mut out_shape = xs.dims().to_vec();
        match out_shape.last_mut() {
            Some(last) if *last == k => *last = self.out_features,
            _ => candle_core::bail!("linear: input {:?} does not end in {k} features", xs.dims()),
        }
        let m = xs.elem_count() / k;
        let xs = xs.reshape((m, k))?.contiguous()?;
        let y = {
            let (store, layout) = xs.storage_and_layout();
            let Storage::Cpu(cpu) = &*store else {
                candle_core::bail!("linear: packed weights need a CPU input");
            };
            let x = &cpu.as_slice::<f32>()?[layout.start_offset()..][..m * k];
            self.matmul(x, m)
        };
        let y = Tensor::from_vec(y, out_shape, xs.device())?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }

    /// `y[m][n] = sum_k x[m][k] * w[n][k]`; panels are split across the compute pool.
    fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        let (n, k) = (self.out_features, self.in_features);
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

#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: used only for writes to disjoint column ranges (see `PackedWeight::matmul`).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// All `m` rows of `x` against one panel. `k` is walked in blocks so that the panel block
/// and the rows' slices of `x` stay in L1 while every row tile uses them; accumulators
/// go through memory between blocks unchanged, so each element is still one FMA chain.
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
        const K_BLOCK: usize = 256;
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
            std::ptr::copy_nonoverlapping(row.as_ptr(), out.0.add(i * ldy + col0), cols);
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

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        Linear::forward(self, xs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn matches_candle_and_rows_are_independent_of_batch_size() {
        assert!(
            avx2_fma(),
            "this machine lacks AVX2/FMA: the packed kernel is not exercised"
        );
        let dev = Device::Cpu;
        let (n, k) = (37, 53); // ragged on purpose: a partial panel and odd k
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, n, &dev).unwrap();
        let lin = Linear::new(candle_nn::Linear::new(w.clone(), Some(b.clone())));
        assert!(matches!(lin.kind, Kind::Packed(_)));
        let x = Tensor::randn(0f32, 1.0, (13, k), &dev).unwrap();
        let ours = lin.forward(&x).unwrap();
        let reference = x
            .matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        assert!(max_diff(&ours, &reference) < 1e-4);
        // Every row alone, and every prefix, lands on the same bits: rows move between
        // tile positions and tile sizes.
        let all = ours.to_vec2::<f32>().unwrap();
        for (row, expected) in all.iter().enumerate() {
            let alone = lin.forward(&x.narrow(0, row, 1).unwrap()).unwrap();
            assert_eq!(&alone.to_vec2::<f32>().unwrap()[0], expected, "row {row}");
        }
        for len in [2, 5, 7, 12] {
            let prefix = lin.forward(&x.narrow(0, 0, len).unwrap()).unwrap();
            assert_eq!(prefix.to_vec2::<f32>().unwrap(), all[..len].to_vec());
        }
    }

    #[test]
    fn keeps_leading_dimensions() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (20, 8), &dev).unwrap();
        let lin = Linear::new(candle_nn::Linear::new(w.clone(), None));
        let x = Tensor::randn(0f32, 1.0, (2, 3, 8), &dev).unwrap();
        let ours = lin.forward(&x).unwrap();
        assert_eq!(ours.dims(), &[2, 3, 20]);
        let reference = x.broadcast_matmul(&w.t().unwrap()).unwrap();
        assert!(max_diff(&ours, &reference) < 1e-5);
        assert!(lin
            .forward(&Tensor::zeros((2, 7), DType::F32, &dev).unwrap())
            .is_err());
    }
}
