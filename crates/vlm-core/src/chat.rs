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

/// Encoded image bytes (PNG, JPEG, ...) exactly as the caller supplied them.
/// Shared, because one image is often asked about several times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageData(pub Arc<[u8]>);

impl ImageData {
    pub fn new(bytes: impl Into<Arc<[u8]>>) -> Self {
        Self(bytes.into())
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
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
