//! One request and its sequences as the engine thread tracks them: prompt, output so far, KV blocks, sampler and text state.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;
use vlm_core::{SamplingParams, TokenEvent};
use vlm_models::PreparedPrompt;

use crate::constraint::Constraint;
use crate::kv_cache::BlockHasher;
use crate::output::TextStream;
use crate::sampler::Sampler;

/// What the `n` sequences of one request share.
pub(crate) struct Request {
    pub id: u64,
    pub prompt: PreparedPrompt,
    pub params: SamplingParams,
    pub events: UnboundedSender<TokenEvent>,
    pub arrived: Instant,
}

/// One completion being generated: its tokens, its KV blocks, its sampling state.
pub(crate) struct Sequence {
    /// Unique while the engine runs; the KV cache's sequence id.
    pub id: usize,
    pub request: Arc<Request>,
    /// Which of the request's `n` completions this is.
    pub index: usize,
    pub output: Vec<u32>,
    /// Tokens whose keys and values are in the cache.
    pub computed: usize,
    pub blocks: Vec<u32>,
    /// Content hashes of its full blocks (for prefix caching).
    pub hasher: BlockHasher,
    /// Leading blocks of `blocks` that are indexed by content or were taken from the index.
    pub indexed: usize,
    pub sampler: Sampler,
    /// The structured output it must follow, if its request asked for one.
    pub constraint: Option<Constraint>,
    pub text: TextStream,
    pub last_token_at: Option<Instant>,
}

impl Sequence {
    pub fn prompt_len(&self) -> usize {
        self.request.prompt.token_ids.len()
    }

    /// Prompt plus generated tokens.
    pub fn len(&self) -> usize {
        self.prompt_len() + self.output.len()
    }

    /// Tokens still to be run through the model before the next sample.
    pub fn pending(&self) -> usize {
        self.len() - self.computed
    }
}
