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
        let decoded = tokenizer
            .decode(output, self.skip_special_tokens)
            .unwrap_or_default();
        self.update_decoded(decoded)
    }

    /// [`update`](Self::update) with the output already decoded.
    fn update_decoded(&mut self, decoded: String) -> TextUpdate {
        self.decoded = decoded;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays `pieces` as successive decodes of a growing output.
    fn run(stream: &mut TextStream, pieces: &[&str]) -> (Vec<String>, bool) {
        let mut deltas = Vec::new();
        let mut text = String::new();
        for piece in pieces {
            text.push_str(piece);
            let update = stream.update_decoded(text.clone());
            deltas.push(update.delta);
            if update.stopped {
                return (deltas, true);
            }
        }
        deltas.push(stream.flush());
        (deltas, false)
    }

    #[test]
    fn holds_back_possible_stop_prefixes_and_cuts_at_the_stop() {
        let mut s = TextStream::new(&["END".into()], false, true);
        let (deltas, stopped) = run(&mut s, &["ab", "cE", "N", "Dxyz"]);
        assert!(stopped);
        assert_eq!(deltas, vec!["ab", "c", "", ""]);
        let mut s = TextStream::new(&["END".into()], false, true);
        let (deltas, stopped) = run(&mut s, &["ab", "cE", "Nx"]);
        assert!(!stopped);
        assert_eq!(deltas.concat(), "abcENx", "a false alarm is released");
        let mut s = TextStream::new(&["END".into()], true, true);
        assert_eq!(run(&mut s, &["aE", "NDb"]).0.concat(), "aEND");
    }

    #[test]
    fn never_splits_a_character() {
        // Successive full decodes: the second token completes the character.
        let mut s = TextStream::new(&[], false, true);
        assert_eq!(s.update_decoded("h\u{FFFD}".into()).delta, "h");
        assert_eq!(s.update_decoded("hé!".into()).delta, "é!");
    }
}
