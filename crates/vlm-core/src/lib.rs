//! Plain types shared by every `vlm` crate: chat messages, sampling parameters, finish reasons.
//! No candle, no tokio: anything here can cross a thread or an HTTP boundary as is.

mod chat;
mod events;
mod sampling;

pub use chat::{ChatMessage, ContentPart, ImageData, RgbPixels, Role};
pub use events::{TokenEvent, TokenLogprob, Usage};
pub use sampling::{FinishReason, SamplingParams, SamplingParamsError, MAX_TOP_LOGPROBS};
