//! The activations the vision towers and projectors use, by their transformers names.

use candle_core::Tensor;

/// The activations the vision towers and projectors use, by their transformers names.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Activation {
    QuickGelu,
    Gelu,
}

impl Activation {
    pub(crate) fn parse(name: &str) -> Self {
        if name == "quick_gelu" {
            Self::QuickGelu
        } else {
            Self::Gelu
        }
    }

    pub(crate) fn forward(self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::QuickGelu => xs * candle_nn::ops::sigmoid(&(xs * 1.702)?)?,
            // PyTorch's nn.GELU() default: the exact erf form.
            Self::Gelu => xs.gelu_erf(),
        }
    }
}
