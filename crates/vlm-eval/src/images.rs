//! Images as lmms-eval hands them to a model: `PIL.Image.convert("RGB")` (alpha dropped,
//! not composited; palettes and grey expanded): those pixels go straight to the engine
//! in-process, and as PNG in an OpenAI-style request.

use std::io::Cursor;
use std::sync::Arc;

use vlm_core::{ImageData, RgbPixels};
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
    #[error("decoded image holds the wrong number of pixels for its size")]
    PixelCount,
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

/// The image for the engine in this process, as the model should see it
/// (`convert("RGB")`), decoded once here and handed over as pixels. JPEG and plain RGB PNG,
/// which the engine's own decoder reads to these same pixels, go over as their bytes when
/// they are over the engine's size limit or do not decode, so the engine refuses them (from
/// the header, before decoding) with the same error as any request's image.
pub fn engine_image(bytes: &Arc<[u8]>) -> Result<ImageData, ImageError> {
    if already_rgb(bytes) {
        let fits = header_pixels(bytes).is_some_and(|p| p <= DEFAULT_MAX_PIXELS);
        return Ok(match fits.then(|| decode_dropping_alpha(bytes)) {
            Some(Ok(rgb)) => ImageData::Rgb(rgb_pixels(rgb)?),
            _ => ImageData::Encoded(bytes.clone()),
        });
    }
    Ok(ImageData::Rgb(rgb_pixels(decode_dropping_alpha(bytes)?)?))
}

/// Width x height from the image's header, without decoding it.
fn header_pixels(bytes: &[u8]) -> Option<u64> {
    let (w, h) = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()?;
    Some(u64::from(w) * u64::from(h))
}

fn rgb_pixels(rgb: image::RgbImage) -> Result<RgbPixels, ImageError> {
    let (width, height) = (rgb.width() as usize, rgb.height() as usize);
    RgbPixels::new(width, height, rgb.into_raw()).ok_or(ImageError::PixelCount)
}

/// The image as a PNG (lmms-eval's `data:image/png;base64,` payload), same pixels as
/// [`engine_image`].
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

    /// The pixels `engine_image` hands the engine (decoding bytes it passes on as they are).
    fn engine_pixels(bytes: &Arc<[u8]>) -> Vec<u8> {
        match engine_image(bytes).unwrap() {
            ImageData::Rgb(p) => p.data().to_vec(),
            ImageData::Encoded(b) => pixels(&b),
        }
    }

    #[test]
    fn undecodable_or_oversized_rgb_bytes_go_to_the_engine_as_they_are() {
        let broken: Arc<[u8]> = [&[0xFFu8, 0xD8, 0xFF][..], &[0u8; 16][..]].concat().into();
        assert!(
            matches!(engine_image(&broken).unwrap(), ImageData::Encoded(b) if Arc::ptr_eq(&b, &broken))
        );
        // A 9000x9000 RGB PNG whose pixel data is missing (IHDR, an empty IDAT, IEND): over
        // the engine's limit by its header, so never decoded here.
        let huge: Arc<[u8]> = vec![
            137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 35, 40, 0, 0, 35,
            40, 8, 2, 0, 0, 0, 226, 183, 229, 237, 0, 0, 0, 8, 73, 68, 65, 84, 120, 156, 3, 0, 0,
            0, 0, 1, 72, 6, 137, 210, 0, 0, 0, 0, 73, 69, 78, 68, 174, 66, 96, 130,
        ]
        .into();
        assert_eq!(header_pixels(&huge), Some(81_000_000));
        assert!(
            matches!(engine_image(&huge).unwrap(), ImageData::Encoded(b) if Arc::ptr_eq(&b, &huge))
        );
        let plain = fixture("landscape.jpg");
        assert!(matches!(engine_image(&plain).unwrap(), ImageData::Rgb(_)));
    }

    #[test]
    fn jpeg_to_png_keeps_the_pixels() {
        let jpeg = fixture("landscape.jpg");
        assert_eq!(engine_pixels(&jpeg), pixels(&jpeg));
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
        assert_eq!(engine_pixels(&keyed), rgb.as_raw().as_slice());
        assert_eq!(pixels(&rgb_png(&keyed).unwrap()), rgb.as_raw().as_slice());
    }

    #[test]
    fn alpha_is_dropped_not_composited() {
        let rgba = fixture("rgba.png");
        let got = engine_pixels(&rgba);
        let expected = image::load_from_memory(&rgba).unwrap().to_rgba8();
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
