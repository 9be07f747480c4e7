//! The building blocks every network here is made of: linear layers in every weight format
//! (calling `vlm-kernels` where a packed kernel applies) and the activations.

mod activation;
mod format;
mod linear;

pub(crate) use activation::Activation;
pub use format::{Quantization, WeightFormat};
pub use linear::Linear;
