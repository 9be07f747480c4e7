//! How to load a checkpoint: dtype, device, and an optional chat template override.

use candle_core::{DType, Device};

use crate::error::ModelError;

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub dtype: DType,
    pub device: Device,
    /// A chat template to use instead of the checkpoint's (`--chat-template FILE`).
    pub chat_template: Option<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            dtype: DType::F32,
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
            device,
            chat_template: None,
        })
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
