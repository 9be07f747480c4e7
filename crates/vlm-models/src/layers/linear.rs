//! Linear layers in every weight format. On a CPU with AVX2, FMA and F16C, f32, bf16 and
//! f16 weights are packed once at load for `vlm_kernels`' GEMM (f32 activations, one FMA
//! chain per output element: a sequence gets bit-identical numbers alone or batched);
//! q8_0, q4_0 and q4_k weights are re-laid out for `vlm_kernels`' integer GEMMs (candle's
//! quantized matmul where those do not run), neither of whose per-element arithmetic
//! depends on the batch; other dtypes and devices use candle's `Linear`.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Module, Storage, Tensor};
use half::{bf16, f16};
use vlm_kernels::cpu::{
    avx2_fma, f16c, PackedQ4K, PackedQuant, PackedWeight, PanelElem, QuantBlock, Q4_0, Q8_0,
};

use super::format::{Quantization, WeightFormat};

#[derive(Debug, Clone)]
pub struct Linear {
    kind: Kind,
    bias: Option<Tensor>,
}

#[derive(Debug, Clone)]
enum Kind {
    Candle(candle_nn::Linear),
    Packed(Arc<dyn PackedGemm>),
    Quantized(Arc<QTensor>),
}

/// A weight packed for the CPU GEMM, whatever its panel format.
trait PackedGemm: std::fmt::Debug + Send + Sync {
    fn in_features(&self) -> usize;
    fn out_features(&self) -> usize;
    fn matmul(&self, x: &[f32], m: usize) -> Vec<f32>;
    fn row(&self, index: usize) -> Option<Vec<f32>>;
    fn bytes(&self) -> usize;
}

impl<E: PanelElem + std::fmt::Debug> PackedGemm for PackedWeight<E> {
    fn in_features(&self) -> usize {
        PackedWeight::in_features(self)
    }
    fn out_features(&self) -> usize {
        PackedWeight::out_features(self)
    }
    fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        PackedWeight::matmul(self, x, m)
    }
    fn row(&self, index: usize) -> Option<Vec<f32>> {
        PackedWeight::row(self, index)
    }
    fn bytes(&self) -> usize {
        PackedWeight::bytes(self)
    }
}

impl<B: QuantBlock> PackedGemm for PackedQuant<B> {
    fn in_features(&self) -> usize {
        PackedQuant::in_features(self)
    }
    fn out_features(&self) -> usize {
        PackedQuant::out_features(self)
    }
    fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        PackedQuant::matmul(self, x, m)
    }
    fn row(&self, index: usize) -> Option<Vec<f32>> {
        PackedQuant::row(self, index)
    }
    fn bytes(&self) -> usize {
        PackedQuant::bytes(self)
    }
}

impl PackedGemm for PackedQ4K {
    fn in_features(&self) -> usize {
        PackedQ4K::in_features(self)
    }
    fn out_features(&self) -> usize {
        PackedQ4K::out_features(self)
    }
    fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        PackedQ4K::matmul(self, x, m)
    }
    fn row(&self, index: usize) -> Option<Vec<f32>> {
        PackedQ4K::row(self, index)
    }
    fn bytes(&self) -> usize {
        PackedQ4K::bytes(self)
    }
}

impl Linear {
    /// A linear layer holding `weight` (`[out, in]`) as it is, packed for the CPU GEMM
    /// when it is f32 there.
    pub fn new(inner: candle_nn::Linear) -> Self {
        let bias = inner.bias().cloned();
        match pack::<f32>(inner.weight()) {
            Some(p) => Self {
                kind: Kind::Packed(p),
                bias,
            },
            None => Self {
                kind: Kind::Candle(inner),
                bias: None,
            },
        }
    }

    /// A linear layer holding `weight` (`[out, in]`, any dtype) in `format`; f32
    /// activations on the CPU for every format but `Native`. Falls back to the plain
    /// layer when the CPU lacks the kernels, and to a quantization whose blocks divide the
    /// input width when the asked one's do not (q4_k's 256 to q4_0's 32), to f32 below that.
    pub fn with_format(
        weight: Tensor,
        bias: Option<Tensor>,
        format: WeightFormat,
    ) -> candle_core::Result<Self> {
        let packed = |w: &Tensor| -> candle_core::Result<Option<Arc<dyn PackedGemm>>> {
            let w = w.to_dtype(DType::F32)?;
            Ok(match format {
                WeightFormat::Bf16 => pack::<bf16>(&w),
                WeightFormat::F16 => pack::<f16>(&w),
                _ => pack::<f32>(&w),
            })
        };
        let kind = match format {
            WeightFormat::Native => return Ok(Self::new(candle_nn::Linear::new(weight, bias))),
            WeightFormat::Bf16 | WeightFormat::F16 => match packed(&weight)? {
                Some(p) => Kind::Packed(p),
                None => {
                    let dtype = format.dtype().unwrap_or(DType::F32);
                    return Ok(Self::new(candle_nn::Linear::new(
                        weight.to_dtype(dtype)?,
                        bias.map(|b| b.to_dtype(dtype)).transpose()?,
                    )));
                }
            },
            WeightFormat::Quantized(q) => {
                let k = weight.dim(1)?;
                match q.fitting(k) {
                    Some(q) => {
                        let qt = QTensor::quantize(&weight.to_dtype(DType::F32)?, ggml(q))?;
                        // Our kernels, measured faster than candle's (with AVX2 and with
                        // AVX-512 VNNI); candle's where they do not run.
                        match pack_quant(&qt, q)? {
                            Some(p) => Kind::Packed(p),
                            None => Kind::Quantized(Arc::new(qt)),
                        }
                    }
                    None => match packed(&weight)? {
                        Some(p) => Kind::Packed(p),
                        None => {
                            return Ok(Self::new(candle_nn::Linear::new(
                                weight.to_dtype(DType::F32)?,
                                bias.map(|b| b.to_dtype(DType::F32)).transpose()?,
                            )))
                        }
                    },
                }
            }
        };
        let bias = bias.map(|b| b.to_dtype(DType::F32)).transpose()?;
        Ok(Self { kind, bias })
    }

    /// Rows `ids` of the weight, as an f32 `[ids, in]` tensor, when the weight can be read
    /// back by row (packed or quantized): a tied model's embedding lookup reads the head's
    /// own storage, so the vocabulary matrix is held once. `None` for a plain layer or an
    /// id past the last row.
    pub fn rows(&self, ids: &[u32]) -> candle_core::Result<Option<Tensor>> {
        match &self.kind {
            Kind::Packed(p) => {
                let k = p.in_features();
                let mut data = Vec::with_capacity(ids.len() * k);
                for &id in ids {
                    match p.row(id as usize) {
                        Some(row) => data.extend(row),
                        None => return Ok(None),
                    }
                }
                Ok(Some(Tensor::from_vec(
                    data,
                    (ids.len(), k),
                    &candle_core::Device::Cpu,
                )?))
            }
            Kind::Quantized(q) => {
                let (n, _) = q.shape().dims2()?;
                if ids.iter().any(|&id| id as usize >= n) {
                    return Ok(None);
                }
                let ids = Tensor::new(ids, &q.device())?;
                Ok(Some(q.embedding(&ids)?.to_dtype(DType::F32)?))
            }
            Kind::Candle(_) => Ok(None),
        }
    }

    /// Whether [`rows`](Self::rows) can read the weight back.
    pub fn reads_rows(&self) -> bool {
        !matches!(self.kind, Kind::Candle(_))
    }

    /// Bytes the weight takes in memory (bias excluded).
    pub fn weight_bytes(&self) -> usize {
        match &self.kind {
            Kind::Candle(l) => l.weight().elem_count() * l.weight().dtype().size_in_bytes(),
            Kind::Packed(p) => p.bytes(),
            Kind::Quantized(q) => q.storage_size_in_bytes(),
        }
    }

    pub fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let y = match &self.kind {
            Kind::Candle(l) => return l.forward(xs),
            Kind::Packed(p) if xs.dtype() == DType::F32 && xs.device().is_cpu() => {
                packed_forward(p.as_ref(), xs)?
            }
            Kind::Packed(_) => {
                candle_core::bail!(
                    "linear: weights are packed for f32 on the CPU, input is {:?} on {:?}",
                    xs.dtype(),
                    xs.device()
                )
            }
            Kind::Quantized(q) => {
                let xs = xs.to_dtype(DType::F32)?.contiguous()?;
                xs.apply_op1_no_bwd(q.as_ref())?
            }
        };
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// Packs an f32 CPU weight as `E` panels; `None` elsewhere or without the kernels.
fn pack<E: PanelElem + std::fmt::Debug>(w: &Tensor) -> Option<Arc<dyn PackedGemm>> {
    if w.dtype() != DType::F32 || !w.device().is_cpu() || !avx2_fma() || !f16c() {
        return None;
    }
    let (n, k) = w.dims2().ok()?;
    let w = w.contiguous().ok()?;
    let (store, layout) = w.storage_and_layout();
    let Storage::Cpu(cpu) = &*store else {
        return None;
    };
    let data = &cpu.as_slice::<f32>().ok()?[layout.start_offset()..][..n * k];
    Some(Arc::new(PackedWeight::<E>::pack(data, n, k)?))
}

/// Re-lays out a q4_0 / q8_0 / q4_k tensor for `vlm_kernels`' quantized GEMMs; `None`
/// off the CPU or without AVX2.
fn pack_quant(
    q: &QTensor,
    format: Quantization,
) -> candle_core::Result<Option<Arc<dyn PackedGemm>>> {
    if !matches!(q.device(), candle_core::Device::Cpu) {
        return Ok(None);
    }
    let (n, k) = q.shape().dims2()?;
    let data = q.data()?;
    Ok(match format {
        Quantization::Q4_0 => PackedQuant::<Q4_0>::pack(&data, n, k).map(|p| Arc::new(p) as _),
        Quantization::Q8_0 => PackedQuant::<Q8_0>::pack(&data, n, k).map(|p| Arc::new(p) as _),
        Quantization::Q4K => PackedQ4K::pack(&data, n, k).map(|p| Arc::new(p) as _),
    })
}

fn packed_forward(p: &dyn PackedGemm, xs: &Tensor) -> candle_core::Result<Tensor> {
    let k = p.in_features();
    let mut out_shape = xs.dims().to_vec();
    match out_shape.last_mut() {
        Some(last) if *last == k => *last = p.out_features(),
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
        p.matmul(x, m)
    };
    Tensor::from_vec(y, out_shape, xs.device())
}

fn ggml(q: Quantization) -> GgmlDType {
    match q {
        Quantization::Q8_0 => GgmlDType::Q8_0,
        Quantization::Q4_0 => GgmlDType::Q4_0,
        Quantization::Q4K => GgmlDType::Q4K,
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
    use candle_core::Device;

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

    /// llama.cpp's q8_0 and q4_0 dequantization, written from its block layout: per 32
    /// values an f16 scale `d`, then `d * q` (q8_0: signed bytes) or `d * (nibble - 8)`
    /// (q4_0: low nibbles are values 0..16, high nibbles 16..32).
    fn reference_dequantize(q: &QTensor) -> Vec<f32> {
        let bytes = q.data().unwrap();
        let mut out = Vec::new();
        match q.dtype() {
            GgmlDType::Q8_0 => {
                for block in bytes.chunks_exact(34) {
                    let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
                    out.extend(block[2..].iter().map(|&b| d * f32::from(b as i8)));
                }
            }
            GgmlDType::Q4_0 => {
                for block in bytes.chunks_exact(18) {
                    let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
                    let nibbles = &block[2..];
                    out.extend(nibbles.iter().map(|&b| d * ((b & 0x0f) as f32 - 8.0)));
                    out.extend(nibbles.iter().map(|&b| d * ((b >> 4) as f32 - 8.0)));
                }
            }
            // Candle's q4_K dequantization, a port of ggml's (the kernel's own tests check
            // its integer arithmetic from the block layout).
            GgmlDType::Q4K => {
                out = q
                    .dequantize(&Device::Cpu)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            }
            other => panic!("no reference for {other:?}"),
        }
        out
    }

    #[test]
    fn every_format_matches_its_reference_dequantization_and_is_batch_invariant() {
        let dev = Device::Cpu;
        let (n, k) = (40, 512);
        let w = Tensor::randn(0f32, 0.5, (n, k), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, n, &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (9, k), &dev).unwrap();
        let formats = [
            WeightFormat::Bf16,
            WeightFormat::F16,
            WeightFormat::Quantized(Quantization::Q8_0),
            WeightFormat::Quantized(Quantization::Q4_0),
            WeightFormat::Quantized(Quantization::Q4K),
        ];
        let original = w.to_vec2::<f32>().unwrap();
        for format in formats {
            let lin = Linear::with_format(w.clone(), Some(b.clone()), format).unwrap();
            // The weights it computes with, read back.
            let held: Vec<Vec<f32>> = lin
                .rows(&(0..n as u32).collect::<Vec<_>>())
                .unwrap()
                .unwrap()
                .to_vec2()
                .unwrap();
            match (&lin.kind, format) {
                (Kind::Quantized(q), WeightFormat::Quantized(Quantization::Q4K)) => {
                    assert_eq!(q.dtype(), GgmlDType::Q4K);
                }
                (Kind::Packed(_), WeightFormat::Quantized(q)) => {
                    // Our kernel's layout holds exactly candle's (llama.cpp's) blocks.
                    let blocks = QTensor::quantize(&w, ggml(q)).unwrap();
                    assert_eq!(held.concat(), reference_dequantize(&blocks), "{format:?}");
                }
                (Kind::Packed(_), WeightFormat::Bf16) => {
                    for (h, o) in held.concat().iter().zip(original.concat()) {
                        assert_eq!(*h, bf16::from_f32(o).to_f32());
                    }
                }
                (Kind::Packed(_), WeightFormat::F16) => {
                    for (h, o) in held.concat().iter().zip(original.concat()) {
                        assert_eq!(*h, f16::from_f32(o).to_f32());
                    }
                }
                (kind, _) => panic!("{format:?} held as {kind:?}"),
            }
            // Quantization error stays within each format's step.
            let worst = held
                .concat()
                .iter()
                .zip(original.concat())
                .map(|(h, o)| (h - o).abs())
                .fold(0f32, f32::max);
            let bound = match format {
                WeightFormat::Quantized(Quantization::Q4_0 | Quantization::Q4K) => 0.25,
                WeightFormat::Quantized(Quantization::Q8_0) => 0.02,
                _ => 0.01,
            };
            assert!(worst < bound, "{format:?}: {worst}");
            // Rows alone equal rows batched.
            let all = lin.forward(&x).unwrap().to_vec2::<f32>().unwrap();
            for (r, row) in all.iter().enumerate() {
                let alone = lin.forward(&x.narrow(0, r, 1).unwrap()).unwrap();
                assert_eq!(
                    &alone.to_vec2::<f32>().unwrap()[0],
                    row,
                    "{format:?} row {r}"
                );
            }
            // And the product is close to the one with the held weights.
            let held_t = Tensor::new(held, &dev).unwrap();
            let want = x
                .matmul(&held_t.t().unwrap())
                .unwrap()
                .broadcast_add(&b)
                .unwrap();
            let got = lin.forward(&x).unwrap();
            let tolerance = match format {
                // Activations are quantized to 8 bits per block for the integer dot products.
                WeightFormat::Quantized(_) => 0.5,
                _ => 1e-3,
            };
            assert!(max_diff(&got, &want) < tolerance, "{format:?}");
        }
    }

    #[test]
    fn a_width_the_blocks_do_not_divide_falls_back() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (16, 96), &dev).unwrap();
        let q4k = Linear::with_format(w.clone(), None, WeightFormat::Quantized(Quantization::Q4K))
            .unwrap();
        // q4_0 blocks: 18 bytes per 32 values.
        assert!(matches!(q4k.kind, Kind::Packed(_)));
        assert_eq!(q4k.weight_bytes(), 16 * 96 / 32 * 18);
        let w = Tensor::randn(0f32, 1.0, (8, 40), &dev).unwrap();
        let q8 = Linear::with_format(w, None, WeightFormat::Quantized(Quantization::Q8_0)).unwrap();
        assert!(
            matches!(q8.kind, Kind::Packed(_)),
            "40 is not a multiple of 32"
        );
    }
}
