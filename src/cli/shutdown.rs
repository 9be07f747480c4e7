//! `vlm-serve`'s HTTP loop: serve until SIGINT or SIGTERM, then give in-flight requests a
//! grace period to finish before aborting them.

use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use tokio::net::TcpListener;

/// Serves `app` on `listener` until a shutdown signal; in-flight requests then get `grace`
/// to finish.
pub async fn serve_until_shutdown(
    listener: TcpListener,
    app: Router,
    grace: Duration,
) -> Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        eprintln!(
            "vlm-serve: draining in-flight requests (up to {}s)",
            grace.as_secs()
        );
        let _ = stop_tx.send(());
    });
    let serving = tokio::spawn(async move { server.await });
    // Once the signal came, in-flight requests get `grace` to finish.
    let result = tokio::select! {
        r = serving => r,
        _ = async {
            let _ = stop_rx.await;
            tokio::time::sleep(grace).await;
        } => {
            eprintln!("vlm-serve: requests still running after {}s; aborting them", grace.as_secs());
            Ok(Ok(()))
        }
    };
    result.context("server task")?.context("server")?;
    Ok(())
}

/// SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
