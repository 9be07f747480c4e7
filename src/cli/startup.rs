//! How every binary starts (allocator tuning, logging) and fails (one line, exit status 1).

use std::process::ExitCode;

use anyhow::Result;

use super::allocator::keep_freed_memory;
use super::logging::init_logging;

/// Tunes the allocator, logs to stderr at `RUST_LOG` (else `default_level`), runs the
/// binary, and turns an error into one `NAME: error: ...` line and exit status 1.
pub fn main_with(name: &str, default_level: &str, run: impl FnOnce() -> Result<()>) -> ExitCode {
    keep_freed_memory();
    init_logging(default_level);
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
