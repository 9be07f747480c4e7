//! How to load a checkpoint: dtype, weight quantization, device, and an optional chat
//! template override.

use candle_core::{DType, Device};
use vlm_kernels::cpu::{avx2_fma, f16c};

use crate::error::ModelError;
use crate::layers::{Quantization, WeightFormat};

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The weights' dtype. On a CPU with the packed kernels, bf16 and f16 apply to the
    /// linear weights (and tables) only: activations, norms and the KV cache stay f32.
    pub dtype: DType,
    /// The language model's linear weights quantized at load (`--quantize`); the vision
    /// tower and projector keep `dtype`.
    pub quantize: Option<Quantization>,
    pub device: Device,
    /// A chat template to use instead of the checkpoint's (`--chat-template FILE`).
    pub chat_template: Option<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            dtype: DType::F32,
            quantize: None,
            device: Device::Cpu,
            chat_template: None,
        }
    }
}

impl LoadOptions {
    /// `--device cpu|cuda|cuda:N` and `--dtype f32|f16|bf16|auto` as users type them. `auto`
    /// is bf16 on CUDA and f32 on CPU.
    pub fn parse(device: &str, dtype: &str) -> Result<Self, ModelError> {
        let bad = ModelError::BadOption;
        let device = match device {
            "cpu" => Device::Cpu,
            d if d == "cuda" || d.starts_with("cuda:") => {
                let ordinal = match d.strip_prefix("cuda:") {
                    Some(n) => n
                        .parse::<usize>()
                        .map_err(|_| bad(format!("bad device {d:?}; use cuda:0, cuda:1, ...")))?,
                    None => 0,
                };
                if !candle_core::utils::cuda_is_available() {
                    return Err(bad(format!(
                        "device {d:?} needs a CUDA build; rebuild with `cargo build --release --features cuda` or use --device cpu"
                    )));
                }
                Device::new_cuda(ordinal).map_err(|e| bad(format!("cannot open {d}: {e}")))?
            }
            other => return Err(bad(format!("unknown device {other:?}; use cpu or cuda:N"))),
        };
        let dtype = match dtype {
            "auto" if device.is_cuda() => DType::BF16,
            "auto" | "f32" | "float32" => DType::F32,
            "f16" | "float16" | "half" => DType::F16,
            "bf16" | "bfloat16" => DType::BF16,
            other => {
                return Err(bad(format!(
                    "unknown dtype {other:?}; use auto, f32, f16 or bf16"
                )))
            }
        };
        Ok(Self {
            dtype,
            quantize: None,
            device,
            chat_template: None,
        })
    }

    /// `--quantize q8_0|q4_0|q4_k` as users type it.
    pub fn with_quantize(mut self, name: Option<&str>) -> Result<Self, ModelError> {
        self.quantize = name
            .map(|n| {
                Quantization::parse(n).ok_or_else(|| {
                    ModelError::BadOption(format!(
                        "unknown quantization {n:?}; use {}",
                        Quantization::NAMES
                    ))
                })
            })
            .transpose()?;
        Ok(self)
    }

    /// Whether half-precision weights are packed for the CPU GEMM (f32 activations).
    fn cpu_half_panels(&self) -> bool {
        self.device.is_cpu()
            && matches!(self.dtype, DType::BF16 | DType::F16)
            && avx2_fma()
            && f16c()
    }

    /// The dtype of activations, norms, biases and the KV cache: f32 when the weights are
    /// quantized or packed in half precision on the CPU (the kernels widen them in
    /// registers), the weights' dtype otherwise.
    pub fn compute_dtype(&self) -> DType {
        if self.quantize.is_some() || self.cpu_half_panels() {
            DType::F32
        } else {
            self.dtype
        }
    }

    /// How a linear weight is held: quantized ones in the language model (`quantized`
    /// scope), half-precision panels on the CPU, the compute dtype otherwise.
    pub fn weight_format(&self, quantized: bool) -> WeightFormat {
        match (self.quantize, quantized) {
            (Some(q), true) => WeightFormat::Quantized(q),
            _ if self.cpu_half_panels() => match self.dtype {
                DType::BF16 => WeightFormat::Bf16,
                _ => WeightFormat::F16,
            },
            _ => WeightFormat::Native,
        }
    }

    /// What the weights are held as, for logs and run identities: `f32`, `bf16`, ... or
    /// `q4_0 (language model) + f32`.
    pub fn describe_weights(&self) -> String {
        let dtype = format!("{:?}", self.dtype).to_lowercase();
        match self.quantize {
            Some(q) => format!("{} (language model) + {dtype}", q.name()),
            None => dtype,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_and_dtypes() {
        let o = LoadOptions::parse("cpu", "auto").unwrap();
        assert!(matches!(o.device, Device::Cpu) && o.dtype == DType::F32);
        assert_eq!(
            LoadOptions::parse("cpu", "bf16").unwrap().dtype,
            DType::BF16
        );
        assert!(LoadOptions::parse("tpu", "f32")
            .unwrap_err()
            .to_string()
            .contains("unknown device"));
        assert!(LoadOptions::parse("cpu", "f8")
            .unwrap_err()
            .to_string()
            .contains("unknown dtype"));
        if !candle_core::utils::cuda_is_available() {
            assert!(LoadOptions::parse("cuda:0", "auto")
                .unwrap_err()
                .to_string()
                .contains("--features cuda"));
        }
    }
}
