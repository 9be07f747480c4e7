//! Image preprocessing that reproduces transformers' Pillow-based processors exactly.

mod clip;
mod decode;
mod error;
mod normalize;
mod pil_resize;
mod qwen2_vl;

pub use clip::{ClipImageProcessor, PixelValues};
pub use decode::{decode_rgb, rgb_from_pixels, DecodeError, DEFAULT_MAX_PIXELS};
pub use error::PreprocessError;
pub use normalize::Normalization;
pub use pil_resize::{resize_bicubic, resize_bicubic_window, Image8, Window};
pub use qwen2_vl::{smart_resize, PatchValues, PixelBudget, Qwen2VlImageProcessor};
