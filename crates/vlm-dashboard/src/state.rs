//! What the dashboard's handlers share: the runs store and the dashboard's settings.

use std::path::PathBuf;

use vlm_runs::RunStore;

/// Settings from the command line.
#[derive(Debug, Clone, Default)]
pub struct DashboardConfig {
    /// Guards the writing routes (every route with `protect_reads`).
    pub api_key: Option<String>,
    pub protect_reads: bool,
    /// Run folders recorded as relative paths are under this directory; with it set, only
    /// folders inside it are served.
    pub output_root: Option<PathBuf>,
    /// Defaults for runs queued from the page.
    pub data_dir: Option<PathBuf>,
}

pub struct DashboardState {
    pub store: RunStore,
    pub config: DashboardConfig,
}
