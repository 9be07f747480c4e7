//! Command-line code for the binaries: the model and engine flags they share, how each one
//! starts and fails, `vlm-serve`'s graceful shutdown, and `vlm-eval`'s commands (evaluate,
//! score, sweep, runs, workers, dashboard, ...) with their progress bars and report.

mod allocator;
pub mod dashboard;
mod engine_args;
pub mod eval_child;
pub mod eval_progress;
pub mod eval_recording;
pub mod eval_report;
pub mod evaluate;
mod logging;
mod model_args;
pub mod runs_commands;
pub mod shutdown;
mod startup;
pub mod store;
pub mod sweep;
pub mod sync_command;
pub mod tasks_command;
pub mod workers;

pub use allocator::keep_freed_memory;
pub use engine_args::EngineArgs;
pub use model_args::ModelArgs;
pub use startup::main_with;
