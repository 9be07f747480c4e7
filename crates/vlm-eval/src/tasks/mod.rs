//! The benchmarks: prompts, parsers and aggregation.

pub mod mme;
pub mod mmmu;
