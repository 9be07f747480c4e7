//! `Qwen2VLImageProcessor` (the Pillow backend): `smart_resize` to multiples of
//! patch x merge within [min_pixels, max_pixels], rescale, normalize, then flatten into
//! patches in the order the vision tower reads them, each still image repeated over the
//! temporal patch.

use serde::Deserialize;

use super::error::PreprocessError;
use super::normalize::Normalization;
use super::pil_resize::{resize_bicubic, Image8};

/// Per-request overrides of the pixel budget, as vLLM's `mm_processor_kwargs` carry them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PixelBudget {
    pub min_pixels: Option<u64>,
    pub max_pixels: Option<u64>,
}

/// Flattened patches of one image: `[grid_t * grid_h * grid_w, channels * temporal * patch * patch]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchValues {
    pub grid_thw: [usize; 3],
    pub patch_dim: usize,
    pub data: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct SizeSpec {
    shortest_edge: Option<u64>,
    longest_edge: Option<u64>,
}

/// The settings of a `Qwen2VLImageProcessor`, in either spelling: the hub's top-level
/// `min_pixels` / `max_pixels`, or transformers 5's `size.shortest_edge` / `size.longest_edge`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Qwen2VlImageProcessor {
    #[serde(default = "d::yes")]
    do_resize: bool,
    #[serde(default)]
    min_pixels: Option<u64>,
    #[serde(default)]
    max_pixels: Option<u64>,
    #[serde(default)]
    size: Option<SizeSpec>,
    #[serde(default = "d::bicubic")]
    resample: u32,
    #[serde(default = "d::patch_size")]
    pub patch_size: usize,
    #[serde(default = "d::temporal_patch_size")]
    pub temporal_patch_size: usize,
    #[serde(default = "d::merge_size")]
    pub merge_size: usize,
    #[serde(flatten)]
    normalization: Normalization,
}

mod d {
    pub fn yes() -> bool {
        true
    }
    pub fn bicubic() -> u32 {
        3
    }
    pub fn patch_size() -> usize {
        14
    }
    pub fn temporal_patch_size() -> usize {
        2
    }
    pub fn merge_size() -> usize {
        2
    }
}

const DEFAULT_MIN_PIXELS: u64 = 56 * 56;
const DEFAULT_MAX_PIXELS: u64 = 28 * 28 * 1280;

/// transformers' `smart_resize`, with Python's float arithmetic and rounding: `round` is
/// round-half-to-even, `floor`/`ceil` act on the same double expressions.
pub fn smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: u64,
    max_pixels: u64,
) -> Result<(usize, usize), PreprocessError> {
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    let ratio = h.max(w) / h.min(w);
    if ratio > 200.0 {
        return Err(PreprocessError::Image(format!(
            "absolute aspect ratio must be smaller than 200, got {ratio}"
        )));
    }
    let mut h_bar = (h / f).round_ties_even() * f;
    let mut w_bar = (w / f).round_ties_even() * f;
    if h_bar * w_bar > max_pixels as f64 {
        let beta = ((h * w) / max_pixels as f64).sqrt();
        h_bar = f.max((h / beta / f).floor() * f);
        w_bar = f.max((w / beta / f).floor() * f);
    } else if h_bar * w_bar < min_pixels as f64 {
        let beta = (min_pixels as f64 / (h * w)).sqrt();
        h_bar = (h * beta / f).ceil() * f;
        w_bar = (w * beta / f).ceil() * f;
    }
    Ok((h_bar as usize, w_bar as usize))
}

impl Qwen2VlImageProcessor {
    pub fn from_json(value: &serde_json::Value) -> Result<Self, PreprocessError> {
        let p: Self = serde_json::from_value(value.clone())
            .map_err(|e| PreprocessError::Config(e.to_string()))?;
        if p.resample != 3 {
            return Err(PreprocessError::Config(format!(
                "resample {} is not supported; Qwen2-VL uses 3 (bicubic)",
                p.resample
            )));
        }
        if p.patch_size == 0 || p.merge_size == 0 || p.temporal_patch_size == 0 {
            return Err(PreprocessError::Config(
                "patch_size, merge_size and temporal_patch_size must be positive".into(),
            ));
        }
        let (min, max) = p.budget(PixelBudget::default());
        if min > max {
            return Err(PreprocessError::Config(format!(
                "min_pixels {min} is above max_pixels {max}"
            )));
        }
        Ok(p)
    }

    /// (min_pixels, max_pixels) after the request's overrides.
    pub fn budget(&self, request: PixelBudget) -> (u64, u64) {
        let size = self.size.as_ref();
        let min = request
            .min_pixels
            .or(self.min_pixels)
            .or(size.and_then(|s| s.shortest_edge))
            .unwrap_or(DEFAULT_MIN_PIXELS);
        let max = request
            .max_pixels
            .or(self.max_pixels)
            .or(size.and_then(|s| s.longest_edge))
            .unwrap_or(DEFAULT_MAX_PIXELS);
        (min, max)
    }

    /// `(height, width)` an image of this size is resized to, computed without touching a
    /// pixel.
    pub fn resized_size(
        &self,
        height: usize,
        width: usize,
        request: PixelBudget,
    ) -> Result<(usize, usize), PreprocessError> {
        let (min, max) = self.budget(request);
        if min > max {
            return Err(PreprocessError::Image(format!(
                "min_pixels {min} is above max_pixels {max}"
            )));
        }
        let factor = self.patch_size * self.merge_size;
        let (h, w) = if self.do_resize {
            smart_resize(height, width, factor, min, max)?
        } else {
            (height, width)
        };
        if h % factor != 0 || w % factor != 0 || h == 0 || w == 0 {
            return Err(PreprocessError::Image(format!(
                "image size {w}x{h} is not a multiple of {factor}; enable do_resize"
            )));
        }
        Ok((h, w))
    }

    /// [`process`](Self::process), refused before any resizing when the image would
    /// become more than `max_tokens` prompt tokens (a request's `min_pixels` can ask for
    /// any size).
    pub fn process_within(
        &self,
        image: &Image8,
        request: PixelBudget,
        max_tokens: usize,
    ) -> Result<PatchValues, PreprocessError> {
        let (h, w) = self.resized_size(image.height, image.width, request)?;
        let factor = (self.patch_size * self.merge_size) as u128;
        let tokens = (h as u128 / factor) * (w as u128 / factor);
        if tokens > max_tokens as u128 {
            let (min, max) = self.budget(request);
            return Err(PreprocessError::Image(format!(
                "with min_pixels {min} and max_pixels {max} this {}x{} image would become {tokens} image tokens, more than the model's {max_tokens}-token context; lower min_pixels / max_pixels",
                image.width, image.height
            )));
        }
        self.process(image, request)
    }

    /// The 8-bit image after `smart_resize`, before any float arithmetic.
    pub fn resize(&self, image: &Image8, request: PixelBudget) -> Result<Image8, PreprocessError> {
        let (h, w) = self.resized_size(image.height, image.width, request)?;
        Ok(if (h, w) == (image.height, image.width) {
            image.clone()
        } else {
            resize_bicubic(image, w, h)
        })
    }

    /// Normalized patches in the vision tower's order: merge blocks row-major, within a
    /// block the `merge x merge` patches row-major, within a patch (channel, temporal copy,
    /// row, column).
    pub fn patchify(&self, resized: &Image8) -> PatchValues {
        let (p, m, t) = (self.patch_size, self.merge_size, self.temporal_patch_size);
        let chw = self.normalization.apply(resized);
        let channels = resized.channels;
        let (gh, gw) = (resized.height / p, resized.width / p);
        let patch_dim = channels * t * p * p;
        let mut data = Vec::with_capacity(gh * gw * patch_dim);
        let plane = resized.height * resized.width;
        for bh in 0..gh / m {
            for bw in 0..gw / m {
                for mh in 0..m {
                    for mw in 0..m {
                        let (py, px) = ((bh * m + mh) * p, (bw * m + mw) * p);
                        for c in 0..channels {
                            for _ in 0..t {
                                for y in 0..p {
                                    let row = c * plane + (py + y) * resized.width + px;
                                    data.extend_from_slice(&chw[row..row + p]);
                                }
                            }
                        }
                    }
                }
            }
        }
        PatchValues {
            grid_thw: [1, gh, gw],
            patch_dim,
            data,
        }
    }

    pub fn process(
        &self,
        image: &Image8,
        request: PixelBudget,
    ) -> Result<PatchValues, PreprocessError> {
        Ok(self.patchify(&self.resize(image, request)?))
    }

    /// Prompt tokens one image of this grid becomes (one per merge block).
    pub fn tokens_for(&self, grid_thw: [usize; 3]) -> usize {
        grid_thw.iter().product::<usize>() / (self.merge_size * self.merge_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_resize_matches_python() {
        // Values from transformers' smart_resize (Python 3.11).
        assert_eq!(smart_resize(45, 70, 28, 3136, 12845056), Ok((56, 56)));
        assert_eq!(smart_resize(9, 700, 28, 3136, 12845056), Ok((28, 504)));
        assert_eq!(smart_resize(1, 1, 28, 3136, 12845056), Ok((56, 56)));
        assert_eq!(smart_resize(390, 520, 28, 3136, 156800), Ok((336, 448)));
        // 42 / 28 = 1.5 rounds to even (2), 70 / 28 = 2.5 rounds to even (2).
        assert_eq!(smart_resize(42, 70, 28, 0, u64::MAX), Ok((56, 56)));
        assert!(smart_resize(1, 201, 28, 3136, 12845056)
            .unwrap_err()
            .to_string()
            .contains("aspect ratio"));
    }

    #[test]
    fn both_config_spellings_and_overrides() {
        let hub = Qwen2VlImageProcessor::from_json(&serde_json::json!({
            "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2,
            "merge_size": 2, "image_processor_type": "Qwen2VLImageProcessor"
        }))
        .unwrap();
        let v5 = Qwen2VlImageProcessor::from_json(&serde_json::json!({
            "size": {"shortest_edge": 3136, "longest_edge": 12845056}, "patch_size": 14, "resample": 3
        }))
        .unwrap();
        assert_eq!(hub.budget(PixelBudget::default()), (3136, 12845056));
        assert_eq!(v5.budget(PixelBudget::default()), (3136, 12845056));
        let request = PixelBudget {
            min_pixels: None,
            max_pixels: Some(200 * 28 * 28),
        };
        assert_eq!(hub.budget(request), (3136, 156800));
        let bad = PixelBudget {
            min_pixels: Some(10_000),
            max_pixels: Some(5_000),
        };
        assert!(hub
            .resize(&Image8::new(1, 1, 3, vec![0; 3]), bad)
            .unwrap_err()
            .to_string()
            .contains("above"));
    }

    #[test]
    fn patch_order_and_temporal_copy() {
        let p = Qwen2VlImageProcessor::from_json(&serde_json::json!({
            "patch_size": 1, "merge_size": 2, "temporal_patch_size": 2, "do_resize": false,
            "do_rescale": false, "do_normalize": false
        }))
        .unwrap();
        // 2x4 single-channel-per-pixel values 0..8 (replicated on 3 channels).
        let img = Image8::new(4, 2, 3, (0..8u8).flat_map(|v| [v, v, v]).collect());
        let out = p.patchify(&img);
        assert_eq!(out.grid_thw, [1, 2, 4]);
        assert_eq!(out.patch_dim, 6);
        // Merge block 0 covers columns 0-1, block 1 columns 2-3; each patch is 3 channels x 2 copies.
        let firsts: Vec<f32> = out.data.chunks(6).map(|c| c[0]).collect();
        assert_eq!(firsts, vec![0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 6.0, 7.0]);
        assert!(out.data.chunks(6).all(|c| c.iter().all(|&v| v == c[0])));
        assert_eq!(p.tokens_for(out.grid_thw), 2);
    }
}
