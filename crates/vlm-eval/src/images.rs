//! Images as lmms-eval hands them to a model: `PIL.Image.convert("RGB")` (alpha dropped,
//! not composited; palettes and grey expanded): those pixels go straight to the engine
//! in-process, and as PNG in an OpenAI-style request.

use std::io::Cursor;
use std::sync::Arc;

use vlm_core::RgbPixels;
use vlm_models::preprocess::{decode_rgb, DecodeError, DEFAULT_MAX_PIXELS};

/// Why an image could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Jpeg(#[from] DecodeError),
    #[error("decoded JPEG has the wrong size")]
    JpegSize,
    #[error("cannot decode image: {0}")]
    Decode(image::ImageError),
    #[error("cannot encode PNG: {0}")]
    EncodePng(image::ImageError),
}

/// Bytes whose decoded pixels already equal `convert("RGB")`: JPEG (decoded by
/// libjpeg-turbo either way) and 8-bit RGB PNG. Anything else is converted and re-encoded.
fn already_rgb(bytes: &[u8]) -> bool {
    let jpeg = bytes.starts_with(&[0xFF, 0xD8, 0xFF]);
    // IHDR follows the 8-byte signature: bit depth at byte 24, colour type (2 = RGB) at 25.
    let rgb_png = bytes.starts_with(b"\x89PNG\r\n\x1a\n")
        && bytes.len() > 25
        && bytes[24] == 8
        && bytes[25] == 2
        && !has_transparency_chunk(bytes);
    jpeg || rgb_png
}

/// Whether an RGB PNG carries a `tRNS` colour key before its pixel data: decoders then
/// make those pixels transparent (and our preprocessing composites them onto white),
/// while `convert("RGB")` ignores it.
fn has_transparency_chunk(png: &[u8]) -> bool {
    let mut at = 8;
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]) as usize;
        match &png[at + 4..at + 8] {
            b"tRNS" => return true,
            b"IDAT" | b"IEND" => return false,
            _ => at = at.saturating_add(12).saturating_add(len),
        }
    }
    false
}

fn decode_dropping_alpha(bytes: &[u8]) -> Result<image::RgbImage, ImageError> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        let rgb = decode_rgb(bytes, DEFAULT_MAX_PIXELS)?;
        return image::RgbImage::from_raw(rgb.width as u32, rgb.height as u32, rgb.data)
            .ok_or(ImageError::JpegSize);
    }
    let image = image::load_from_memory(bytes).map_err(ImageError::Decode)?;
    Ok(image.to_rgb8())
}

fn png(rgb: &image::RgbImage) -> Result<Arc<[u8]>, ImageError> {
    let mut out = Vec::new();
    rgb.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .map_err(ImageError::EncodePng)?;
    Ok(out.into())
}

/// The image as the model should see it (`convert("RGB")`), decoded once, for the engine
/// in this process: JPEG through libjpeg-turbo as the engine (and Pillow) decode it,
/// anything else through `image` with its alpha or colour key dropped.
pub fn rgb_pixels(bytes: &[u8]) -> Result<RgbPixels, ImageError> {
    let rgb = decode_dropping_alpha(bytes)?;
    let (width, height) = (rgb.width() as usize, rgb.height() as usize);
    RgbPixels::new(width, height, rgb.into_raw()).ok_or(ImageError::JpegSize)
}

/// The image as a PNG (lmms-eval's `data:image/png;base64,` payload), same pixels as
/// [`rgb_pixels`].
pub fn rgb_png(bytes: &Arc<[u8]>) -> Result<Arc<[u8]>, ImageError> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && already_rgb(bytes) {
        return Ok(bytes.clone());
    }
    png(&decode_dropping_alpha(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Arc<[u8]> {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/images");
        std::fs::read(dir.join(name)).unwrap().into()
    }

    fn pixels(bytes: &[u8]) -> Vec<u8> {
        decode_rgb(bytes, DEFAULT_MAX_PIXELS).unwrap().data
    }

    #[test]
    fn jpeg_to_png_keeps_the_pixels() {
        let jpeg = fixture("landscape.jpg");
        assert_eq!(rgb_pixels(&jpeg).unwrap().data(), pixels(&jpeg));
        let png = rgb_png(&jpeg).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        assert_eq!(pixels(&png), pixels(&jpeg));
    }

    #[test]
    fn a_colour_key_is_ignored_like_convert_rgb() {
        let mut rgb = image::RgbImage::new(2, 1);
        rgb.put_pixel(0, 0, image::Rgb([10, 20, 30]));
        rgb.put_pixel(1, 0, image::Rgb([200, 100, 50]));
        let mut plain = Vec::new();
        rgb.write_to(&mut Cursor::new(&mut plain), image::ImageFormat::Png)
            .unwrap();
        assert!(!has_transparency_chunk(&plain));
        // Insert `tRNS` (key 10,20,30) after IHDR (8 + 25 bytes); the CRC is not checked.
        let chunk = [
            0, 0, 0, 6, b't', b'R', b'N', b'S', 0, 10, 0, 20, 0, 30, 0, 0, 0, 0,
        ];
        let keyed: Vec<u8> = [&plain[..33], &chunk[..], &plain[33..]].concat();
        assert!(has_transparency_chunk(&keyed));
        let keyed: Arc<[u8]> = keyed.into();
        // The keyed pixel keeps its colour: the key is ignored, nothing is composited.
        assert_eq!(rgb_pixels(&keyed).unwrap().data(), rgb.as_raw().as_slice());
        assert_eq!(pixels(&rgb_png(&keyed).unwrap()), rgb.as_raw().as_slice());
    }

    #[test]
    fn alpha_is_dropped_not_composited() {
        let rgba = fixture("rgba.png");
        let converted = rgb_pixels(&rgba).unwrap();
        let expected = image::load_from_memory(&rgba).unwrap().to_rgba8();
        let got = converted.data();
        assert_eq!(got, pixels(&rgb_png(&rgba).unwrap()));
        for (i, px) in expected.pixels().enumerate() {
            assert_eq!(&got[i * 3..i * 3 + 3], &px.0[..3], "pixel {i}");
        }
        // Grey expands to three equal channels.
        let gray = rgb_png(&fixture("gray.png")).unwrap();
        let g = pixels(&gray);
        assert!(g.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    }
}
