//! The float half of every transformers image processor: rescale, then normalize, in the
//! precision transformers uses (`uint8 -> float64 * factor -> float32`, then
//! `(x - mean) / std` in float32), so results match to the bit.

use serde::Deserialize;

use super::pil_resize::Image8;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
enum PerChannel {
    One(f64),
    Three([f64; 3]),
}

impl PerChannel {
    fn values(&self) -> [f32; 3] {
        match self {
            PerChannel::One(v) => [*v as f32; 3],
            PerChannel::Three(v) => v.map(|x| x as f32),
        }
    }
}

/// `do_rescale`, `rescale_factor`, `do_normalize`, `image_mean`, `image_std` of a processor
/// config, with transformers' defaults (CLIP's mean and std, 1/255).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Normalization {
    #[serde(default = "d::yes")]
    do_rescale: bool,
    #[serde(default = "d::rescale_factor")]
    rescale_factor: f64,
    #[serde(default = "d::yes")]
    do_normalize: bool,
    #[serde(default = "d::mean")]
    image_mean: PerChannel,
    #[serde(default = "d::std")]
    image_std: PerChannel,
}

mod d {
    use super::PerChannel;
    pub fn yes() -> bool {
        true
    }
    pub fn rescale_factor() -> f64 {
        1.0 / 255.0
    }
    pub fn mean() -> PerChannel {
        PerChannel::Three([0.48145466, 0.4578275, 0.40821073])
    }
    pub fn std() -> PerChannel {
        PerChannel::Three([0.26862954, 0.26130258, 0.27577711])
    }
}

impl Normalization {
    /// One 8-bit value of channel `c` as the processor's float output.
    fn value(&self, v: u8, mean: f32, std: f32) -> f32 {
        let mut x = if self.do_rescale {
            (f64::from(v) * self.rescale_factor) as f32
        } else {
            f32::from(v)
        };
        if self.do_normalize {
            x = (x - mean) / std;
        }
        x
    }

    /// The image as channel-major floats, `[channels, height, width]`.
    pub fn apply(&self, image: &Image8) -> Vec<f32> {
        let (mean, std) = (self.image_mean.values(), self.image_std.values());
        let plane = image.width * image.height;
        let mut out = vec![0f32; plane * image.channels];
        for (i, px) in image.data.chunks_exact(image.channels).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                out[c * plane + i] = self.value(v, mean[c % 3], std[c % 3]);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_clip_and_scalar_mean_broadcasts() {
        let n: Normalization = serde_json::from_str("{}").unwrap();
        let img = Image8::new(1, 1, 3, vec![0, 255, 128]);
        let out = n.apply(&img);
        assert_eq!(out[0], (0.0 - 0.48145466f32) / 0.26862954f32);
        let n: Normalization =
            serde_json::from_str(r#"{"image_mean": 0.5, "image_std": 0.5}"#).unwrap();
        assert_eq!(n.apply(&img)[1], 1.0);
        let n: Normalization =
            serde_json::from_str(r#"{"do_rescale": false, "do_normalize": false}"#).unwrap();
        assert_eq!(n.apply(&img), vec![0.0, 255.0, 128.0]);
    }
}
