//! Qwen2-VL's config.json: the text and vision configs merged with their defaults, the M-RoPE sections, and what of it this crate can run.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::decoder::DecoderConfig;
use crate::error::UnsupportedConfig;

/// `Qwen2VLConfig`, read from either shape it takes: the hub's flat v4 config (text fields
/// at the top level, `rope_scaling: {type: mrope, mrope_section}`) or transformers 5's nested
/// `text_config` with `rope_parameters`.
#[derive(Debug, Clone)]
pub struct Qwen2VlConfig {
    pub text: DecoderConfig,
    pub rope_theta: f64,
    pub mrope_section: Vec<usize>,
    pub vision: VisionConfig,
    pub image_token_id: u32,
    pub tie_word_embeddings: bool,
}

/// `Qwen2VLVisionConfig` with transformers' defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VisionConfig {
    #[serde(default = "d::depth")]
    pub depth: usize,
    #[serde(default = "d::embed_dim")]
    pub embed_dim: usize,
    /// Width of the merger's output: the text model's hidden size.
    #[serde(default = "d::hidden_size")]
    pub hidden_size: usize,
    #[serde(default = "d::quick_gelu")]
    pub hidden_act: String,
    #[serde(default = "d::mlp_ratio")]
    pub mlp_ratio: f64,
    #[serde(default = "d::num_heads")]
    pub num_heads: usize,
    #[serde(default = "d::three", alias = "in_chans")]
    pub in_channels: usize,
    #[serde(default = "d::patch_size")]
    pub patch_size: usize,
    #[serde(default = "d::two")]
    pub spatial_merge_size: usize,
    #[serde(default = "d::two")]
    pub temporal_patch_size: usize,
    #[serde(default)]
    pub rope_parameters: Option<Value>,
}

mod d {
    pub fn depth() -> usize {
        32
    }
    pub fn embed_dim() -> usize {
        1280
    }
    pub fn hidden_size() -> usize {
        3584
    }
    pub fn quick_gelu() -> String {
        "quick_gelu".into()
    }
    pub fn mlp_ratio() -> f64 {
        4.0
    }
    pub fn num_heads() -> usize {
        16
    }
    pub fn three() -> usize {
        3
    }
    pub fn patch_size() -> usize {
        14
    }
    pub fn two() -> usize {
        2
    }
}

impl VisionConfig {
    pub fn head_dim(&self) -> usize {
        self.embed_dim / self.num_heads
    }

    /// `int(embed_dim * mlp_ratio)`, as transformers sizes the MLP.
    pub fn mlp_hidden(&self) -> usize {
        (self.embed_dim as f64 * self.mlp_ratio) as usize
    }

    pub fn rope_theta(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|p| p.get("rope_theta"))
            .and_then(Value::as_f64)
            .unwrap_or(10000.0)
    }
}

/// `Qwen2VLTextConfig` defaults, for fields a config leaves out.
fn text_defaults() -> Value {
    json!({
        "vocab_size": 152064, "hidden_size": 8192, "intermediate_size": 29568,
        "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8,
        "hidden_act": "silu", "max_position_embeddings": 32768, "rms_norm_eps": 1e-5,
    })
}

impl Qwen2VlConfig {
    pub fn from_json(config: &Value) -> Result<Self, UnsupportedConfig> {
        let text_src = config.get("text_config").unwrap_or(config);
        let mut text = text_defaults();
        if let (Some(t), Some(src)) = (text.as_object_mut(), text_src.as_object()) {
            for (k, v) in src {
                t.insert(k.clone(), v.clone());
            }
        }
        // transformers 5 keeps the M-RoPE settings in text_config; hub configs at the top.
        for key in ["rope_scaling", "rope_parameters", "rope_theta"] {
            if text.get(key).is_none_or(Value::is_null) {
                if let Some(v) = config.get(key) {
                    text[key] = v.clone();
                }
            }
        }
        if text.get("use_sliding_window").and_then(Value::as_bool) == Some(true) {
            return Err(UnsupportedConfig(
                "use_sliding_window is not supported (Qwen2-VL checkpoints do not use it)".into(),
            ));
        }
        let text_config: DecoderConfig =
            serde_json::from_value(text.clone()).map_err(|e| e.to_string())?;
        text_config.validate()?;
        let rope_theta = text_config.rope(1_000_000.0)?;
        let mrope_section = [text.get("rope_parameters"), text.get("rope_scaling")]
            .into_iter()
            .flatten()
            .find_map(|p| p.get("mrope_section"))
            .map(|s| {
                serde_json::from_value::<Vec<usize>>(s.clone())
                    .map_err(|e| format!("mrope_section: {e}"))
            })
            .transpose()?
            .unwrap_or_else(|| vec![16, 24, 24]);
        let half = text_config.head_dim() / 2;
        if mrope_section.iter().sum::<usize>() != half {
            return Err(UnsupportedConfig(format!(
                "mrope_section {mrope_section:?} must add up to head_dim / 2 = {half}"
            )));
        }
        let vision: VisionConfig =
            serde_json::from_value(config.get("vision_config").cloned().unwrap_or(json!({})))
                .map_err(|e| format!("vision_config: {e}"))?;
        if vision.hidden_size != text_config.hidden_size {
            return Err(UnsupportedConfig(format!(
                "vision_config.hidden_size {} must equal the text hidden_size {}",
                vision.hidden_size, text_config.hidden_size
            )));
        }
        if vision.num_heads == 0
            || !vision.embed_dim.is_multiple_of(vision.num_heads)
            || !vision.head_dim().is_multiple_of(4)
        {
            return Err(UnsupportedConfig(format!(
                "vision embed_dim {} / num_heads {} must give a head_dim divisible by 4",
                vision.embed_dim, vision.num_heads
            )));
        }
        if !matches!(vision.hidden_act.as_str(), "quick_gelu" | "gelu") {
            return Err(UnsupportedConfig(format!(
                "vision hidden_act {:?} is not supported",
                vision.hidden_act
            )));
        }
        let tie_word_embeddings = config
            .get("tie_word_embeddings")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            || text_config.tie_word_embeddings.unwrap_or(false);
        let image_token_id = config
            .get("image_token_id")
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(151655);
        Ok(Self {
            text: text_config,
            rope_theta,
            mrope_section,
            vision,
            image_token_id,
            tie_word_embeddings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qwen2_vl_2b_instruct_hub_config() {
        // config.json of Qwen/Qwen2-VL-2B-Instruct.
        let c = Qwen2VlConfig::from_json(&json!({
            "architectures": ["Qwen2VLForConditionalGeneration"], "attention_dropout": 0.0,
            "bos_token_id": 151643, "eos_token_id": 151645, "vision_start_token_id": 151652,
            "vision_end_token_id": 151653, "vision_token_id": 151654, "image_token_id": 151655,
            "video_token_id": 151656, "hidden_act": "silu", "hidden_size": 1536,
            "initializer_range": 0.02, "intermediate_size": 8960, "max_position_embeddings": 32768,
            "max_window_layers": 28, "model_type": "qwen2_vl", "num_attention_heads": 12,
            "num_hidden_layers": 28, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
            "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true,
            "torch_dtype": "bfloat16", "transformers_version": "4.41.2", "use_cache": true,
            "use_sliding_window": false,
            "vision_config": {"depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16,
              "in_chans": 3, "hidden_size": 1536, "patch_size": 14, "spatial_merge_size": 2,
              "spatial_patch_size": 14, "temporal_patch_size": 2},
            "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}, "vocab_size": 151936
        }))
        .unwrap();
        assert_eq!(
            (c.text.hidden_size, c.text.num_kv_heads(), c.text.head_dim()),
            (1536, 2, 128)
        );
        assert_eq!(
            (c.rope_theta, c.mrope_section.clone()),
            (1e6, vec![16, 24, 24])
        );
        assert_eq!(
            (
                c.vision.mlp_hidden(),
                c.vision.head_dim(),
                c.vision.in_channels
            ),
            (5120, 80, 3)
        );
        assert!(c.tie_word_embeddings);
        assert_eq!(c.image_token_id, 151655);
    }

    #[test]
    fn rejects_inconsistent_settings() {
        let base = json!({"text_config": {"hidden_size": 64, "num_attention_heads": 4,
            "num_key_value_heads": 2, "rope_parameters": {"rope_type": "default", "mrope_section": [2, 3, 3]}},
            "vision_config": {"hidden_size": 64, "embed_dim": 32, "num_heads": 4}});
        assert!(Qwen2VlConfig::from_json(&base).is_ok());
        let mut bad = base.clone();
        bad["text_config"]["rope_parameters"]["mrope_section"] = json!([2, 2, 2]);
        assert!(Qwen2VlConfig::from_json(&bad)
            .unwrap_err()
            .to_string()
            .contains("add up"));
        let mut bad = base.clone();
        bad["vision_config"]["hidden_size"] = json!(32);
        assert!(Qwen2VlConfig::from_json(&bad)
            .unwrap_err()
            .to_string()
            .contains("hidden_size"));
        let mut bad = base;
        bad["text_config"]["use_sliding_window"] = json!(true);
        assert!(Qwen2VlConfig::from_json(&bad)
            .unwrap_err()
            .to_string()
            .contains("sliding"));
    }
}
