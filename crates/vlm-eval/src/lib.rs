//! Benchmark evaluation with scores identical to lmms-eval's: task prompts, answer parsers
//! and aggregation ported rule for rule (including Python's `random` stream where a parser
//! guesses), so a number from `vlm-eval` can be put next to a paper's.

pub mod backend;
pub mod dataset;
pub mod images;
pub mod journal;
pub mod prompt;
pub mod python;
pub mod reasoning;
pub mod report;
pub mod run;
pub mod tasks;
