//! A model as a run's identity sees it, computed the same way by a sweep (deciding what to
//! reuse) and by the `vlm-eval` child that records the run.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use vlm_eval::identity::{
    dataset_fingerprint, in_process_model, remote_model, run_identity, RunIdentity,
};
use vlm_eval::tasks::Task;
use vlm_models::{loader, LoadOptions};

/// What is evaluated: a model loaded here with the settings that change its answers, or a
/// model behind an OpenAI-compatible server.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSpec {
    InProcess {
        reference: String,
        device: String,
        dtype: String,
        max_model_len: Option<usize>,
        min_pixels: Option<u64>,
        max_pixels: Option<u64>,
        chat_template: Option<PathBuf>,
    },
    Remote {
        base_url: String,
        name: String,
    },
}

impl ModelSpec {
    /// The model's part of a run identity. Loaded models are resolved and fingerprinted
    /// (reading their weights once).
    pub fn identity(&self) -> Result<Value> {
        match self {
            ModelSpec::Remote { base_url, name } => Ok(remote_model(base_url, name)),
            ModelSpec::InProcess {
                reference,
                device,
                dtype,
                max_model_len,
                min_pixels,
                max_pixels,
                chat_template,
            } => {
                let snapshot = loader::resolve(reference)?;
                let fingerprint = snapshot
                    .fingerprint()
                    .with_context(|| format!("cannot fingerprint {reference}"))?;
                let options = LoadOptions::parse(device, dtype).map_err(anyhow::Error::msg)?;
                let template = match chat_template {
                    Some(path) => {
                        let text = std::fs::read(path).with_context(|| {
                            format!("cannot read chat template {}", path.display())
                        })?;
                        Value::String(blake3::hash(&text).to_hex().to_string())
                    }
                    None => Value::Null,
                };
                Ok(in_process_model(
                    &fingerprint,
                    json!({
                        "dtype": format!("{:?}", options.dtype).to_lowercase(),
                        "max_model_len": max_model_len,
                        "min_pixels": min_pixels,
                        "max_pixels": max_pixels,
                        "chat_template": template,
                    }),
                ))
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
) -> Result<Vec<RunIdentity>> {
    tasks
        .iter()
        .map(|task| {
            let dataset = dataset_fingerprint(task.as_ref(), data_dir)?;
            Ok(run_identity(model, task.as_ref(), &dataset, limit))
        })
        .collect()
}
