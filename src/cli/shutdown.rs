//! `vlm-serve`'s HTTP loop: serve until SIGINT or SIGTERM, then give in-flight requests a
//! grace period to finish before aborting them; if the engine itself stops, fail so that a
//! supervisor restarts the server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use tokio::net::TcpListener;
use vlm_server::ConnectionLimits;

/// Serves `app` on `listener` until a shutdown signal; in-flight requests then get `grace`
/// to finish. When `engine_running` turns false while serving (the engine thread died),
/// the server stops the same way and this returns an error, so the process exits non-zero.
pub async fn serve_until_shutdown(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    grace: Duration,
    engine_running: impl Fn() -> bool + Send + Sync + 'static,
) -> Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let engine_died = Arc::new(AtomicBool::new(false));
    let died = engine_died.clone();
    let server = vlm_server::serve(listener, app, limits, async move {
        let watchdog = async {
            while engine_running() {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        };
        tokio::select! {
            _ = shutdown_signal() => {}
            _ = watchdog => {
                died.store(true, Ordering::SeqCst);
                eprintln!("vlm-serve: the engine stopped unexpectedly; shutting down");
            }
        }
        eprintln!(
            "vlm-serve: draining in-flight requests (up to {}s)",
            grace.as_secs()
        );
        let _ = stop_tx.send(());
    });
    let serving = tokio::spawn(server);
    // Once the signal came, in-flight requests get `grace` to finish.
    let result = tokio::select! {
        r = serving => r,
        _ = async {
            let _ = stop_rx.await;
            tokio::time::sleep(grace).await;
        } => {
            eprintln!("vlm-serve: requests still running after {}s; aborting them", grace.as_secs());
            Ok(())
        }
    };
    result.context("server task")?;
    anyhow::ensure!(
        !engine_died.load(Ordering::SeqCst),
        "the engine stopped unexpectedly; restart vlm-serve (its log above says why)"
    );
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
