//! A request's token stream as callers read it, and the completions collected from it.

use tokio::sync::mpsc::UnboundedReceiver;
use vlm_core::{FinishReason, TokenEvent, TokenLogprob, Usage};

/// One completion collected from a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub index: usize,
    pub token_ids: Vec<u32>,
    pub text: String,
    pub logprobs: Vec<f32>,
    /// Each token's text as logprobs show it (empty strings unless logprobs were asked).
    pub tokens: Vec<String>,
    /// Where each token's text starts in `text` (the text emitted before it).
    pub text_offsets: Vec<usize>,
    pub top_logprobs: Vec<Vec<TokenLogprob>>,
    pub finish_reason: FinishReason,
    /// Why the engine failed this completion, when it did.
    pub error: Option<String>,
}

/// The tokens of one request, as they are generated. Dropping it cancels the request.
pub struct RequestStream {
    pub id: u64,
    pub prompt_tokens: usize,
    n: usize,
    receiver: UnboundedReceiver<TokenEvent>,
}

impl RequestStream {
    pub(crate) fn new(
        id: u64,
        prompt_tokens: usize,
        n: usize,
        receiver: UnboundedReceiver<TokenEvent>,
    ) -> Self {
        Self {
            id,
            prompt_tokens,
            n,
            receiver,
        }
    }

    /// The next event; `None` once every completion has finished.
    pub async fn next(&mut self) -> Option<TokenEvent> {
        self.receiver.recv().await
    }

    /// [`next`](Self::next) for callers outside an async runtime.
    pub fn next_blocking(&mut self) -> Option<TokenEvent> {
        self.receiver.blocking_recv()
    }

    /// Waits for every completion (blocking) and returns them in index order, with usage.
    pub fn collect_blocking(mut self) -> (Vec<Completion>, Usage) {
        let mut collector = Collector::new(self.n, self.prompt_tokens);
        while !collector.done() {
            match self.next_blocking() {
                Some(event) => collector.push(event),
                None => break,
            }
        }
        collector.finish()
    }

    /// How many completions the request asked for (`n`).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Every completion, awaited.
    pub async fn collect(mut self) -> (Vec<Completion>, Usage) {
        let mut collector = Collector::new(self.n, self.prompt_tokens);
        while !collector.done() {
            match self.next().await {
                Some(event) => collector.push(event),
                None => break,
            }
        }
        collector.finish()
    }
}

/// Folds a request's events into its completions.
struct Collector {
    completions: Vec<Completion>,
    usage: Usage,
    open: usize,
}

impl Collector {
    fn new(n: usize, prompt_tokens: usize) -> Self {
        Self {
            completions: (0..n)
                .map(|index| Completion {
                    index,
                    token_ids: Vec::new(),
                    text: String::new(),
                    logprobs: Vec::new(),
                    tokens: Vec::new(),
                    text_offsets: Vec::new(),
                    top_logprobs: Vec::new(),
                    finish_reason: FinishReason::Abort,
                    error: None,
                })
                .collect(),
            usage: Usage {
                prompt_tokens,
                completion_tokens: 0,
            },
            open: n,
        }
    }

    fn done(&self) -> bool {
        self.open == 0
    }

    fn push(&mut self, event: TokenEvent) {
        let Some(c) = self.completions.get_mut(event.index) else {
            return;
        };
        // An abort event carries no token, only text that was held back.
        if event.finish_reason != Some(FinishReason::Abort) {
            c.token_ids.push(event.token_id);
            c.logprobs.push(event.logprob);
            c.tokens.push(event.token);
            c.text_offsets.push(c.text.len());
            c.top_logprobs.push(event.top_logprobs);
        }
        c.text.push_str(&event.text);
        if let Some(reason) = event.finish_reason {
            c.finish_reason = reason;
            c.error = event.error;
            self.usage.completion_tokens += event.usage.map_or(0, |u| u.completion_tokens);
            self.open -= 1;
        }
    }

    fn finish(self) -> (Vec<Completion>, Usage) {
        (self.completions, self.usage)
    }
}
