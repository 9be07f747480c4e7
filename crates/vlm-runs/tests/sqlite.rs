//! The runs store on SQLite files in temporary directories: lifecycle, concurrent claimers,
//! concurrent first opens, and the errors of bad URLs.

mod scenarios;

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use tempfile::TempDir;
use vlm_runs::{Backend, RunFilter, RunStore, StoreError};

fn sqlite_url(dir: &TempDir, file: &str) -> String {
    format!("sqlite://{}/{file}", dir.path().display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir, "runs.db");
    scenarios::lifecycle(&url, Backend::Sqlite).await;
    assert!(dir.path().join("runs.db").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_claimers_take_each_of_thirty_runs_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenarios::concurrent_claims(&sqlite_url(&dir, "runs.db"), 8, 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_opening_a_fresh_file_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir, "fresh.db");
    let opens: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { RunStore::open(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.unwrap().unwrap());
    }
    let id = stores[0]
        .enqueue(&scenarios::new_run("m", "t", "k"))
        .await
        .unwrap();
    let seen: BTreeSet<_> = stores[7]
        .runs(&RunFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|run| run.id)
        .collect();
    assert_eq!(seen, BTreeSet::from([id]));
}

#[tokio::test]
async fn relative_path_is_created_in_the_current_directory() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let cwd = std::env::current_dir().unwrap();
    let relative = relative_path(&cwd, dir.path());
    assert!(relative.is_relative());
    let store = RunStore::open(&format!("sqlite://{}/runs.db", relative.display()))
        .await
        .unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store.close().await;
    assert!(dir.path().join("runs.db").is_file());
}

/// `to` as seen from `from`, both absolute: `../..` up to their common prefix, then down.
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component<'_>> = from.components().collect();
    let to: Vec<Component<'_>> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut relative = PathBuf::new();
    for _ in common..from.len() {
        relative.push("..");
    }
    for component in &to[common..] {
        relative.push(component);
    }
    relative
}

#[tokio::test]
async fn bad_urls_are_refused_with_clear_errors() {
    let unsupported = RunStore::open("mysql://localhost/runs").await.unwrap_err();
    assert!(matches!(unsupported, StoreError::UnsupportedUrl { .. }));
    let message = unsupported.to_string();
    assert!(message.contains("mysql://localhost/runs"), "{message}");
    assert!(
        message.contains("expected sqlite://PATH or postgres://"),
        "{message}"
    );

    let dir = tempfile::tempdir().unwrap();
    let missing = format!("sqlite://{}/absent/runs.db", dir.path().display());
    let error = RunStore::open(&missing).await.unwrap_err();
    assert!(
        matches!(error, StoreError::MissingDirectory { .. }),
        "{error}"
    );
    assert!(error.to_string().contains(&missing), "{error}");
    assert!(
        !dir.path().join("absent").exists(),
        "no directory is created"
    );

    // A path that is a directory cannot be opened as a database file.
    std::fs::create_dir(dir.path().join("a-directory")).unwrap();
    let directory = sqlite_url(&dir, "a-directory");
    let error = RunStore::open(&directory).await.unwrap_err();
    assert!(matches!(error, StoreError::Connect { .. }), "{error}");
    assert!(error.to_string().contains(&directory), "{error}");

    // Not a SQLite database: the schema cannot be read, and the message names the file.
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![b'x'; 4096]).unwrap();
    let garbage_url = sqlite_url(&dir, "garbage.db");
    let error = RunStore::open(&garbage_url).await.unwrap_err();
    assert!(error.to_string().contains(&garbage_url), "{error}");
}
