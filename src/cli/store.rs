//! The runs store as the (blocking) command line uses it: `vlm-runs` driven by a small
//! runtime of its own, and the default location beside the outputs.

use std::future::Future;
use std::path::Path;

use anyhow::{Context, Result};
use vlm_runs::{RunStore, StoreError};

/// An open runs store.
pub struct Store {
    runtime: tokio::runtime::Runtime,
    inner: RunStore,
}

impl Store {
    pub fn open(url: &str) -> Result<Self> {
        // Its own worker thread, so any thread outside an async context may block on it.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("vlm-runs-store")
            .enable_all()
            .build()
            .context("cannot start the runs store's runtime")?;
        let inner = runtime.block_on(RunStore::open(url))?;
        Ok(Self { runtime, inner })
    }

    /// `--db URL`, or the embedded default: `sqlite://<output dir>/runs.db` (the
    /// directory is created).
    pub fn open_or_default(url: Option<&str>, output_dir: &Path) -> Result<Self> {
        match url {
            Some(url) => Self::open(url),
            None => {
                std::fs::create_dir_all(output_dir)
                    .with_context(|| format!("cannot create {}", output_dir.display()))?;
                let dir = output_dir
                    .canonicalize()
                    .with_context(|| format!("cannot resolve {}", output_dir.display()))?;
                Self::open(&format!("sqlite://{}", dir.join("runs.db").display()))
            }
        }
    }

    /// Runs one store call to completion. Never call it from inside an async context (an
    /// engine stream): it blocks.
    pub fn call<'a, T, F>(&'a self, f: impl FnOnce(&'a RunStore) -> F) -> Result<T>
    where
        F: Future<Output = Result<T, StoreError>> + 'a,
    {
        Ok(self.runtime.block_on(f(&self.inner))?)
    }
}
