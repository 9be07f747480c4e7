//! Linear layers of the decoder. Decode steps multiply a handful of rows by each weight
//! matrix; candle's general matmul re-packs the whole weight for every such call, which
//! dominates batched decoding on CPU. For up to [`SMALL_ROWS`] rows of f32 on a CPU with
//! AVX2 and FMA this computes `x · Wᵀ` directly from the row-major weights instead, 4
//! weight rows x 4 input rows at a time. Every output element is summed in the same order
//! whatever the number of rows, so a sequence gets the same numbers alone or in a batch.

use candle_core::{DType, Device, Module, Storage, Tensor};
use rayon::prelude::*;

/// Above this many rows candle's packed matmul is faster.
pub const SMALL_ROWS: usize = 32;

#[derive(Debug, Clone)]
pub struct Linear {
    inner: candle_nn::Linear,
}

impl Linear {
    pub fn new(inner: candle_nn::Linear) -> Self {
        Self { inner }
    }

    pub fn weight(&self) -> &Tensor {
        self.inner.weight()
    }

    pub fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let w = self.inner.weight();
        let small = xs.rank() == 2
            && xs.dim(0)? <= SMALL_ROWS
            && xs.dtype() == DType::F32
            && w.dtype() == DType::F32
            && matches!(xs.device(), Device::Cpu)
            && w.is_contiguous()
            && avx2_fma();
        if !small {
            return self.inner.forward(xs);
        }
        let xs = xs.contiguous()?;
        let (m, k) = xs.dims2()?;
        let (n, wk) = w.dims2()?;
        if k != wk {
            candle_core::bail!("linear: input has {k} features, weight expects {wk}");
        }
        let y = {
            let (x_store, x_layout) = xs.storage_and_layout();
            let (w_store, w_layout) = w.storage_and_layout();
            let (Storage::Cpu(x_cpu), Storage::Cpu(w_cpu)) = (&*x_store, &*w_store) else {
                return self.inner.forward(&xs);
            };
            // Both contiguous: their data starts at the layout offset.
            let x = &x_cpu.as_slice::<f32>()?[x_layout.start_offset()..][..m * k];
            let w_data = &w_cpu.as_slice::<f32>()?[w_layout.start_offset()..][..n * k];
            small_matmul(x, w_data, m, n, k)
        };
        let y = Tensor::from_vec(y, (m, n), xs.device())?;
        match self.inner.bias() {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

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

/// `y[m][n] = sum_k x[m][k] * w[n][k]`, weight rows split across the compute pool.
fn small_matmul(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    const CHUNK: usize = 64;
    let mut yt = vec![0f32; n * m]; // [n][m], transposed at the end
    yt.par_chunks_mut(CHUNK * m)
        .enumerate()
        .for_each(|(c, out)| {
            let n0 = c * CHUNK;
            let rows = out.len() / m;
            #[cfg(target_arch = "x86_64")]
            // SAFETY: only reached when AVX2 and FMA were detected (`avx2_fma`).
            unsafe {
                block_avx2(x, &w[n0 * k..(n0 + rows) * k], m, rows, k, out)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (x, w, rows, k, n0, out);
        });
    let mut y = vec![0f32; m * n];
    for (j, col) in yt.chunks_exact(m).enumerate() {
        for (i, v) in col.iter().enumerate() {
            y[i * n + j] = *v;
        }
    }
    y
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
// Index loops mirror the register tile (rows i of x, rows j of w); iterators would hide it.
#[allow(clippy::needless_range_loop)]
unsafe fn block_avx2(x: &[f32], w: &[f32], m: usize, n: usize, k: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;

    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    let k8 = k / 8 * 8;
    let mut nb = 0;
    while nb < n {
        let nn = (n - nb).min(4);
        let mut mb = 0;
        while mb < m {
            let mm = (m - mb).min(4);
            let mut acc = [[_mm256_setzero_ps(); 4]; 4];
            let mut kk = 0;
            while kk < k8 {
                let mut wv = [_mm256_setzero_ps(); 4];
                for (j, v) in wv.iter_mut().enumerate().take(nn) {
                    *v = _mm256_loadu_ps(w.as_ptr().add((nb + j) * k + kk));
                }
                for i in 0..mm {
                    let xv = _mm256_loadu_ps(x.as_ptr().add((mb + i) * k + kk));
                    for j in 0..nn {
                        acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
                    }
                }
                kk += 8;
            }
            for i in 0..mm {
                for j in 0..nn {
                    let mut s = hsum(acc[i][j]);
                    for t in k8..k {
                        s += x[(mb + i) * k + t] * w[(nb + j) * k + t];
                    }
                    out[(nb + j) * m + mb + i] = s;
                }
            }
            mb += 4;
        }
        nb += 4;
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

    #[test]
    fn matches_candle_and_rows_are_independent_of_batch_size() {
        let dev = Device::Cpu;
        let (n, k) = (37, 53); // ragged on purpose: tails in every dimension
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, n, &dev).unwrap();
        let lin = Linear::new(candle_nn::Linear::new(w.clone(), Some(b.clone())));
        let x = Tensor::randn(0f32, 1.0, (13, k), &dev).unwrap();
        let ours = lin.forward(&x).unwrap();
        let reference = x
            .matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        let diff = (&ours - &reference)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-4, "{diff}");
        // Row independence is this kernel's promise; candle's fallback makes none.
        assert!(
            avx2_fma(),
            "this machine lacks AVX2/FMA: the small-batch kernel is not exercised"
        );
        for row in [0, 6, 12] {
            let alone = lin.forward(&x.narrow(0, row, 1).unwrap()).unwrap();
            let batched = ours.narrow(0, row, 1).unwrap();
            assert_eq!(
                alone.to_vec2::<f32>().unwrap(),
                batched.to_vec2::<f32>().unwrap()
            );
        }
    }
}
