//! LLaVA's two-layer projector from vision features to the text hidden size.

use crate::layers::Linear;
use candle_core::Tensor;

use super::config::LlavaConfig;
use crate::error::Result;
use crate::layers::Activation;
use crate::loader::Weights;

/// Two linear layers with an activation between them: vision features -> text embeddings.
#[derive(Debug, Clone)]
pub struct Projector {
    linear_1: Linear,
    linear_2: Linear,
    activation: Activation,
}

impl Projector {
    pub fn load(w: &Weights, c: &LlavaConfig) -> Result<Self> {
        let input = c.vision_config.hidden_size * c.vision_feature_layer.as_slice().len();
        let hidden = c.text_config.hidden_size;
        let bias = c.multimodal_projector_bias;
        Ok(Self {
            linear_1: w.pp("linear_1").linear(input, hidden, bias)?,
            linear_2: w.pp("linear_2").linear(hidden, hidden, bias)?,
            activation: Activation::parse(&c.projector_hidden_act),
        })
    }

    pub fn forward(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.activation.forward(&self.linear_1.forward(features)?)?;
        self.linear_2.forward(&h)
    }
}
