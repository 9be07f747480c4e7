//! `vlm-eval dashboard`: the runs store's REST API and page, served until Ctrl-C / SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use vlm_dashboard::{DashboardConfig, DashboardState};
use vlm_runs::RunStore;

#[derive(clap::Args, Debug)]
pub struct DashboardArgs {
    /// The runs store: sqlite://PATH or postgres://...
    #[arg(long, env = "VLM_EVAL_DB")]
    pub db: String,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Needed (as `Authorization: Bearer KEY`) by the writing routes.
    #[arg(long, env = "VLM_DASHBOARD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// With --api-key: every route needs the key, reading too.
    #[arg(long, requires = "api_key")]
    pub protect_reads: bool,
    /// Serve run folders only from inside this directory (relative run folders are read
    /// from here).
    #[arg(long)]
    pub output_root: Option<PathBuf>,
    /// Data directory for runs queued from the page (as `vlm-eval --data-dir`).
    #[arg(long, env = "VLM_EVAL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

pub fn dashboard_command(args: DashboardArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the dashboard's runtime")?;
    runtime.block_on(async move {
        let store = RunStore::open(&args.db).await?;
        let state = Arc::new(DashboardState::new(
            store,
            DashboardConfig {
                api_key: args.api_key,
                protect_reads: args.protect_reads,
                output_root: args.output_root,
                data_dir: args.data_dir,
            },
        ));
        let address = format!("{}:{}", args.host, args.port);
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .with_context(|| format!("cannot listen on {address}; pass another --port"))?;
        eprintln!(
            "vlm-eval dashboard: http://{}/ (runs store {})",
            listener.local_addr()?,
            args.db
        );
        axum::serve(listener, vlm_dashboard::router(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("the dashboard stopped")?;
        Ok(())
    })
}
