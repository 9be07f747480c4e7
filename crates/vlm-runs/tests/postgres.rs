//! The runs store on a real PostgreSQL server (a throwaway cluster, or the one
//! `VLM_TEST_POSTGRES_URL` names): lifecycle, concurrent claimers, and an unreachable server.

mod postgres_server;
mod scenarios;

use postgres_server::TestDatabase;
use vlm_runs::{Backend, RunStore, StoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_postgres() {
    let database = TestDatabase::create().await;
    scenarios::lifecycle(&database.url, Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_claimers_take_each_of_thirty_runs_once_on_postgres() {
    let database = TestDatabase::create().await;
    scenarios::concurrent_claims(&database.url, 8, 30).await;
}

#[tokio::test]
async fn unreachable_server_fails_at_once_naming_the_url() {
    let port = postgres_server::free_port().unwrap();
    let url = format!("postgres://vlm:secret@127.0.0.1:{port}/runs");
    let started = std::time::Instant::now();
    let error = RunStore::open(&url).await.unwrap_err();
    assert!(matches!(error, StoreError::Connect { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains(&format!("postgres://vlm:***@127.0.0.1:{port}/runs")),
        "{message}"
    );
    assert!(!message.contains("secret"), "{message}");
    assert!(
        started.elapsed().as_secs() < 10,
        "took {:?}",
        started.elapsed()
    );
}
