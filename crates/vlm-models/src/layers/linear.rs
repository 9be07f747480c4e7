//! Linear layers. On a CPU with AVX2 and FMA, f32 weights are packed once at load for
//! `vlm_kernels`' f32 GEMM (one FMA chain per output element: a sequence gets bit-identical
//! numbers alone or batched); other dtypes and devices use candle's `Linear`.

use candle_core::{DType, Device, Module, Storage, Tensor};
use vlm_kernels::cpu::{avx2_fma, PackedF32Weight};

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
    packed: PackedF32Weight,
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

    /// Row `index` of the weight when it is held packed (and only there); `None` otherwise.
    pub fn packed_row(&self, index: usize) -> Option<Vec<f32>> {
        match &self.kind {
            Kind::Packed(p) => p.packed.row(index),
            Kind::Candle(_) => None,
        }
    }

    /// Whether the weight is held only as packed panels.
    pub fn is_packed(&self) -> bool {
        matches!(self.kind, Kind::Packed(_))
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
        let (store, layout) = w.storage_and_layout();
        let Storage::Cpu(cpu) = &*store else {
            return None;
        };
        let data = &cpu.as_slice::<f32>().ok()?[layout.start_offset()..][..n * k];
        Some(Self {
            packed: PackedF32Weight::pack(data, n, k)?,
            bias: l.bias().cloned(),
        })
    }

    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let k = self.packed.in_features();
        let mut out_shape = xs.dims().to_vec();
        match out_shape.last_mut() {
            Some(last) if *last == k => *last = self.packed.out_features(),
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
            self.packed.matmul(x, m)
        };
        let y = Tensor::from_vec(y, out_shape, xs.device())?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
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
