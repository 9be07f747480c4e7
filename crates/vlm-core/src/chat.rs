//! Chat messages as every layer passes them: roles, and content parts of text and images
//! (encoded bytes as supplied, or pixels already decoded to RGB).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Who said a message, spelled as chat templates expect (`message['role']`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// An image as the caller supplied it: encoded bytes (PNG, JPEG, ...) exactly as given, or
/// pixels the caller already decoded to 8-bit RGB (an evaluator holding
/// `PIL.Image.convert("RGB")` pixels need not encode them again). Shared, because one image
/// is often asked about several times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageData {
    Encoded(Arc<[u8]>),
    Rgb(RgbPixels),
}

impl ImageData {
    /// Encoded bytes.
    pub fn new(bytes: impl Into<Arc<[u8]>>) -> Self {
        Self::Encoded(bytes.into())
    }

    /// The encoded bytes, when the image came encoded.
    pub fn encoded(&self) -> Option<&[u8]> {
        match self {
            Self::Encoded(bytes) => Some(bytes),
            Self::Rgb(_) => None,
        }
    }
}

/// Decoded 8-bit RGB pixels, row-major, three bytes a pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbPixels {
    width: usize,
    height: usize,
    data: Arc<[u8]>,
}

impl RgbPixels {
    /// `None` unless `data` holds exactly `width * height * 3` bytes.
    pub fn new(width: usize, height: usize, data: impl Into<Arc<[u8]>>) -> Option<Self> {
        let data = data.into();
        let expected = width.checked_mul(height)?.checked_mul(3)?;
        (data.len() == expected).then_some(Self {
            width,
            height,
            data,
        })
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

/// One piece of a message's content, in the order the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentPart {
    Text(String),
    Image(ImageData),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: Vec<ContentPart>,
}

impl ChatMessage {
    pub fn new(role: Role, content: Vec<ContentPart>) -> Self {
        Self { role, content }
    }

    /// A user message with its images first, then the text: how LLaVA and most
    /// single-turn VLM prompts are built.
    pub fn user_with_images(images: Vec<ImageData>, text: impl Into<String>) -> Self {
        let mut content: Vec<ContentPart> = images.into_iter().map(ContentPart::Image).collect();
        content.push(ContentPart::Text(text.into()));
        Self::new(Role::User, content)
    }

    pub fn images(&self) -> impl Iterator<Item = &ImageData> {
        self.content.iter().filter_map(|part| match part {
            ContentPart::Image(image) => Some(image),
            ContentPart::Text(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_pixels_must_fill_their_size() {
        assert!(RgbPixels::new(2, 1, vec![0u8; 6]).is_some());
        assert!(RgbPixels::new(2, 1, vec![0u8; 5]).is_none());
        assert!(RgbPixels::new(usize::MAX, 2, vec![0u8; 6]).is_none());
        let image = ImageData::Rgb(RgbPixels::new(1, 1, vec![1u8, 2, 3]).unwrap());
        assert_eq!(image.encoded(), None);
        assert_eq!(ImageData::new(vec![9u8]).encoded(), Some(&[9u8][..]));
    }
}
