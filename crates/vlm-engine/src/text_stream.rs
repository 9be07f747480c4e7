//! Incremental detokenization with stop strings: text is released only once it can no longer
//! become part of a stop string, and never splits a UTF-8 character.

use vlm_models::text::TextTokenizer;

pub(crate) struct TextStream {
    skip_special_tokens: bool,
    stops: Vec<String>,
    include_stop: bool,
    /// Bytes of the decoded output already handed out.
    emitted: usize,
    /// Decoded output so far.
    decoded: String,
}

/// What a new token did to the text.
#[derive(Default)]
pub(crate) struct TextUpdate {
    pub delta: String,
    /// A stop string appeared; the text ends here.
    pub stopped: bool,
}

impl TextStream {
    pub fn new(stops: &[String], include_stop: bool, skip_special_tokens: bool) -> Self {
        Self {
            skip_special_tokens,
            stops: stops.to_vec(),
            include_stop,
            emitted: 0,
            decoded: String::new(),
        }
    }

    /// The output's tokens so far (including the new one).
    pub fn update(&mut self, tokenizer: &TextTokenizer, output: &[u32]) -> TextUpdate {
        self.decoded = tokenizer
            .decode(output, self.skip_special_tokens)
            .unwrap_or_default();
        // A trailing replacement character is a multi-byte character still incomplete.
        let complete = self.decoded.trim_end_matches('\u{FFFD}').len();
        // Stop strings are searched from a little before the released text, so one that
        // straddles the boundary is found.
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        let mut search_from = self.emitted.saturating_sub(longest);
        while !self.decoded.is_char_boundary(search_from) {
            search_from -= 1;
        }
        let hit = self
            .stops
            .iter()
            .filter_map(|s| {
                self.decoded[search_from..]
                    .find(s.as_str())
                    .map(|i| (search_from + i, s.len()))
            })
            .min();
        if let Some((at, len)) = hit {
            let end = if self.include_stop { at + len } else { at };
            return TextUpdate {
                delta: self.take(end.max(self.emitted)),
                stopped: true,
            };
        }
        // Hold back the longest tail that could still grow into a stop string.
        let tail = &self.decoded[..complete];
        let held = self
            .stops
            .iter()
            .flat_map(|s| {
                (1..s.len())
                    .rev()
                    .filter(move |&n| s.is_char_boundary(n))
                    .map(move |n| &s[..n])
            })
            .filter(|prefix| tail.ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0);
        TextUpdate {
            delta: self.take(complete - held),
            stopped: false,
        }
    }

    /// Everything not yet released (generation ended for another reason).
    pub fn flush(&mut self) -> String {
        let end = self.decoded.len();
        self.take(end)
    }

    fn take(&mut self, end: usize) -> String {
        if end <= self.emitted {
            return String::new();
        }
        let delta = self.decoded[self.emitted..end].to_string();
        self.emitted = end;
        delta
    }
}
