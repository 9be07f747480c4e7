//! Image decoding and RGB conversion as transformers' processors do it with Pillow.
//!
//! transformers opens images with `PIL.Image.open` (which does *not* apply EXIF orientation)
//! and converts anything that is not RGB by alpha-compositing it onto opaque white
//! (`convert_to_rgb`). Both are reproduced here: the `image` crate does not rotate by EXIF
//! unless asked, and [`over_white`] is Pillow's integer `alpha_composite`. JPEG goes through
//! libjpeg-turbo (the decoder Pillow bundles), so its pixels are Pillow's to the bit.

use image::DynamicImage;
use vlm_core::RgbPixels;

use super::pil_resize::Image8;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("image is empty (0 bytes)")]
    Empty,
    #[error("cannot decode image ({0}); send PNG, JPEG, WebP, GIF or BMP bytes")]
    Undecodable(String),
    #[error("image has no pixels ({width}x{height})")]
    NoPixels { width: u32, height: u32 },
    #[error("image is {width}x{height} and would take {bytes} bytes decoded, over the limit of {limit}; send it with 8 bits per channel or smaller")]
    TooMuchMemory {
        width: u32,
        height: u32,
        bytes: u64,
        limit: u64,
    },
    #[error("image is {width}x{height} = {pixels} pixels, over the limit of {limit}")]
    TooLarge {
        width: u32,
        height: u32,
        pixels: u64,
        limit: u64,
    },
}

/// Refuse images larger than this before decoding them: 8192 x 8192.
pub const DEFAULT_MAX_PIXELS: u64 = 1 << 26;

/// Refuse images whose decoded pixels (at their own bit depth and channels, from the
/// header) take more than this before decoding them: 256 MiB, an 8-bit RGBA 8192 x 8192.
/// A 16-bit image of the same size would take twice that, and its conversion as much again.
pub const MAX_DECODED_BYTES: u64 = 1 << 28;

/// Pixels a caller already decoded to 8-bit RGB, under the same size limit as encoded ones.
pub fn rgb_from_pixels(pixels: &RgbPixels, max_pixels: u64) -> Result<Image8, DecodeError> {
    let (width, height) = (pixels.width(), pixels.height());
    let too_big = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    let (w, h) = (too_big(width), too_big(height));
    let count = (width as u64).saturating_mul(height as u64);
    if count == 0 {
        return Err(DecodeError::NoPixels {
            width: w,
            height: h,
        });
    }
    if count > max_pixels {
        return Err(DecodeError::TooLarge {
            width: w,
            height: h,
            pixels: count,
            limit: max_pixels,
        });
    }
    Ok(Image8::new(width, height, 3, pixels.data().to_vec()))
}

/// Decodes encoded bytes into 8-bit RGB, as `convert_to_rgb(PIL.Image.open(...))` would.
pub fn decode_rgb(bytes: &[u8], max_pixels: u64) -> Result<Image8, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DecodeError::Undecodable(e.to_string()))?;
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| DecodeError::Undecodable(e.to_string()))?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels == 0 {
        return Err(DecodeError::NoPixels { width, height });
    }
    if pixels > max_pixels {
        return Err(DecodeError::TooLarge {
            width,
            height,
            pixels,
            limit: max_pixels,
        });
    }
    // The decoded size from the header, refused before anything is allocated; the decoder
    // itself is held to the same budget.
    let undecodable = |e: image::ImageError| DecodeError::Undecodable(e.to_string());
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DecodeError::Undecodable(e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(undecodable)?;
    let decoded = image::ImageDecoder::total_bytes(&decoder);
    if decoded > MAX_DECODED_BYTES {
        return Err(DecodeError::TooMuchMemory {
            width,
            height,
            bytes: decoded,
            limit: MAX_DECODED_BYTES,
        });
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        if let Some(rgb) = decode_jpeg_libjpeg(bytes)? {
            return Ok(rgb);
        }
    }
    let image = image::DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    Ok(to_rgb(image))
}

/// libjpeg-turbo's default decode (islow IDCT, fancy upsampling), as Pillow does it. `None`
/// for colour spaces libjpeg will not turn into RGB (CMYK), which fall back to the `image` crate.
fn decode_jpeg_libjpeg(bytes: &[u8]) -> Result<Option<Image8>, DecodeError> {
    // libjpeg reports corrupt data by unwinding out of the C code (mozjpeg's error manager).
    let result = std::panic::catch_unwind(|| -> Result<Option<Image8>, String> {
        let decompress = mozjpeg::Decompress::new_mem(bytes).map_err(|e| e.to_string())?;
        if matches!(
            decompress.color_space(),
            mozjpeg::ColorSpace::JCS_CMYK | mozjpeg::ColorSpace::JCS_YCCK
        ) {
            return Ok(None);
        }
        let mut rgb = decompress.rgb().map_err(|e| e.to_string())?;
        let (width, height) = (rgb.width(), rgb.height());
        let pixels: Vec<[u8; 3]> = rgb.read_scanlines().map_err(|e| e.to_string())?;
        rgb.finish().map_err(|e| e.to_string())?;
        if pixels.len() != width * height {
            return Err(format!(
                "truncated JPEG: {} of {} pixels",
                pixels.len(),
                width * height
            ));
        }
        Ok(Some(Image8::new(
            width,
            height,
            3,
            pixels.into_iter().flatten().collect(),
        )))
    });
    match result {
        Ok(Ok(image)) => Ok(image),
        Ok(Err(message)) => Err(DecodeError::Undecodable(message)),
        Err(panic) => Err(DecodeError::Undecodable(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "corrupt JPEG".into()),
        )),
    }
}

/// Pillow's `alpha_composite` of one straight-alpha pixel onto opaque white (7 extra bits
/// of precision, divisions by 255 rounded with shifts), returning the RGB part.
fn over_white(rgb: [u8; 3], alpha: u8) -> [u8; 3] {
    if alpha == 0 {
        return [255; 3];
    }
    const PRECISION_BITS: u32 = 7;
    let div255 = |v: u32| ((v >> 8) + v) >> 8;
    let a = u32::from(alpha);
    let out_a255 = a * 255 + 255 * (255 - a);
    let coef1 = a * 255 * 255 * (1 << PRECISION_BITS) / out_a255;
    let coef2 = 255 * (1 << PRECISION_BITS) - coef1;
    rgb.map(|c| {
        let t = u32::from(c) * coef1 + 255 * coef2;
        (div255(t + (0x80 << PRECISION_BITS)) >> PRECISION_BITS) as u8
    })
}

fn to_rgb(image: DynamicImage) -> Image8 {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let data = match image {
        DynamicImage::ImageRgb8(rgb) => rgb.into_raw(),
        DynamicImage::ImageLuma8(l) => l.into_raw().into_iter().flat_map(|v| [v; 3]).collect(),
        DynamicImage::ImageRgba8(rgba) => rgba
            .into_raw()
            .chunks_exact(4)
            .flat_map(|p| over_white([p[0], p[1], p[2]], p[3]))
            .collect(),
        DynamicImage::ImageLumaA8(la) => la
            .into_raw()
            .chunks_exact(2)
            .flat_map(|p| over_white([p[0]; 3], p[1]))
            .collect(),
        // 16-bit and float images: Pillow keeps the high byte of 16-bit RGB(A) samples.
        other if other.color().has_alpha() => other
            .into_rgba16()
            .into_raw()
            .chunks_exact(4)
            .flat_map(|p| {
                over_white(
                    [p[0], p[1], p[2]].map(|v| (v >> 8) as u8),
                    (p[3] >> 8) as u8,
                )
            })
            .collect(),
        other => other
            .into_rgb16()
            .into_raw()
            .into_iter()
            .map(|v| (v >> 8) as u8)
            .collect(),
    };
    Image8::new(width, height, 3, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_pixels_are_held_to_the_same_limits_as_encoded_ones() {
        let two = RgbPixels::new(2, 1, vec![1u8, 2, 3, 4, 5, 6]).unwrap();
        let image = rgb_from_pixels(&two, 2).unwrap();
        assert_eq!((image.width, image.height, image.channels), (2, 1, 3));
        assert_eq!(image.data, [1, 2, 3, 4, 5, 6]);
        assert!(matches!(
            rgb_from_pixels(&two, 1),
            Err(DecodeError::TooLarge {
                pixels: 2,
                limit: 1,
                ..
            })
        ));
        let empty = RgbPixels::new(0, 3, Vec::<u8>::new()).unwrap();
        assert!(matches!(
            rgb_from_pixels(&empty, 8),
            Err(DecodeError::NoPixels { .. })
        ));
    }

    #[test]
    fn composite_matches_pillow_corner_cases() {
        assert_eq!(over_white([10, 20, 30], 255), [10, 20, 30]);
        assert_eq!(over_white([10, 20, 30], 0), [255, 255, 255]);
        // Pillow 13.0: Image.alpha_composite(white, (0, 128, 255, 128)) -> (127, 191, 255)
        assert_eq!(over_white([0, 128, 255], 128), [127, 191, 255]);
    }

    #[test]
    fn rejects_garbage_and_empty() {
        assert!(matches!(
            decode_rgb(&[], DEFAULT_MAX_PIXELS),
            Err(DecodeError::Empty)
        ));
        assert!(matches!(
            decode_rgb(b"not an image", DEFAULT_MAX_PIXELS),
            Err(DecodeError::Undecodable(_))
        ));
    }

    #[test]
    fn corrupt_jpeg_is_an_error_not_a_crash() {
        let mut jpeg = Vec::new();
        image::RgbImage::from_pixel(16, 16, image::Rgb([10, 200, 30]))
            .write_to(
                &mut std::io::Cursor::new(&mut jpeg),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        let ok = decode_rgb(&jpeg, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!((ok.width, ok.height), (16, 16));
        for cut in [4, 40, jpeg.len() / 2] {
            // Truncated: either a clean error or (libjpeg pads short data) an image; never a panic.
            let _ = decode_rgb(&jpeg[..cut], DEFAULT_MAX_PIXELS);
        }
        let mut garbled = jpeg.clone();
        for b in garbled.iter_mut().skip(20).take(200) {
            *b = 0xFF;
        }
        let _ = decode_rgb(&garbled, DEFAULT_MAX_PIXELS);
    }

    #[test]
    fn rejects_oversized_before_decoding() {
        let mut png = Vec::new();
        image::RgbImage::new(40, 30)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let err = decode_rgb(&png, 100).unwrap_err();
        assert!(
            matches!(err, DecodeError::TooLarge { pixels: 1200, .. }),
            "{err}"
        );
        assert_eq!(decode_rgb(&png, 1200).unwrap().width, 40);
    }
}
