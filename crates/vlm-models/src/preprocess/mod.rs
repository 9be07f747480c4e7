//! Image preprocessing that reproduces transformers' Pillow-based processors exactly.

mod clip;
mod decode;
mod pil_resize;

pub use clip::{ClipImageProcessor, PixelValues};
pub use decode::{decode_rgb, DecodeError, DEFAULT_MAX_PIXELS};
pub use pil_resize::{resize_bicubic, resize_bicubic_window, Image8, Window};
