//! `image_url` -> image bytes: `data:` URLs always; local paths only under
//! `--allowed-local-media-path`; http(s) only with `--allow-remote-images`, with a timeout
//! and a size cap. Every image is checked against the byte and pixel limits before the
//! engine decodes it.

use std::io::{Cursor, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use vlm_core::ImageData;

use crate::config::ServerConfig;
use crate::error::ApiError;

pub fn load_image(url: &str, config: &ServerConfig, param: &str) -> Result<ImageData, ApiError> {
    let bad = |m: String| ApiError::bad_request(m).with_param(param.to_string());
    let bytes = if let Some(rest) = url.strip_prefix("data:") {
        from_data_url(rest, config).map_err(bad)?
    } else if url.starts_with("http://") || url.starts_with("https://") {
        if !config.allow_remote_images {
            return Err(bad(
                "remote images are not allowed on this server (start it with --allow-remote-images); send the image as a data: URL".into(),
            ));
        }
        fetch_remote(url, config).map_err(bad)?
    } else {
        let path = url.strip_prefix("file://").unwrap_or(url);
        read_local(Path::new(path), config).map_err(bad)?
    };
    check_dimensions(&bytes, config).map_err(bad)?;
    Ok(ImageData::new(bytes))
}

fn too_big(len: usize, config: &ServerConfig) -> String {
    format!(
        "image is {len} bytes, more than the {} bytes this server accepts",
        config.max_image_bytes
    )
}

fn from_data_url(rest: &str, config: &ServerConfig) -> Result<Vec<u8>, String> {
    let (meta, payload) = rest
        .split_once(',')
        .ok_or("data URL has no ',' before its payload")?;
    if !meta.ends_with(";base64") {
        return Err(format!(
            "data URL must be base64 encoded (data:image/png;base64,...), got data:{meta},..."
        ));
    }
    // base64 is 4/3 of the bytes: refuse before decoding a huge payload.
    if payload.len() / 4 * 3 > config.max_image_bytes + 3 {
        return Err(too_big(payload.len() / 4 * 3, config));
    }
    let payload: String = payload
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload.as_bytes())
        .map_err(|e| format!("invalid base64 in the image data URL: {e}"))?;
    if bytes.len() > config.max_image_bytes {
        return Err(too_big(bytes.len(), config));
    }
    Ok(bytes)
}

fn read_local(path: &Path, config: &ServerConfig) -> Result<Vec<u8>, String> {
    let Some(root) = &config.allowed_local_media_path else {
        return Err(format!(
            "local image paths are not allowed on this server (start it with --allowed-local-media-path DIR); got {:?}",
            path.display().to_string()
        ));
    };
    let outside = || {
        format!(
            "image path {} is outside the allowed media directory {}",
            path.display(),
            root.display()
        )
    };
    let root = root.canonicalize().map_err(|_| outside())?;
    let full: PathBuf = if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    };
    // Canonical paths: `..` and symlinks cannot escape the directory.
    let full = full
        .canonicalize()
        .map_err(|e| format!("cannot read image {}: {e}", path.display()))?;
    if !full.starts_with(&root) {
        return Err(outside());
    }
    // Opened without blocking (a FIFO would wait for a writer), then judged by what was
    // opened, so a file swapped for a FIFO after a check cannot slip through: a FIFO,
    // device or directory would block or never end, and only regular files are read.
    let cannot = |e: std::io::Error| format!("cannot read image {}: {e}", path.display());
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&full)
        .map_err(cannot)?;
    let metadata = file.metadata().map_err(cannot)?;
    if !metadata.is_file() {
        return Err(format!(
            "image path {} is not a regular file",
            path.display()
        ));
    }
    if metadata.len() > config.max_image_bytes as u64 {
        return Err(too_big(metadata.len() as usize, config));
    }
    // Read at most one byte past the limit, in case the file grew since.
    let mut bytes = Vec::new();
    file.take(config.max_image_bytes as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() > config.max_image_bytes {
        return Err(too_big(bytes.len(), config));
    }
    Ok(bytes)
}

fn fetch_remote(url: &str, config: &ServerConfig) -> Result<Vec<u8>, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(config.remote_image_timeout)
        .build();
    let response = agent
        .get(url)
        .call()
        .map_err(|e| format!("could not fetch image {url}: {e}"))?;
    let mut bytes = Vec::new();
    response
        .into_reader()
        .take(config.max_image_bytes as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("could not fetch image {url}: {e}"))?;
    if bytes.len() > config.max_image_bytes {
        return Err(too_big(bytes.len(), config));
    }
    Ok(bytes)
}

/// Reads only the header: a huge image is refused before anything decodes it.
fn check_dimensions(bytes: &[u8], config: &ServerConfig) -> Result<(), String> {
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read image: {e}"))?;
    if reader.format().is_none() {
        return Err("the image is not in a known format (PNG, JPEG, GIF, WebP, BMP)".into());
    }
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| format!("cannot decode image: {e}"))?;
    let pixels = u64::from(w) * u64::from(h);
    if pixels > config.max_image_pixels {
        return Err(format!(
            "image is {w}x{h} = {pixels} pixels, more than the {} this server accepts",
            config.max_image_pixels
        ));
    }
    if pixels == 0 {
        return Err(format!("image is {w}x{h}: it has no pixels"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::new(w, h);
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn data_url(bytes: &[u8]) -> String {
        format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    }

    #[test]
    fn data_urls_and_their_failures() {
        let config = ServerConfig::default();
        let ok = load_image(&data_url(&png(4, 3)), &config, "p").unwrap();
        assert_eq!(ok.encoded(), Some(png(4, 3).as_slice()));
        let e = load_image("data:image/png;base64,@@@", &config, "p").unwrap_err();
        assert!(e.message.contains("invalid base64"), "{}", e.message);
        let e = load_image(&data_url(b"not an image"), &config, "p").unwrap_err();
        assert!(e.message.contains("known format"), "{}", e.message);
        let small = ServerConfig {
            max_image_pixels: 10,
            ..ServerConfig::default()
        };
        let e = load_image(&data_url(&png(4, 3)), &small, "p").unwrap_err();
        assert!(e.message.contains("pixels"), "{}", e.message);
        let tiny = ServerConfig {
            max_image_bytes: 10,
            ..ServerConfig::default()
        };
        let e = load_image(&data_url(&png(4, 3)), &tiny, "p").unwrap_err();
        assert!(e.message.contains("bytes"), "{}", e.message);
    }

    #[test]
    fn local_paths_stay_inside_the_allowed_directory() {
        let dir = std::env::temp_dir().join(format!("vlm-media-{}", std::process::id()));
        let inner = dir.join("allowed");
        std::fs::create_dir_all(&inner).unwrap();
        std::fs::write(inner.join("a.png"), png(2, 2)).unwrap();
        std::fs::write(dir.join("secret.png"), png(2, 2)).unwrap();
        let closed = ServerConfig::default();
        assert!(load_image(inner.join("a.png").to_str().unwrap(), &closed, "p").is_err());
        let open = ServerConfig {
            allowed_local_media_path: Some(inner.clone()),
            ..ServerConfig::default()
        };
        assert!(load_image("a.png", &open, "p").is_ok());
        let url = format!("file://{}", inner.join("a.png").display());
        assert!(load_image(&url, &open, "p").is_ok());
        let e = load_image("../secret.png", &open, "p").unwrap_err();
        assert!(e.message.contains("outside"), "{}", e.message);
        let e = load_image("http://127.0.0.1:9/x.png", &open, "p").unwrap_err();
        assert!(e.message.contains("--allow-remote-images"), "{}", e.message);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A FIFO under the allowed directory used to block a thread forever (and shutdown
    /// with it); a directory is refused the same way.
    #[test]
    fn special_files_are_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("vlm-media-fifo-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let fifo = dir.join("pipe.png");
        let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path and a plain mode.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        let open = ServerConfig {
            allowed_local_media_path: Some(dir.clone()),
            ..ServerConfig::default()
        };
        for name in ["pipe.png", "sub"] {
            let e = load_image(name, &open, "p").unwrap_err();
            assert!(e.message.contains("not a regular file"), "{}", e.message);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
