//! A compiled output format, and the per-sequence constraint made from it: which tokens
//! may come next, and whether the output is complete.

use llguidance::toktrie::SimpleVob;
use llguidance::Matcher;

use super::message::one_line;

const NO_CONTINUATION: &str = "structured output: no token of the model's vocabulary can continue the output in the requested format";

/// A request's compiled format, ready to constrain any number of sequences.
pub struct Grammar {
    matcher: Matcher,
}

impl Grammar {
    pub(crate) fn new(matcher: Matcher) -> Self {
        Self { matcher }
    }

    /// A fresh constraint for one sequence (its own parser state).
    pub(crate) fn constraint(&self) -> Constraint {
        Constraint {
            matcher: self.matcher.deep_clone(),
        }
    }
}

impl std::fmt::Debug for Grammar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Grammar")
    }
}

/// One sequence's parser state over its output so far.
pub(crate) struct Constraint {
    matcher: Matcher,
}

impl Constraint {
    /// The tokens that may come next (end-of-sequence among them once the output is
    /// complete). An error when the grammar failed or no token of the vocabulary can
    /// continue the output.
    pub fn allowed(&mut self) -> Result<SimpleVob, String> {
        match self.matcher.compute_mask() {
            Ok(mask) if !mask.is_zero() => Ok(mask),
            Ok(_) => Err(NO_CONTINUATION.into()),
            // The lexer's way of saying the same.
            Err(e) if e.to_string().starts_with("NoExtensionBias") => Err(NO_CONTINUATION.into()),
            Err(e) => Err(format!("structured output: {}", one_line(&e.to_string()))),
        }
    }

    /// Advances past a chosen token.
    pub fn accept(&mut self, token: u32) -> Result<(), String> {
        self.matcher
            .consume_token(token)
            .map_err(|e| format!("structured output: {}", one_line(&e.to_string())))
    }

    /// Whether the output is complete: nothing but end-of-sequence may follow.
    pub fn is_complete(&self) -> bool {
        self.matcher.is_stopped()
    }
}
