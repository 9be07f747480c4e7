//! `CLIPImageProcessor` (the Pillow backend): resize the shortest edge, center crop,
//! rescale, normalize.

use serde::Deserialize;

use super::error::PreprocessError;
use super::normalize::Normalization;
use super::pil_resize::{resize_bicubic, resize_bicubic_window, Image8, Window};

/// `[3, height, width]` float pixels, channel-major, as the vision tower takes them.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelValues {
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
enum SizeSpec {
    Square(usize),
    Shortest { shortest_edge: usize },
    Exact { height: usize, width: usize },
}

/// The settings of a `CLIPImageProcessor`, with its defaults for absent keys.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ClipImageProcessor {
    #[serde(default = "d::yes")]
    do_resize: bool,
    #[serde(default = "d::size")]
    size: SizeSpec,
    #[serde(default = "d::bicubic")]
    resample: u32,
    #[serde(default = "d::yes")]
    do_center_crop: bool,
    #[serde(default = "d::size")]
    crop_size: SizeSpec,
    #[serde(flatten)]
    normalization: Normalization,
}

mod d {
    use super::SizeSpec;
    pub fn yes() -> bool {
        true
    }
    pub fn size() -> SizeSpec {
        SizeSpec::Shortest { shortest_edge: 224 }
    }
    pub fn bicubic() -> u32 {
        3
    }
}

impl ClipImageProcessor {
    pub fn from_json(value: &serde_json::Value) -> Result<Self, PreprocessError> {
        let p: Self = serde_json::from_value(value.clone())
            .map_err(|e| PreprocessError::Config(e.to_string()))?;
        if p.resample != 3 {
            return Err(PreprocessError::Config(format!(
                "resample {} is not supported; LLaVA checkpoints use 3 (bicubic)",
                p.resample
            )));
        }
        if p.do_resize
            && matches!(
                p.size,
                SizeSpec::Square(0) | SizeSpec::Shortest { shortest_edge: 0 }
            )
        {
            return Err(PreprocessError::Config("size must be positive".into()));
        }
        if p.do_center_crop {
            let (h, w) = p.crop_hw();
            if h == 0 || w == 0 {
                return Err(PreprocessError::Config("crop_size must be positive".into()));
            }
        }
        Ok(p)
    }

    fn crop_hw(&self) -> (usize, usize) {
        match self.crop_size {
            SizeSpec::Square(s) | SizeSpec::Shortest { shortest_edge: s } => (s, s),
            SizeSpec::Exact { height, width } => (height, width),
        }
    }

    /// Output (height, width) of the resize step, as `get_resize_output_image_size` computes it.
    fn resized_hw(&self, height: usize, width: usize) -> (usize, usize) {
        match self.size {
            SizeSpec::Exact { height, width } => (height, width),
            SizeSpec::Square(s) => (s, s),
            SizeSpec::Shortest { shortest_edge } => {
                let (short, long) = if width <= height {
                    (width, height)
                } else {
                    (height, width)
                };
                // Python: int(size * long / short), a correctly rounded double then truncated.
                let new_long = ((shortest_edge * long) as f64 / short as f64) as usize;
                if width <= height {
                    (new_long, shortest_edge)
                } else {
                    (shortest_edge, new_long)
                }
            }
        }
    }

    /// The 8-bit image after resize and center crop, before any float arithmetic. When a crop
    /// follows the resize, only the part of the resized image the crop keeps is computed.
    pub fn resize_and_crop(&self, image: &Image8) -> Image8 {
        if !self.do_resize {
            return if self.do_center_crop {
                let (h, w) = self.crop_hw();
                center_crop(image, h, w)
            } else {
                image.clone()
            };
        }
        let (h, w) = self.resized_hw(image.height, image.width);
        let (h, w) = (h.max(1), w.max(1));
        if !self.do_center_crop {
            return resize_bicubic(image, w, h);
        }
        let (crop_h, crop_w) = self.crop_hw();
        if crop_h <= h && crop_w <= w {
            let window = Window {
                x: (w - crop_w) / 2,
                y: (h - crop_h) / 2,
                width: crop_w,
                height: crop_h,
            };
            resize_bicubic_window(image, w, h, window)
        } else {
            center_crop(&resize_bicubic(image, w, h), crop_h, crop_w)
        }
    }

    /// Rescale and normalize, bit-identical to transformers.
    pub fn normalize(&self, image: &Image8) -> PixelValues {
        PixelValues {
            height: image.height,
            width: image.width,
            data: self.normalization.apply(image),
        }
    }

    pub fn process(&self, image: &Image8) -> PixelValues {
        self.normalize(&self.resize_and_crop(image))
    }

    /// The (height, width) every processed image has, when that is fixed.
    pub fn output_hw(&self) -> Option<(usize, usize)> {
        if self.do_center_crop {
            return Some(self.crop_hw());
        }
        match self.size {
            SizeSpec::Exact { height, width } if self.do_resize => Some((height, width)),
            SizeSpec::Square(s) if self.do_resize => Some((s, s)),
            _ => None,
        }
    }
}

/// transformers' `center_crop`: take the middle, zero-padding first where the image is smaller.
fn center_crop(img: &Image8, crop_h: usize, crop_w: usize) -> Image8 {
    let (h, w, ch) = (img.height as i64, img.width as i64, img.channels);
    let (ch_, cw_) = (crop_h as i64, crop_w as i64);
    // Python floor division on possibly negative numbers.
    let top = (h - ch_).div_euclid(2);
    let left = (w - cw_).div_euclid(2);
    let mut out = vec![0u8; crop_h * crop_w * ch];
    if top >= 0 && left >= 0 {
        for y in 0..crop_h {
            let src = ((top as usize + y) * img.width + left as usize) * ch;
            out[y * crop_w * ch..(y + 1) * crop_w * ch]
                .copy_from_slice(&img.data[src..src + crop_w * ch]);
        }
        return Image8::new(crop_w, crop_h, ch, out);
    }
    // Pad to at least the crop size, centred (ceil), then crop from the padded image.
    let new_h = ch_.max(h);
    let new_w = cw_.max(w);
    let top_pad = (new_h - h + 1) / 2;
    let left_pad = (new_w - w + 1) / 2;
    let (top, left) = (top + top_pad, left + left_pad);
    for y in 0..crop_h as i64 {
        for x in 0..crop_w as i64 {
            // Source pixel in the padded image, then in the original.
            let (py, px) = (top.max(0) + y, left.max(0) + x);
            let (sy, sx) = (py - top_pad, px - left_pad);
            if (0..h).contains(&sy) && (0..w).contains(&sx) {
                let src = (sy as usize * img.width + sx as usize) * ch;
                let dst = (y as usize * crop_w + x as usize) * ch;
                out[dst..dst + ch].copy_from_slice(&img.data[src..src + ch]);
            }
        }
    }
    Image8::new(crop_w, crop_h, ch, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub_llava() -> ClipImageProcessor {
        ClipImageProcessor::from_json(&serde_json::json!({
            "crop_size": {"height": 336, "width": 336}, "do_center_crop": true,
            "do_convert_rgb": true, "do_normalize": true, "do_rescale": true, "do_resize": true,
            "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "CLIPImageProcessor",
            "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3,
            "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 336}
        }))
        .unwrap()
    }

    #[test]
    fn resize_sizes_follow_python_rounding() {
        let p = hub_llava();
        assert_eq!(p.resized_hw(100, 60), (560, 336));
        assert_eq!(p.resized_hw(9, 700), (336, 26133));
        assert_eq!(p.resized_hw(1, 1), (336, 336));
        assert_eq!(p.output_hw(), Some((336, 336)));
    }

    #[test]
    fn crop_pads_small_images_with_zeros() {
        let img = Image8::new(2, 1, 1, vec![7, 9]);
        let out = center_crop(&img, 3, 4);
        // Padded to 3x4 with the image at row ceil(2/2)=1, column ceil(2/2)=1.
        assert_eq!(out.data, vec![0, 0, 0, 0, 0, 7, 9, 0, 0, 0, 0, 0]);
        let img = Image8::new(5, 3, 1, (0..15).collect());
        assert_eq!(center_crop(&img, 1, 3).data, vec![6, 7, 8]);
    }

    #[test]
    fn extreme_aspect_ratio_only_computes_the_crop() {
        // Resized in full this would be 6,720,000 x 336 pixels (6.8 GB).
        let img = Image8::new(20_000, 1, 3, (0..60_000).map(|i| (i % 256) as u8).collect());
        let out = hub_llava().process(&img);
        assert_eq!(
            (out.height, out.width, out.data.len()),
            (336, 336, 3 * 336 * 336)
        );
    }

    #[test]
    fn rejects_other_resampling() {
        let err = ClipImageProcessor::from_json(&serde_json::json!({"resample": 2})).unwrap_err();
        assert!(err.to_string().contains("resample 2"));
    }
}
