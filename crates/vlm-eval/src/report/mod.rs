//! What a run reports: `results.json` for tools, and the table and breakdowns for stdout.

mod read_back;
mod results_json;
mod table;

pub use read_back::{read_results, results_files, FinishedRun, FinishedTask, ReadBackError};
pub use results_json::{write_results, ResultsWriteError, RunInfo};
pub use table::{details, table};
