//! What a run reports: `results.json` for tools, and the table and breakdowns for stdout.

mod results_json;
mod table;

pub use results_json::{write_results, ResultsWriteError, RunInfo};
pub use table::{details, table};
