//! The benchmarks. A task says which dataset split it reads, how one row becomes a prompt
//! (text and images, in the order the model sees them), how many tokens to generate, and
//! how responses are parsed and aggregated. Adding a benchmark is one file implementing
//! [`Task`] and one line in [`by_name`].

pub mod mme;
pub mod mmmu;
pub mod scorers;
mod task;

pub use task::{Metric, SampleScore, Task, TaskError, TaskScores};

/// Every task `--tasks` accepts.
pub const NAMES: [&str; 2] = ["mme", "mmmu_val"];

pub fn by_name(name: &str) -> Option<Box<dyn Task>> {
    match name {
        "mme" => Some(Box::new(mme::Mme)),
        "mmmu_val" => Some(Box::new(mmmu::MmmuVal)),
        _ => None,
    }
}
