//! What the dashboard's handlers share: the runs store and the dashboard's settings.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use vlm_eval::SampleImages;
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
    /// Tasks' splits loaded for thumbnails, most recent first (a few at most).
    pub images: Mutex<Vec<(ImagesKey, Arc<SampleImages>)>>,
}

/// Which split a [`SampleImages`] holds: the task and the data directory it came from.
pub type ImagesKey = (String, Option<PathBuf>);

impl DashboardState {
    pub fn new(store: RunStore, config: DashboardConfig) -> Self {
        Self {
            store,
            config,
            images: Mutex::new(Vec::new()),
        }
    }
}
