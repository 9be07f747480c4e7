//! OpenAI chat messages (`messages` of `/v1/chat/completions` and `/tokenize`) -> the
//! engine's [`ChatMessage`]s: roles mapped, content parts converted, images loaded and
//! checked against the server's limits.

use vlm_core::{ChatMessage, ContentPart, Role};

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::media::load_image;
use crate::protocol::chat::{ContentIn, MessageIn, PartIn};

/// OpenAI messages -> engine messages, images loaded and checked.
pub fn convert_messages(
    messages: Vec<MessageIn>,
    config: &ServerConfig,
) -> Result<Vec<ChatMessage>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::bad_request("messages must not be empty").with_param("messages"));
    }
    let mut images = 0;
    messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let role = match m.role.as_str() {
                "system" | "developer" => Role::System,
                "user" => Role::User,
                "assistant" => Role::Assistant,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "messages[{i}].role {other:?} is not supported (system, developer, user, assistant)"
                    ))
                    .with_param(format!("messages[{i}].role")))
                }
            };
            let content = match m.content {
                None => Vec::new(),
                Some(ContentIn::Text(text)) => vec![ContentPart::Text(text)],
                Some(ContentIn::Parts(parts)) => parts
                    .into_iter()
                    .enumerate()
                    .map(|(j, part)| convert_part(part, (i, j), &mut images, config))
                    .collect::<Result<_, _>>()?,
            };
            Ok(ChatMessage::new(role, content))
        })
        .collect()
}

/// One content part; `images` counts the prompt's images so far against the limit.
fn convert_part(
    part: serde_json::Value,
    (i, j): (usize, usize),
    images: &mut usize,
    config: &ServerConfig,
) -> Result<ContentPart, ApiError> {
    let at = format!("messages[{i}].content[{j}]");
    let kind = part
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or_default();
    if !matches!(kind, "text" | "image_url") {
        return Err(ApiError::bad_request(format!(
            "{at}.type {kind:?} is not supported (text, image_url)"
        ))
        .with_param(format!("{at}.type")));
    }
    let part: PartIn = serde_json::from_value(part)
        .map_err(|e| ApiError::bad_request(format!("{at}: {e}")).with_param(at.clone()))?;
    match part {
        PartIn::Text { text } => Ok(ContentPart::Text(text)),
        PartIn::ImageUrl { image_url } => {
            *images += 1;
            if *images > config.limit_images_per_prompt {
                return Err(ApiError::bad_request(format!(
                    "at most {} images per prompt on this server (--limit-images-per-prompt)",
                    config.limit_images_per_prompt
                ))
                .with_param("messages"));
            }
            let param = format!("messages[{i}].content[{j}].image_url");
            Ok(ContentPart::Image(load_image(
                image_url.url(),
                config,
                &param,
            )?))
        }
    }
}
