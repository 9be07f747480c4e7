//! The text decoder's config (Llama / Qwen2 fields as transformers names them) and its validation.

use serde::Deserialize;
use serde_json::Value;

use crate::error::UnsupportedConfig;

/// Which decoder family's conventions apply where configs leave them implicit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Llama: `attention_bias` puts biases on q, k, v and o, or on none.
    Llama,
    /// Qwen2: biases on q, k and v, never on o.
    Qwen2,
}

/// The text decoder's shape, read from a config's `text_config` (or the top level for Qwen2-VL
/// hub configs). Absent fields take transformers' `LlamaConfig` defaults, because hub configs
/// such as llava-hf/llava-1.5-7b-hf's list only the values that differ from them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DecoderConfig {
    #[serde(default = "d::vocab_size")]
    pub vocab_size: usize,
    #[serde(default = "d::hidden_size")]
    pub hidden_size: usize,
    #[serde(default = "d::intermediate_size")]
    pub intermediate_size: usize,
    #[serde(default = "d::num_hidden_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "d::num_attention_heads")]
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "d::rms_norm_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_parameters: Option<Value>,
    #[serde(default)]
    pub rope_scaling: Option<Value>,
    #[serde(default = "d::max_position_embeddings")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default = "d::hidden_act")]
    pub hidden_act: String,
}

mod d {
    pub fn vocab_size() -> usize {
        32000
    }
    pub fn hidden_size() -> usize {
        4096
    }
    pub fn intermediate_size() -> usize {
        11008
    }
    pub fn num_hidden_layers() -> usize {
        32
    }
    pub fn num_attention_heads() -> usize {
        32
    }
    pub fn rms_norm_eps() -> f64 {
        1e-6
    }
    pub fn max_position_embeddings() -> usize {
        2048
    }
    pub fn hidden_act() -> String {
        "silu".into()
    }
}

impl DecoderConfig {
    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// RoPE base and type: transformers 5 writes `rope_parameters`, older configs
    /// `rope_theta` and `rope_scaling`.
    pub fn rope(&self, default_theta: f64) -> Result<f64, UnsupportedConfig> {
        let declared = [self.rope_parameters.as_ref(), self.rope_scaling.as_ref()];
        for params in declared.into_iter().flatten() {
            let kind = params
                .get("rope_type")
                .or_else(|| params.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("default");
            // Qwen2-VL's M-RoPE is declared as type "mrope" / "default" plus `mrope_section`.
            if !matches!(kind, "default" | "mrope") {
                return Err(UnsupportedConfig(format!(
                    "rope type {kind:?} is not supported (only the default rotary embedding is)"
                )));
            }
        }
        Ok(declared
            .into_iter()
            .flatten()
            .find_map(|p| p.get("rope_theta").and_then(Value::as_f64))
            .or(self.rope_theta)
            .unwrap_or(default_theta))
    }

    pub fn validate(&self) -> Result<(), UnsupportedConfig> {
        if self.hidden_act != "silu" {
            return Err(UnsupportedConfig(format!(
                "text hidden_act {:?} is not supported (silu is)",
                self.hidden_act
            )));
        }
        if self.num_attention_heads == 0 || self.num_kv_heads() == 0 {
            return Err(UnsupportedConfig("attention heads must be positive".into()));
        }
        if !self.num_attention_heads.is_multiple_of(self.num_kv_heads()) {
            return Err(UnsupportedConfig(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads,
                self.num_kv_heads()
            )));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(UnsupportedConfig(format!(
                "head_dim {} must be even for rotary embeddings",
                self.head_dim()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llava_15_7b_hub_text_config_gets_llama_defaults() {
        // text_config of llava-hf/llava-1.5-7b-hf: only what differs from LlamaConfig.
        let c: DecoderConfig = serde_json::from_str(
            r#"{"architectures": ["LlamaForCausalLM"], "max_position_embeddings": 4096,
                "model_type": "llama", "rms_norm_eps": 1e-05, "torch_dtype": "float16",
                "vocab_size": 32064}"#,
        )
        .unwrap();
        assert_eq!(
            (c.hidden_size, c.intermediate_size, c.num_hidden_layers),
            (4096, 11008, 32)
        );
        assert_eq!(
            (c.num_kv_heads(), c.head_dim(), c.vocab_size),
            (32, 128, 32064)
        );
        assert_eq!(c.rope(10000.0), Ok(10000.0));
        assert_eq!(c.rms_norm_eps, 1e-5);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn rope_parameters_and_unsupported_scaling() {
        let c: DecoderConfig = serde_json::from_str(
            r#"{"rope_parameters": {"rope_type": "default", "rope_theta": 5000.0}}"#,
        )
        .unwrap();
        assert_eq!(c.rope(10000.0), Ok(5000.0));
        let c: DecoderConfig =
            serde_json::from_str(r#"{"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}"#)
                .unwrap();
        assert!(c.rope(10000.0).unwrap_err().to_string().contains("llama3"));
        let c: DecoderConfig =
            serde_json::from_str(r#"{"num_attention_heads": 6, "num_key_value_heads": 4}"#)
                .unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("multiple"));
    }
}
