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
    resize_bicubic_window(src, width, height, Window::full(width, height))
}

/// A rectangle of a resized image: `x..x + width`, `y..y + height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

impl Window {
    pub fn full(width: usize, height: usize) -> Self {
        Self {
            x: 0,
            y: 0,
            width,
            height,
        }
    }
}

/// The `window` of `resize_bicubic(src, width, height)`, computed without the rest. Each
/// output pixel depends only on its own filter taps, so this is bit-identical to resizing
/// and then cropping, at the cost of the window alone: a 1 x 10000 image resized to a
/// 336-pixel short edge is 3.4 gigapixels wide, of which a center crop keeps 336.
pub fn resize_bicubic_window(src: &Image8, width: usize, height: usize, window: Window) -> Image8 {
    assert!(width > 0 && height > 0, "resize target must be non-empty");
    assert!(
        window.x + window.width <= width && window.y + window.height <= height,
        "window inside the resized image"
    );
    let columns = window.x..window.x + window.width;
    let rows = window.y..window.y + window.height;
    let horizontal = |img: &Image8| {
        if width == src.width {
            crop(img, window.x, 0, window.width, img.height)
        } else {
            resample_horizontal(img, &AxisCoeffs::new(src.width, width), columns.clone())
        }
    };
    let vertical = |img: &Image8| {
        if height == src.height {
            crop(img, 0, window.y, img.width, window.height)
        } else {
            resample_vertical(img, &AxisCoeffs::new(src.height, height), rows.clone())
        }
    };
    // Pillow 13 runs the vertical pass first when the height shrinks by more than twice as
    // many pixels as the width does (earlier Pillows always went horizontal first). The
    // order changes the intermediate 8-bit rounding, so it must be the same.
    let (shrink_h, shrink_w) = (
        src.height as i64 - height as i64,
        src.width as i64 - width as i64,
    );
    if shrink_h > 0 && shrink_h > shrink_w * 2 {
        horizontal(&vertical(src))
    } else {
        vertical(&horizontal(src))
    }
}

/// Output columns `columns` of a horizontal pass, for every row.
fn resample_horizontal(
    img: &Image8,
    coeffs: &AxisCoeffs,
    columns: std::ops::Range<usize>,
) -> Image8 {
    let ch = img.channels;
    let out_w = columns.len();
    let mut out = vec![0u8; out_w * img.height * ch];
    for y in 0..img.height {
        let row = &img.data[y * img.width * ch..][..img.width * ch];
        for (ox, xx) in columns.clone().enumerate() {
            let (start, weights) = coeffs.taps(xx);
            for c in 0..ch {
                let mut acc: i64 = 1 << (PRECISION_BITS - 1);
                for (i, w) in weights.iter().enumerate() {
                    acc += i64::from(row[(start + i) * ch + c]) * i64::from(*w);
                }
                out[(y * out_w + ox) * ch + c] = clamp8(acc);
            }
        }
    }
    Image8::new(out_w, img.height, ch, out)
}

/// Output rows `rows` of a vertical pass, for every column.
fn resample_vertical(img: &Image8, coeffs: &AxisCoeffs, rows: std::ops::Range<usize>) -> Image8 {
    let stride = img.width * img.channels;
    let out_h = rows.len();
    let mut out = vec![0u8; stride * out_h];
    for (oy, yy) in rows.enumerate() {
        let (start, weights) = coeffs.taps(yy);
        for x in 0..stride {
            let mut acc: i64 = 1 << (PRECISION_BITS - 1);
            for (i, w) in weights.iter().enumerate() {
                acc += i64::from(img.data[(start + i) * stride + x]) * i64::from(*w);
            }
            out[oy * stride + x] = clamp8(acc);
        }
    }
    Image8::new(img.width, out_h, img.channels, out)
}

fn crop(img: &Image8, x: usize, y: usize, width: usize, height: usize) -> Image8 {
    if (x, y, width, height) == (0, 0, img.width, img.height) {
        return img.clone();
    }
    let ch = img.channels;
    let mut data = Vec::with_capacity(width * height * ch);
    for row in y..y + height {
        let start = (row * img.width + x) * ch;
        data.extend_from_slice(&img.data[start..start + width * ch]);
    }
    Image8::new(width, height, ch, data)
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
    fn window_equals_resize_then_crop() {
        let data: Vec<u8> = (0..13 * 7 * 3).map(|i| ((i * 37) % 251) as u8).collect();
        let img = Image8::new(13, 7, 3, data);
        // Both pass orders: (5, 3) and (29, 2) shrink the height by more than twice the width.
        for (w, h) in [(40, 21), (5, 3), (13, 30), (29, 2)] {
            let full = resize_bicubic(&img, w, h);
            let window = Window {
                x: w / 3,
                y: h / 4,
                width: w / 2,
                height: h / 2,
            };
            let part = resize_bicubic_window(&img, w, h, window);
            assert_eq!(
                part,
                crop(&full, window.x, window.y, window.width, window.height),
                "{w}x{h}"
            );
        }
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
