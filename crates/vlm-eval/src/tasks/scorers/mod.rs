//! The per-sample rules task files name (`scoring.scorer`), each a port of the lmms-eval
//! function its tasks use, returning what it compared and the sample's score. They see the
//! response as lmms-eval's `process_results` does: filtered, reasoning blocks stripped,
//! whitespace stripped.

mod anls;
mod exact_match;
mod option_letter;
mod relaxed;
mod vqa_answer;
mod yes_no;

pub use anls::{anls, levenshtein};
pub use exact_match::{hf_exact_match, ExactMatchOptions};
pub use option_letter::{leading_option_letter, sqa_letter_correct};
pub use relaxed::relaxed_correctness;
pub use vqa_answer::vqa_accuracy;
pub use yes_no::pope_prediction;
