//! What makes two evaluation runs the same, so a rerun reuses a finished one: the model
//! (its weights' fingerprint, or the server and model name), the engine settings that
//! change answers, the task and its version, the dataset's revision, and the limit. Computed
//! the same way by a sweep or queue (deciding what to reuse), the `vlm-eval` child that
//! records the run, and the dashboard queueing one.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use vlm_models::{loader, LoadOptions};

use crate::dataset::{locate, DatasetError};
use crate::tasks::Task;

/// A run's identity and the key it is stored under (a hash of its canonical JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct RunIdentity {
    pub value: Value,
    pub key: String,
}

/// The identity of one task's run of `model` (see [`in_process_model`] and
/// [`remote_model`]) on a dataset with fingerprint `dataset`.
pub fn run_identity(
    model: &Value,
    task: &dyn Task,
    dataset: &str,
    limit: Option<usize>,
) -> RunIdentity {
    // The judge (see [`with_judge`]) belongs to the identities of the tasks that use one.
    let mut model = model.clone();
    let judge = model.as_object_mut().and_then(|m| m.remove("judge"));
    let mut value = json!({
        "model": model,
        "task": task.name(),
        "task_version": task.version(),
        "dataset": dataset,
        "limit": limit,
    });
    // Only for tasks read from files, so built-in tasks keep the identities they had.
    if let Some(text) = task.definition() {
        value["task_definition"] = json!(blake3::hash(text.as_bytes()).to_hex().to_string());
    }
    // A judge that only adds a figure beside the metrics (MMMU) leaves the identity alone.
    let judged = !task.judge_optional();
    if let (Some(prompt), Some(judge), true) = (task.judge_prompt_version(), judge, judged) {
        value["judge"] = json!({"model": judge, "prompt": prompt});
    }
    let key = blake3::hash(canonical(&value).to_string().as_bytes())
        .to_hex()
        .to_string();
    RunIdentity { value, key }
}

/// A model loaded here: its fingerprint and the settings that change its answers (the
/// resolved dtype, the context limit, Qwen2-VL's pixel budget, a replaced chat template).
/// Batch sizes, KV cache size and devices do not change answers and are left out.
pub fn in_process_model(fingerprint: &str, settings: Value) -> Value {
    json!({"weights": fingerprint, "settings": settings})
}

/// `model` with the judge model a run is given: part of the identity of the tasks that use
/// a judge (a MathVista run judged by another model is another run), of no other.
pub fn with_judge(mut model: Value, judge_model: Option<&str>) -> Value {
    if let (Some(judge), Some(m)) = (judge_model, model.as_object_mut()) {
        m.insert("judge".into(), json!(judge));
    }
    model
}

/// A model behind an OpenAI-compatible server: what can be known is where and what name.
pub fn remote_model(base_url: &str, name: &str) -> Value {
    json!({"base_url": base_url.trim_end_matches('/'), "name": name})
}

/// The revision of the task's dataset where it is known (a hub or cache snapshot), else a
/// hash of its shard files' contents.
pub fn dataset_fingerprint(
    task: &dyn Task,
    data_dir: Option<&Path>,
) -> Result<String, DatasetError> {
    let located = locate(&task.dataset(), data_dir)?;
    if let Some(revision) = located.revision {
        return Ok(format!("rev:{revision}"));
    }
    let mut hasher = blake3::Hasher::new();
    for file in &located.files {
        let unreadable = |e: std::io::Error| DatasetError::Parquet {
            file: file.clone(),
            reason: e.to_string(),
        };
        let f = std::fs::File::open(file).map_err(unreadable)?;
        hasher.update_reader(f).map_err(unreadable)?;
    }
    Ok(format!("blake3:{}", hasher.finalize().to_hex()))
}

/// Why a run's identity cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Model(#[from] vlm_models::ModelError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("cannot read chat template {}: {error}", path.display())]
    ChatTemplate {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
}

/// What is evaluated: a model loaded here with the settings that change its answers, or a
/// model behind an OpenAI-compatible server.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSpec {
    InProcess {
        reference: String,
        device: String,
        dtype: String,
        quantize: Option<String>,
        max_model_len: Option<usize>,
        min_pixels: Option<u64>,
        max_pixels: Option<u64>,
        chat_template: Option<PathBuf>,
    },
    /// Servers of the model (replicas when several), reached at their URLs.
    Remote {
        base_urls: Vec<String>,
        name: String,
    },
    /// A server this run starts with `command` (`{port}` and `{model}` unsubstituted).
    Deployed { command: String, model: String },
}

impl ModelSpec {
    /// The model's part of a run identity. Loaded models are resolved and fingerprinted
    /// (reading their weights once).
    pub fn identity(&self) -> Result<Value, IdentityError> {
        match self {
            ModelSpec::Remote { base_urls, name } => Ok(match base_urls.as_slice() {
                [one] => remote_model(one, name),
                many => {
                    let mut urls: Vec<&str> =
                        many.iter().map(|u| u.trim_end_matches('/')).collect();
                    urls.sort();
                    json!({"base_urls": urls, "name": name})
                }
            }),
            ModelSpec::Deployed { command, model } => {
                Ok(json!({"deploy": command, "model": model}))
            }
            ModelSpec::InProcess {
                reference,
                device,
                dtype,
                quantize,
                max_model_len,
                min_pixels,
                max_pixels,
                chat_template,
            } => {
                let snapshot = loader::resolve(reference)?;
                let fingerprint = snapshot.fingerprint()?;
                let options =
                    LoadOptions::parse(device, dtype)?.with_quantize(quantize.as_deref())?;
                let template = match chat_template {
                    Some(path) => {
                        let text =
                            std::fs::read(path).map_err(|error| IdentityError::ChatTemplate {
                                path: path.clone(),
                                error,
                            })?;
                        Value::String(blake3::hash(&text).to_hex().to_string())
                    }
                    None => Value::Null,
                };
                let mut settings = json!({
                    "dtype": format!("{:?}", options.dtype).to_lowercase(),
                    "max_model_len": max_model_len,
                    "min_pixels": min_pixels,
                    "max_pixels": max_pixels,
                    "chat_template": template,
                });
                // Only when set, so unquantized runs keep the identities they had.
                if let Some(q) = options.quantize {
                    settings["quantize"] = json!(q.name());
                }
                Ok(in_process_model(&fingerprint, settings))
            }
        }
    }
}

/// Each task's run identity for `model` (see [`ModelSpec::identity`]).
pub fn task_identities(
    model: &Value,
    tasks: &[Box<dyn Task>],
    data_dir: Option<&std::path::Path>,
    limit: Option<usize>,
) -> Result<Vec<RunIdentity>, IdentityError> {
    tasks
        .iter()
        .map(|task| {
            let dataset = dataset_fingerprint(task.as_ref(), data_dir)?;
            Ok(run_identity(model, task.as_ref(), &dataset, limit))
        })
        .collect()
}

/// The value with every object's keys sorted, so equal identities hash equally whatever
/// order they were built in.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let sorted: Map<String, Value> = keys
                .into_iter()
                .map(|k| (k.clone(), canonical(&map[k])))
                .collect();
            Value::Object(sorted)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks;

    #[test]
    fn equal_identities_share_a_key_and_any_difference_changes_it() {
        let mme = tasks::by_name("mme").unwrap();
        let mmmu = tasks::by_name("mmmu_val").unwrap();
        // A judge changes the identity of a judged task, and of no other.
        let mathvista = tasks::by_name("mathvista_testmini_cot").unwrap();
        let plain = json!({"weights": "w"});
        let judged = with_judge(plain.clone(), Some("judge-a"));
        let other = with_judge(plain.clone(), Some("judge-b"));
        // Nor of MMMU, whose judge only adds a figure beside its metrics.
        for task in [&mme, &mmmu] {
            assert_eq!(
                run_identity(&plain, task.as_ref(), "rev:1", None).key,
                run_identity(&judged, task.as_ref(), "rev:1", None).key
            );
        }
        let a = run_identity(&judged, mathvista.as_ref(), "rev:1", None);
        assert_ne!(
            a.key,
            run_identity(&other, mathvista.as_ref(), "rev:1", None).key
        );
        assert_ne!(
            a.key,
            run_identity(&plain, mathvista.as_ref(), "rev:1", None).key
        );
        let model = in_process_model("blake3:aa", json!({"dtype": "f32", "max_model_len": null}));
        let reordered =
            in_process_model("blake3:aa", json!({"max_model_len": null, "dtype": "f32"}));
        let a = run_identity(&model, mme.as_ref(), "rev:1", Some(4));
        assert_eq!(
            a.key,
            run_identity(&reordered, mme.as_ref(), "rev:1", Some(4)).key
        );
        for other in [
            run_identity(&model, mmmu.as_ref(), "rev:1", Some(4)),
            run_identity(&model, mme.as_ref(), "rev:2", Some(4)),
            run_identity(&model, mme.as_ref(), "rev:1", None),
            run_identity(
                &in_process_model("blake3:ab", json!({"dtype": "f32", "max_model_len": null})),
                mme.as_ref(),
                "rev:1",
                Some(4),
            ),
            run_identity(
                &in_process_model("blake3:aa", json!({"dtype": "bf16", "max_model_len": null})),
                mme.as_ref(),
                "rev:1",
                Some(4),
            ),
            run_identity(
                &remote_model("http://h/v1/", "m"),
                mme.as_ref(),
                "rev:1",
                Some(4),
            ),
        ] {
            assert_ne!(a.key, other.key, "{}", other.value);
        }
        assert_eq!(
            remote_model("http://h/v1/", "m"),
            remote_model("http://h/v1", "m")
        );
        // Replicas are one model whatever order they are given in.
        let replicas = |urls: &[&str]| {
            ModelSpec::Remote {
                base_urls: urls.iter().map(|u| u.to_string()).collect(),
                name: "m".into(),
            }
            .identity()
            .unwrap()
        };
        assert_eq!(
            replicas(&["http://a/v1", "http://b/v1/"]),
            replicas(&["http://b/v1", "http://a/v1"])
        );
        assert_ne!(
            replicas(&["http://a/v1", "http://b/v1"]),
            replicas(&["http://a/v1"])
        );
    }

    #[test]
    fn local_datasets_are_fingerprinted_by_content() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../eval-datasets");
        let mme = tasks::by_name("mme").unwrap();
        let a = dataset_fingerprint(mme.as_ref(), Some(&data)).unwrap();
        assert!(a.starts_with("blake3:") || a.starts_with("rev:"), "{a}");
        assert_eq!(a, dataset_fingerprint(mme.as_ref(), Some(&data)).unwrap());
        let mmmu = tasks::by_name("mmmu_val").unwrap();
        assert_ne!(a, dataset_fingerprint(mmmu.as_ref(), Some(&data)).unwrap());
    }
}
