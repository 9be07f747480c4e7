//! Scenarios every backend must pass: the whole run lifecycle, and many workers claiming one
//! queue. Each takes the URL of an empty database.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::{json, Map, Value};
use vlm_runs::{
    Backend, ModelRecord, NewRun, RunFilter, RunId, RunResult, RunSource, RunStatus, RunStore,
    StoreError, TaskRecord,
};

pub fn new_run(model: &str, task: &str, identity_key: &str) -> NewRun {
    NewRun {
        model: model.to_owned(),
        task: task.to_owned(),
        identity_key: identity_key.to_owned(),
        config: json!({"model": {"name": model}, "task": {"name": task, "limit": 8}}),
        primary_metric: "acc".to_owned(),
        output_dir: Some(format!("/out/{identity_key}")),
    }
}

pub fn metrics(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn result(metrics_value: Value, finished_at: Option<i64>) -> RunResult {
    RunResult {
        metrics: metrics(metrics_value),
        details: Some(json!({"per_category": {"charts": 0.5}})),
        duration_s: 12.5,
        samples_per_s: 4.0,
        output_dir: None,
        finished_at,
    }
}

/// A run of `model` on task `t` that started and completed, finished at `finished_at`.
async fn finished_run(
    store: &RunStore,
    model: &str,
    key: &str,
    metrics_value: Value,
    finished_at: i64,
) -> RunId {
    let id = store
        .start(&new_run(model, "t", key), "cli", "host-a")
        .await
        .unwrap();
    store
        .complete(&id, &result(metrics_value, Some(finished_at)))
        .await
        .unwrap();
    id
}

/// Open twice, models and tasks, enqueue → claim → heartbeat → complete / fail, lookups,
/// filters, the leaderboard, stale requeue and idempotent backfill.
pub async fn lifecycle(url: &str, backend: Backend) {
    let store = RunStore::open(url).await.unwrap();
    assert_eq!(store.backend(), backend);
    // The migrations already applied, opening again must not try them again.
    let second = RunStore::open(url).await.unwrap();
    assert_eq!(second.backend(), backend);

    models_and_tasks(&store).await;
    queue_claim_complete_fail(&store, &second).await;
    leaderboard(&store).await;
    requeue_stale(&store).await;
    one_queued_run_per_identity(&store).await;
    record_synced(&store).await;

    second.close().await;
    store.close().await;
}

async fn models_and_tasks(store: &RunStore) {
    let mut model = ModelRecord {
        name: "qwen-2b".into(),
        display_name: "Qwen 2B".into(),
        reference: Some("Qwen/Qwen2-VL-2B-Instruct".into()),
        base_url: None,
        settings: json!({"dtype": "bf16"}),
        params_b: Some(2.2),
        created_at: 0,
    };
    store.upsert_model(&model).await.unwrap();
    let stored = store.model("qwen-2b").await.unwrap().unwrap();
    assert!(stored.created_at > 0);
    assert_eq!(stored.settings, json!({"dtype": "bf16"}));
    assert_eq!(stored.params_b, Some(2.2));

    model.display_name = "Qwen2-VL 2B".into();
    model.base_url = Some("http://127.0.0.1:8000/v1".into());
    model.params_b = None;
    store.upsert_model(&model).await.unwrap();
    let updated = store.model("qwen-2b").await.unwrap().unwrap();
    assert_eq!(updated.display_name, "Qwen2-VL 2B");
    assert_eq!(
        updated.base_url.as_deref(),
        Some("http://127.0.0.1:8000/v1")
    );
    assert_eq!(updated.params_b, None);
    assert_eq!(updated.created_at, stored.created_at);

    store
        .upsert_model(&ModelRecord {
            name: "another".into(),
            display_name: "Another".into(),
            ..ModelRecord::default()
        })
        .await
        .unwrap();
    let names: Vec<String> = store
        .models()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["another", "qwen-2b"]);
    assert!(store.model("missing").await.unwrap().is_none());

    let task = TaskRecord {
        name: "t".into(),
        display_name: "Task T".into(),
        primary_metric: "acc".into(),
        created_at: 0,
    };
    store.upsert_task(&task).await.unwrap();
    store.upsert_task(&task).await.unwrap();
    let tasks = store.tasks().await.unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        store.task("t").await.unwrap().unwrap().primary_metric,
        "acc"
    );
    assert!(store.task("nope").await.unwrap().is_none());

    let empty_name = store
        .upsert_model(&ModelRecord::default())
        .await
        .unwrap_err();
    assert!(
        matches!(empty_name, StoreError::InvalidInput { .. }),
        "{empty_name}"
    );
}

async fn queue_claim_complete_fail(store: &RunStore, other: &RunStore) {
    let first = store.enqueue(&new_run("a", "q", "k1")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
    let second = store.enqueue(&new_run("b", "q", "k2")).await.unwrap();
    assert_eq!(first.len(), 16);

    let queued = store.get(&first).await.unwrap().unwrap();
    assert_eq!(queued.status, RunStatus::Queued);
    assert_eq!(queued.source, RunSource::Run);
    assert_eq!(queued.config["task"]["limit"], 8);
    assert!(queued.metrics.is_none() && queued.started_at.is_none() && queued.worker.is_none());
    assert_eq!(queued.output_dir.as_deref(), Some("/out/k1"));

    // The oldest queued run goes first, to whichever store asks.
    let claimed = other.claim("worker-1", "host-a").await.unwrap().unwrap();
    assert_eq!(claimed.id, first);
    assert_eq!(claimed.status, RunStatus::Running);
    assert_eq!(claimed.worker.as_deref(), Some("worker-1"));
    assert_eq!(claimed.host.as_deref(), Some("host-a"));
    assert!(claimed.started_at.is_some());
    assert_eq!(claimed.heartbeat_at, claimed.started_at);

    store.heartbeat(&first, Some((3, 10))).await.unwrap();
    store.heartbeat(&first, None).await.unwrap();
    let beating = store.get(&first).await.unwrap().unwrap();
    assert_eq!(
        (beating.progress_done, beating.progress_total),
        (Some(3), Some(10))
    );
    assert!(beating.heartbeat_at >= claimed.heartbeat_at);

    match store.heartbeat(&second, None).await.unwrap_err() {
        StoreError::WrongStatus { status, .. } => assert_eq!(status, RunStatus::Queued),
        other => panic!("expected WrongStatus, got {other}"),
    }
    assert!(matches!(
        store.heartbeat("0000000000000000", None).await.unwrap_err(),
        StoreError::RunNotFound(_)
    ));
    assert!(matches!(
        store
            .heartbeat(&first, Some((u64::MAX, 1)))
            .await
            .unwrap_err(),
        StoreError::InvalidInput { .. }
    ));

    let mut done = result(json!({"acc": 0.75, "f1": 0.5}), None);
    done.output_dir = Some("/out/elsewhere".into());
    store.complete(&first, &done).await.unwrap();
    let completed = store.get(&first).await.unwrap().unwrap();
    assert_eq!(completed.status, RunStatus::Completed);
    assert_eq!(completed.primary_value, Some(0.75));
    assert_eq!(
        completed.metrics,
        Some(metrics(json!({"acc": 0.75, "f1": 0.5})))
    );
    assert_eq!(
        completed.details,
        Some(json!({"per_category": {"charts": 0.5}}))
    );
    assert_eq!(completed.duration_s, Some(12.5));
    assert_eq!(completed.samples_per_s, Some(4.0));
    assert_eq!(completed.output_dir.as_deref(), Some("/out/elsewhere"));
    assert!(completed.finished_at >= completed.started_at);
    assert!(completed.error.is_none());
    assert!(matches!(
        store.complete(&first, &done).await.unwrap_err(),
        StoreError::WrongStatus {
            status: RunStatus::Completed,
            ..
        }
    ));
    assert!(matches!(
        store.complete("ffffffffffffffff", &done).await.unwrap_err(),
        StoreError::RunNotFound(_)
    ));

    let claimed_second = store.claim("worker-2", "host-b").await.unwrap().unwrap();
    assert_eq!(claimed_second.id, second);
    assert!(store.claim("worker-3", "host-b").await.unwrap().is_none());
    store.fail(&second, "out of memory").await.unwrap();
    let failed = store.get(&second).await.unwrap().unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("out of memory"));
    assert!(failed.finished_at.is_some() && failed.metrics.is_none());
    assert!(matches!(
        store.fail(&second, "again").await.unwrap_err(),
        StoreError::WrongStatus {
            status: RunStatus::Failed,
            ..
        }
    ));

    assert_eq!(store.find_completed("k1").await.unwrap().unwrap().id, first);
    assert!(store.find_completed("k2").await.unwrap().is_none());
    assert!(store.find_completed("never").await.unwrap().is_none());

    let all_q = store
        .runs(&RunFilter {
            task: Some("q".into()),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    let ids: Vec<&RunId> = all_q.iter().map(|run| &run.id).collect();
    assert_eq!(ids, [&second, &first], "newest first");
    let failed_b = store
        .runs(&RunFilter {
            task: Some("q".into()),
            model: Some("b".into()),
            status: Some(RunStatus::Failed),
        })
        .await
        .unwrap();
    assert_eq!(failed_b.len(), 1);
    let completed_b = store
        .runs(&RunFilter {
            model: Some("b".into()),
            status: Some(RunStatus::Completed),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert!(completed_b.is_empty());
    assert_eq!(store.runs(&RunFilter::default()).await.unwrap().len(), 2);

    // Serialises for the CLI's JSON output.
    let printed = serde_json::to_value(&completed).unwrap();
    assert_eq!(printed["status"], "completed");
    assert_eq!(printed["source"], "run");
    assert_eq!(printed["id"], first.as_str());

    let bad = store.enqueue(&new_run("", "q", "k3")).await.unwrap_err();
    assert!(matches!(bad, StoreError::InvalidInput { .. }), "{bad}");
}

async fn leaderboard(store: &RunStore) {
    // Model a: 0.8 and twice 0.9 (the later one represents it); b ties a at 0.9, finished
    // earlier; c is third; d has no acc; e failed.
    finished_run(store, "a", "la1", json!({"acc": 0.8, "f1": 0.1}), 1_000).await;
    finished_run(store, "a", "la2", json!({"acc": 0.9, "f1": 0.2}), 2_000).await;
    let a_best = finished_run(store, "a", "la3", json!({"acc": 0.9, "f1": 0.3}), 3_000).await;
    let b_best = finished_run(store, "b", "lb1", json!({"acc": 0.9}), 2_500).await;
    finished_run(store, "b", "lb2", json!({"acc": 0.1}), 4_000).await;
    let c_best = finished_run(store, "c", "lc1", json!({"acc": 0.5, "f1": 0.9}), 1_000).await;
    finished_run(store, "d", "ld1", json!({"f1": 1.0}), 1_000).await;
    let e = store
        .start(&new_run("e", "t", "le1"), "cli", "h")
        .await
        .unwrap();
    store.fail(&e, "crashed").await.unwrap();

    let rows = store.leaderboard("t").await.unwrap();
    let summary: Vec<(u32, &str, &RunId, f64)> = rows
        .iter()
        .map(|row| (row.rank, row.model.as_str(), &row.run_id, row.value))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "a", &a_best, 0.9),
            (1, "b", &b_best, 0.9),
            (3, "c", &c_best, 0.5),
        ]
    );
    assert_eq!(rows[0].metric, "acc");
    assert_eq!(rows[0].other_metrics, metrics(json!({"f1": 0.3})));
    assert_eq!(rows[0].finished_at, Some(3_000));
    assert!(rows[1].other_metrics.is_empty());

    assert!(store.leaderboard("no-such-task").await.unwrap().is_empty());
    // A task with no registered record ranks by its runs' primary metric.
    let id = store
        .start(&new_run("a", "unregistered", "u1"), "cli", "h")
        .await
        .unwrap();
    store
        .complete(&id, &result(json!({"acc": 0.4}), None))
        .await
        .unwrap();
    let unregistered = store.leaderboard("unregistered").await.unwrap();
    assert_eq!(unregistered.len(), 1);
    assert_eq!(unregistered[0].value, 0.4);

    // Doubles that are NULL on one call and numbers on the next, over every pooled
    // connection: PostgreSQL once rejected the number on a statement prepared for the NULL.
    for i in 0..48 {
        let id = store
            .start(&new_run("a", "alternating", &format!("alt{i}")), "cli", "h")
            .await
            .unwrap();
        let metrics = if i % 2 == 0 {
            json!({"acc": 0.5})
        } else {
            json!({"other": 1.0})
        };
        store.complete(&id, &result(metrics, None)).await.unwrap();
    }
}

async fn requeue_stale(store: &RunStore) {
    let id = store
        .start(&new_run("s", "stale", "s1"), "cli", "host-s")
        .await
        .unwrap();
    store.heartbeat(&id, Some((1, 4))).await.unwrap();
    assert_eq!(
        store
            .requeue_stale(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        store.requeue_stale(Duration::from_millis(5)).await.unwrap(),
        1
    );
    let requeued = store.get(&id).await.unwrap().unwrap();
    assert_eq!(requeued.status, RunStatus::Queued);
    assert!(requeued.worker.is_none() && requeued.host.is_none());
    assert!(requeued.started_at.is_none() && requeued.heartbeat_at.is_none());
    assert!(requeued.progress_done.is_none());
    assert!(matches!(
        store.heartbeat(&id, None).await.unwrap_err(),
        StoreError::WrongStatus {
            status: RunStatus::Queued,
            ..
        }
    ));

    let reclaimed = store.claim("worker-9", "host-t").await.unwrap().unwrap();
    assert_eq!(reclaimed.id, id);
    assert_eq!(reclaimed.worker.as_deref(), Some("worker-9"));
    assert_eq!(
        store
            .requeue_stale(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    store.fail(&id, "given up").await.unwrap();
}

/// One queued run per identity: a second enqueue is refused, and stale running runs of an
/// identity already queued (or twice stale) are failed as superseded, never queued twice.
async fn one_queued_run_per_identity(store: &RunStore) {
    let first = store.enqueue(&new_run("q", "dup", "dup1")).await.unwrap();
    assert!(matches!(
        store
            .enqueue(&new_run("q", "dup", "dup1"))
            .await
            .unwrap_err(),
        StoreError::AlreadyQueued { .. }
    ));
    // Two stale running runs of another identity, and one of the queued identity.
    let old = store
        .start(&new_run("q", "dup", "dup2"), "w", "h")
        .await
        .unwrap();
    let new = store
        .start(&new_run("q", "dup", "dup2"), "w", "h")
        .await
        .unwrap();
    let shadow = store
        .start(&new_run("q", "dup", "dup1"), "w", "h")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        store.requeue_stale(Duration::from_millis(5)).await.unwrap(),
        1
    );
    let status = |id: RunId| async move { store.get(&id).await.unwrap().unwrap().status };
    // The newer of the two (by creation time, then id: both may share a millisecond) is
    // queued, the other failed as superseded.
    let pair = [status(old.clone()).await, status(new.clone()).await];
    assert!(
        pair == [RunStatus::Failed, RunStatus::Queued]
            || pair == [RunStatus::Queued, RunStatus::Failed],
        "{pair:?}"
    );
    assert_eq!(status(shadow.clone()).await, RunStatus::Failed);
    assert_eq!(status(first.clone()).await, RunStatus::Queued);
    // Once claimed, the identity may be queued again.
    while let Some(run) = store.claim("w", "h").await.unwrap() {
        store.fail(&run.id, "cleared").await.unwrap();
    }
    store.enqueue(&new_run("q", "dup", "dup1")).await.unwrap();
    while let Some(run) = store.claim("w", "h").await.unwrap() {
        store.fail(&run.id, "cleared").await.unwrap();
    }
}

async fn record_synced(store: &RunStore) {
    let new = new_run("old-model", "t", "synced-1");
    let mut found = result(json!({"acc": 0.95}), Some(500));
    found.output_dir = Some("/results/old".into());
    let id = store.record_synced(&new, &found).await.unwrap().unwrap();
    assert!(store.record_synced(&new, &found).await.unwrap().is_none());

    let synced = store.get(&id).await.unwrap().unwrap();
    assert_eq!(synced.status, RunStatus::Completed);
    assert_eq!(synced.source, RunSource::Sync);
    assert_eq!(synced.primary_value, Some(0.95));
    assert_eq!(synced.finished_at, Some(500));
    assert_eq!(synced.output_dir.as_deref(), Some("/results/old"));
    assert_eq!(
        store.find_completed("synced-1").await.unwrap().unwrap().id,
        id
    );

    // A key some ordinary run already completed is not backfilled either.
    assert!(store
        .record_synced(&new_run("a", "q", "k1"), &found)
        .await
        .unwrap()
        .is_none());
    // The synced run takes its place on the leaderboard.
    let rows = store.leaderboard("t").await.unwrap();
    assert_eq!((rows[0].model.as_str(), rows[0].rank), ("old-model", 1));
}

/// `claimers` workers, each with its own store (its own connections), drain `runs` queued runs:
/// every run must be claimed exactly once.
pub async fn concurrent_claims(url: &str, claimers: usize, runs: usize) {
    let store = RunStore::open(url).await.unwrap();
    let mut queued = BTreeSet::new();
    for index in 0..runs {
        let key = format!("concurrent-{index}");
        queued.insert(store.enqueue(&new_run("m", "c", &key)).await.unwrap());
    }

    let mut workers = Vec::new();
    for worker_index in 0..claimers {
        let url = url.to_owned();
        workers.push(tokio::spawn(async move {
            let worker = format!("worker-{worker_index}");
            let store = RunStore::open(&url).await.unwrap();
            let mut claimed = Vec::new();
            while let Some(run) = store.claim(&worker, "host").await.unwrap() {
                assert_eq!(run.worker.as_deref(), Some(worker.as_str()));
                store.heartbeat(&run.id, Some((1, 1))).await.unwrap();
                let done = result(json!({"acc": 1.0}), None);
                store.complete(&run.id, &done).await.unwrap();
                claimed.push(run.id);
            }
            store.close().await;
            (worker, claimed)
        }));
    }

    let mut claims: HashMap<RunId, Vec<String>> = HashMap::new();
    for handle in workers {
        let (worker, claimed) = handle.await.unwrap();
        for id in claimed {
            claims.entry(id).or_default().push(worker.clone());
        }
    }
    let twice: Vec<_> = claims.iter().filter(|(_, by)| by.len() > 1).collect();
    assert!(twice.is_empty(), "claimed more than once: {twice:?}");
    let claimed_ids: BTreeSet<RunId> = claims.keys().cloned().collect();
    assert_eq!(claimed_ids, queued, "every queued run claimed");

    for run in store.runs(&RunFilter::default()).await.unwrap() {
        assert_eq!(run.status, RunStatus::Completed, "{}", run.id);
        assert_eq!(run.worker.as_ref(), claims[&run.id].first());
    }
    store.close().await;
}
