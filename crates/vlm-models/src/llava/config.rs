//! LLaVA's config.json (hub and transformers 5 spellings), its defaults, and what of it this crate can run.

use serde::Deserialize;
use serde_json::Value;

use crate::decoder::DecoderConfig;
use crate::error::UnsupportedConfig;

/// `LlavaConfig` from config.json, with transformers' defaults for absent fields.
#[derive(Debug, Clone, Deserialize)]
pub struct LlavaConfig {
    #[serde(default = "default_text_config")]
    pub text_config: DecoderConfig,
    #[serde(default)]
    pub vision_config: ClipVisionConfig,
    #[serde(default, alias = "image_token_id")]
    pub image_token_index: Option<u32>,
    #[serde(default = "d::projector_hidden_act")]
    pub projector_hidden_act: String,
    #[serde(default = "d::select_strategy")]
    pub vision_feature_select_strategy: String,
    #[serde(default = "d::feature_layer")]
    pub vision_feature_layer: FeatureLayers,
    #[serde(default = "d::yes")]
    pub multimodal_projector_bias: bool,
    #[serde(default)]
    pub tie_word_embeddings: bool,
}

fn default_text_config() -> DecoderConfig {
    serde_json::from_value(Value::Object(Default::default())).expect("defaults only")
}

/// One hidden-state index or several (their features are concatenated).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum FeatureLayers {
    One(i64),
    Many(Vec<i64>),
}

impl FeatureLayers {
    pub fn as_slice(&self) -> &[i64] {
        match self {
            FeatureLayers::One(l) => std::slice::from_ref(l),
            FeatureLayers::Many(ls) => ls,
        }
    }
}

/// `CLIPVisionConfig`; defaults are transformers' (`llava` fills a missing vision_config
/// with the CLIP ViT-L/14-336 values instead, see [`Default`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ClipVisionConfig {
    #[serde(default = "d::hidden_size")]
    pub hidden_size: usize,
    #[serde(default = "d::intermediate_size")]
    pub intermediate_size: usize,
    #[serde(default = "d::num_hidden_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "d::num_attention_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "d::num_channels")]
    pub num_channels: usize,
    #[serde(default = "d::image_size")]
    pub image_size: usize,
    #[serde(default = "d::patch_size")]
    pub patch_size: usize,
    #[serde(default = "d::quick_gelu")]
    pub hidden_act: String,
    #[serde(default = "d::layer_norm_eps")]
    pub layer_norm_eps: f64,
}

impl Default for ClipVisionConfig {
    /// What `LlavaConfig` uses when config.json has no vision_config: CLIP ViT-L/14 at 336 px.
    fn default() -> Self {
        Self {
            hidden_size: 1024,
            intermediate_size: 4096,
            num_hidden_layers: 24,
            num_attention_heads: 16,
            num_channels: 3,
            image_size: 336,
            patch_size: 14,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
        }
    }
}

mod d {
    pub fn projector_hidden_act() -> String {
        "gelu".into()
    }
    pub fn select_strategy() -> String {
        "default".into()
    }
    pub fn feature_layer() -> super::FeatureLayers {
        super::FeatureLayers::One(-2)
    }
    pub fn yes() -> bool {
        true
    }
    // CLIPVisionConfig's own defaults (ViT-B/32).
    pub fn hidden_size() -> usize {
        768
    }
    pub fn intermediate_size() -> usize {
        3072
    }
    pub fn num_hidden_layers() -> usize {
        12
    }
    pub fn num_attention_heads() -> usize {
        12
    }
    pub fn num_channels() -> usize {
        3
    }
    pub fn image_size() -> usize {
        224
    }
    pub fn patch_size() -> usize {
        32
    }
    pub fn quick_gelu() -> String {
        "quick_gelu".into()
    }
    pub fn layer_norm_eps() -> f64 {
        1e-5
    }
}

impl LlavaConfig {
    /// The image token id; llava-hf checkpoints before `image_token_id` existed use 32000.
    pub fn image_token_id(&self) -> u32 {
        self.image_token_index.unwrap_or(32000)
    }

    /// transformers 5 ties the LM head to the embeddings when either the top-level or the
    /// text config asks for it.
    pub fn ties_embeddings(&self) -> bool {
        self.tie_word_embeddings || self.text_config.tie_word_embeddings.unwrap_or(false)
    }

    pub fn keeps_cls(&self) -> bool {
        self.vision_feature_select_strategy == "full"
    }

    /// Image features per image: one per patch, plus the CLS token under "full".
    pub fn tokens_per_image(&self) -> usize {
        let side = self.vision_config.image_size / self.vision_config.patch_size;
        side * side + usize::from(self.keeps_cls())
    }

    /// Hidden-state indices (0 = embeddings, i = after layer i) the features come from.
    pub fn feature_layer_indices(&self) -> Result<Vec<usize>, UnsupportedConfig> {
        let n = self.vision_config.num_hidden_layers as i64;
        self.vision_feature_layer
            .as_slice()
            .iter()
            .map(|&l| {
                let idx = if l < 0 { n + 1 + l } else { l };
                (0..=n)
                    .contains(&idx)
                    .then_some(idx as usize)
                    .ok_or_else(|| {
                        UnsupportedConfig(format!(
                            "vision_feature_layer {l} is outside the {n}-layer vision tower"
                        ))
                    })
            })
            .collect()
    }

    pub fn validate(&self) -> Result<(), UnsupportedConfig> {
        self.text_config.validate()?;
        let v = &self.vision_config;
        if !matches!(
            self.vision_feature_select_strategy.as_str(),
            "default" | "full"
        ) {
            return Err(UnsupportedConfig(format!(
                "vision_feature_select_strategy {:?} is not supported (default or full)",
                self.vision_feature_select_strategy
            )));
        }
        for act in [&self.projector_hidden_act, &v.hidden_act] {
            if !matches!(act.as_str(), "gelu" | "quick_gelu") {
                return Err(UnsupportedConfig(format!(
                    "activation {act:?} is not supported (gelu or quick_gelu)"
                )));
            }
        }
        if v.patch_size == 0
            || !v.image_size.is_multiple_of(v.patch_size)
            || !v.hidden_size.is_multiple_of(v.num_attention_heads)
        {
            return Err(UnsupportedConfig(format!(
                "vision tower shape is inconsistent (image {} patch {} hidden {} heads {})",
                v.image_size, v.patch_size, v.hidden_size, v.num_attention_heads
            )));
        }
        self.feature_layer_indices().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llava_15_7b_hub_config() {
        // config.json of llava-hf/llava-1.5-7b-hf (abridged to the fields it has).
        let c: LlavaConfig = serde_json::from_str(
            r#"{"architectures": ["LlavaForConditionalGeneration"], "ignore_index": -100,
                "image_token_index": 32000, "model_type": "llava", "pad_token_id": 32001,
                "projector_hidden_act": "gelu",
                "text_config": {"architectures": ["LlamaForCausalLM"], "max_position_embeddings": 4096,
                  "model_type": "llama", "rms_norm_eps": 1e-05, "torch_dtype": "float16", "vocab_size": 32064},
                "tie_word_embeddings": false, "torch_dtype": "float16", "transformers_version": "4.36.0.dev0",
                "vision_config": {"hidden_size": 1024, "image_size": 336, "intermediate_size": 4096,
                  "model_type": "clip_vision_model", "num_attention_heads": 16, "num_hidden_layers": 24,
                  "patch_size": 14, "projection_dim": 768, "vocab_size": 32000},
                "vision_feature_layer": -2, "vision_feature_select_strategy": "default", "vocab_size": 32064}"#,
        )
        .unwrap();
        assert!(c.validate().is_ok());
        assert_eq!(c.tokens_per_image(), 576);
        assert_eq!(c.feature_layer_indices().unwrap(), vec![23]);
        assert_eq!(c.vision_config.hidden_act, "quick_gelu");
        assert_eq!(c.text_config.hidden_size, 4096);
        assert_eq!(c.image_token_id(), 32000);
    }

    #[test]
    fn either_tie_flag_ties_the_head() {
        let tie = |json: &str| {
            serde_json::from_str::<LlavaConfig>(json)
                .unwrap()
                .ties_embeddings()
        };
        assert!(!tie(r#"{}"#));
        assert!(tie(
            r#"{"tie_word_embeddings": true, "text_config": {"tie_word_embeddings": false}}"#
        ));
        assert!(tie(r#"{"text_config": {"tie_word_embeddings": true}}"#));
    }

    #[test]
    fn feature_layers_list_and_out_of_range() {
        let c: LlavaConfig = serde_json::from_str(
            r#"{"vision_config": {"num_hidden_layers": 4}, "vision_feature_layer": [-4, -1, 0]}"#,
        )
        .unwrap();
        assert_eq!(c.feature_layer_indices().unwrap(), vec![1, 4, 0]);
        let c: LlavaConfig = serde_json::from_str(
            r#"{"vision_config": {"num_hidden_layers": 4}, "vision_feature_layer": -6}"#,
        )
        .unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("-6"));
    }
}
