//! Bicubic resizing bit-identical to Pillow's `Image.resize(..., BICUBIC)` on 8-bit images.
//!
//! The published LLaVA-1.5 and Qwen2-VL processors resize with Pillow, and the models were
//! trained on its output. Pillow's resampler is a separable two-pass filter (horizontal,
//! then vertical) with the kernel widened by the downscale factor, weights in 22-bit fixed
//! point, and each pass rounded and clamped to 8 bits. Any float resizer differs from it by a
//! grey level here and there, so this reproduces that arithmetic exactly.

/// Fractional bits of the fixed-point weights (Pillow's `PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;
const BICUBIC_SUPPORT: f64 = 2.0;

/// An 8-bit image with interleaved channels, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image8 {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

impl Image8 {
    pub fn new(width: usize, height: usize, channels: usize, data: Vec<u8>) -> Self {
        assert_eq!(data.len(), width * height * channels, "image buffer size");
        Self {
            width,
            height,
            channels,
            data,
        }
    }

    pub fn pixel(&self, x: usize, y: usize) -> &[u8] {
        let start = (y * self.width + x) * self.channels;
        &self.data[start..start + self.channels]
    }
}

/// Pillow's bicubic kernel (Keys, a = -0.5).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per-output-pixel source window and fixed-point weights along one axis.
struct AxisCoeffs {
    ksize: usize,
    /// (first source index, number of taps) per output pixel.
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

impl AxisCoeffs {
    fn new(in_size: usize, out_size: usize) -> Self {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = BICUBIC_SUPPORT * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut bounds = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * ksize];
        let mut taps = vec![0f64; ksize];
        for xx in 0..out_size {
            let center = (xx as f64 + 0.5) * scale;
            let inv = 1.0 / filterscale;
            // C's (int) cast truncates toward zero; both values are > -1 here.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let count = xmax - xmin;
            let mut total = 0.0;
            for (x, tap) in taps.iter_mut().enumerate().take(count) {
                let w = bicubic((x as f64 + xmin as f64 - center + 0.5) * inv);
                *tap = w;
                total += w;
            }
            let row = &mut weights[xx * ksize..(xx + 1) * ksize];
            for (x, w) in row.iter_mut().enumerate().take(count) {
                let normalized = if total != 0.0 {
                    taps[x] / total
                } else {
                    taps[x]
                };
                let scaled = normalized * f64::from(1u32 << PRECISION_BITS);
                *w = if scaled < 0.0 {
                    (scaled - 0.5) as i32
                } else {
                    (scaled + 0.5) as i32
                };
            }
            bounds.push((xmin, count));
        }
        Self {
            ksize,
            bounds,
            weights,
        }
    }

    fn taps(&self, out: usize) -> (usize, &[i32]) {
        let (start, count) = self.bounds[out];
        (
            start,
            &self.weights[out * self.ksize..out * self.ksize + count],
        )
    }
}

fn clamp8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes to `width` x `height` as `PIL.Image.resize((width, height), Image.BICUBIC)` does
/// (no `reducing_gap`).
pub fn resize_bicubic(src: &Image8, width: usize, height: usize) -> Image8 {
    assert!(width > 0 && height > 0, "resize target must be non-empty");
    let channels = src.channels;
    let mut current = src.clone();
    if width != src.width {
        let coeffs = AxisCoeffs::new(src.width, width);
        let mut out = vec![0u8; width * current.height * channels];
        for y in 0..current.height {
            let row = &current.data[y * current.width * channels..][..current.width * channels];
            for xx in 0..width {
                let (start, weights) = coeffs.taps(xx);
                for c in 0..channels {
                    let mut acc: i64 = 1 << (PRECISION_BITS - 1);
                    for (i, w) in weights.iter().enumerate() {
                        acc += i64::from(row[(start + i) * channels + c]) * i64::from(*w);
                    }
                    out[(y * width + xx) * channels + c] = clamp8(acc);
                }
            }
        }
        current = Image8::new(width, current.height, channels, out);
    }
    if height != src.height {
        let coeffs = AxisCoeffs::new(src.height, height);
        let stride = current.width * channels;
        let mut out = vec![0u8; stride * height];
        for yy in 0..height {
            let (start, weights) = coeffs.taps(yy);
            for x in 0..stride {
                let mut acc: i64 = 1 << (PRECISION_BITS - 1);
                for (i, w) in weights.iter().enumerate() {
                    acc += i64::from(current.data[(start + i) * stride + x]) * i64::from(*w);
                }
                out[yy * stride + x] = clamp8(acc);
            }
        }
        current = Image8::new(current.width, height, channels, out);
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_identity() {
        let img = Image8::new(3, 2, 1, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(resize_bicubic(&img, 3, 2), img);
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = Image8::new(7, 5, 3, vec![200; 7 * 5 * 3]);
        for (w, h) in [(1, 1), (3, 2), (20, 13), (336, 336)] {
            let out = resize_bicubic(&img, w, h);
            assert!(out.data.iter().all(|&v| v == 200), "{w}x{h}");
        }
    }

    #[test]
    fn one_pixel_upscales_to_its_value() {
        let img = Image8::new(1, 1, 3, vec![10, 20, 30]);
        let out = resize_bicubic(&img, 4, 4);
        assert_eq!(out.pixel(3, 3), &[10, 20, 30]);
    }

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(10, 3), (3, 10), (336, 336), (1000, 7)] {
            let c = AxisCoeffs::new(i, o);
            for xx in 0..o {
                let sum: i64 = c.taps(xx).1.iter().map(|&w| i64::from(w)).sum();
                assert!(
                    (sum - (1 << PRECISION_BITS)).abs() <= c.ksize as i64,
                    "{i}->{o}"
                );
            }
        }
    }
}
