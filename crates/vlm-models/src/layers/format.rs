//! The formats linear weights are held in: as loaded, half precision packed for the CPU
//! GEMM, or quantized in llama.cpp's block formats.

use candle_core::DType;

/// llama.cpp's block quantizations that `--quantize` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantization {
    /// 32 values per block: an f16 scale and 8-bit values (8.5 bits per weight).
    Q8_0,
    /// 32 values per block: an f16 scale and 4-bit values (4.5 bits per weight).
    Q4_0,
    /// 256-value super-blocks of 8 sub-blocks with 6-bit scales and minimums, 4-bit values
    /// (4.5 bits per weight).
    Q4K,
}

impl Quantization {
    pub const NAMES: &'static str = "q8_0, q4_0 or q4_k";

    /// `q8_0`, `q4_0` or `q4_k` (as llama.cpp spells them; `q4_K` too).
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "q8_0" => Some(Self::Q8_0),
            "q4_0" => Some(Self::Q4_0),
            "q4_k" => Some(Self::Q4K),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Q8_0 => "q8_0",
            Self::Q4_0 => "q4_0",
            Self::Q4K => "q4_k",
        }
    }

    /// Values per block.
    pub fn block(self) -> usize {
        match self {
            Self::Q8_0 | Self::Q4_0 => 32,
            Self::Q4K => 256,
        }
    }

    /// This format, or the nearest whose blocks divide an input width of `k` (q4_k's 256
    /// falls back to q4_0's 32, as llama.cpp falls back for such tensors); `None` when no
    /// block size divides it.
    pub fn fitting(self, k: usize) -> Option<Self> {
        if k.is_multiple_of(self.block()) {
            Some(self)
        } else if self == Self::Q4K {
            Self::Q4_0.fitting(k)
        } else {
            None
        }
    }
}

/// How one linear layer's weight is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// In the model's dtype (f32 packed for the CPU GEMM; any dtype on CUDA).
    Native,
    /// bf16 panels of the CPU GEMM, f32 activations.
    Bf16,
    /// f16 panels of the CPU GEMM, f32 activations.
    F16,
    /// Quantized blocks, f32 activations.
    Quantized(Quantization),
}

impl WeightFormat {
    /// The half-precision dtype the format stores, if it is one.
    pub fn dtype(self) -> Option<DType> {
        match self {
            Self::Bf16 => Some(DType::BF16),
            Self::F16 => Some(DType::F16),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_fallbacks() {
        assert_eq!(Quantization::parse("Q4_K"), Some(Quantization::Q4K));
        assert_eq!(Quantization::parse("q5_0"), None);
        assert_eq!(Quantization::Q4K.fitting(4096), Some(Quantization::Q4K));
        assert_eq!(
            Quantization::Q4K.fitting(11008 + 32),
            Some(Quantization::Q4_0)
        );
        assert_eq!(Quantization::Q8_0.fitting(40), None);
        for q in [Quantization::Q8_0, Quantization::Q4_0, Quantization::Q4K] {
            assert_eq!(Quantization::parse(q.name()), Some(q));
        }
    }
}
