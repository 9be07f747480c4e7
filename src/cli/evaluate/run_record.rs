//! What `--db` records of an evaluation: the model spec, its identity per task, and the
//! model as a sweep entry a worker can run again.

use anyhow::{Context, Result};
use serde_json::{json, Value};
use vlm_eval::identity::{task_identities, with_judge, ModelSpec};
use vlm_eval::sweep::ModelEntry;
use vlm_eval::tasks::Task;
use vlm_eval::RunOptions;
use vlm_runs::{ModelRecord, RunId};

use super::args::EvaluateArgs;
use crate::cli::eval_recording::Recorder;
use crate::cli::store::Store;

/// What `--db` records an evaluation as: the model spec and the run's settings.
pub(super) fn model_spec(args: &EvaluateArgs) -> ModelSpec {
    if let Some(command) = &args.deploy {
        return ModelSpec::Deployed {
            command: command.clone(),
            model: args.model.model.clone(),
        };
    }
    if !args.base_url.is_empty() {
        return ModelSpec::Remote {
            base_urls: args.base_url.clone(),
            name: args.model.model.clone(),
        };
    }
    ModelSpec::InProcess {
        reference: args.model.model.clone(),
        device: args.model.device.clone(),
        dtype: args.model.dtype.clone(),
        quantize: args.model.quantize.clone(),
        max_model_len: args.engine.max_model_len,
        min_pixels: args.min_pixels,
        max_pixels: args.max_pixels,
        chat_template: args.model.chat_template.clone(),
    }
}

/// This evaluation as a sweep's `[[models]]` entry: the model (a directory made absolute)
/// or the server, with the engine settings it ran with.
pub(super) fn model_entry(args: &EvaluateArgs, name: &str) -> ModelEntry {
    let local = |m: &str| {
        let path = std::path::Path::new(m);
        if path.is_dir() {
            std::path::absolute(path).map_or_else(|_| m.to_string(), |p| p.display().to_string())
        } else {
            m.to_string()
        }
    };
    let deployed = args.deploy.is_some();
    let remote = !args.base_url.is_empty() || deployed;
    ModelEntry {
        name: name.to_string(),
        model: if deployed {
            Some(args.model.model.clone())
        } else {
            (!remote).then(|| local(&args.model.model))
        },
        // A sweep entry holds one server; replicas are a command-line matter.
        base_url: args.base_url.first().cloned(),
        deploy: args.deploy.clone(),
        api_key_env: None,
        concurrency: remote.then_some(args.concurrency),
        dtype: (!remote).then(|| args.model.dtype.clone()),
        quantize: args.model.quantize.clone().filter(|_| !remote),
        kv_cache_gb: (!remote).then_some(args.engine.kv_cache_gb),
        max_model_len: args.engine.max_model_len.filter(|_| !remote),
        max_num_seqs: (!remote).then_some(args.engine.max_num_seqs),
        min_pixels: args.min_pixels.filter(|_| !remote),
        max_pixels: args.max_pixels.filter(|_| !remote),
        devices: 1,
    }
}

/// Starts recording in the runs store, when `--db` names one.
pub(super) fn recorder(
    args: &EvaluateArgs,
    tasks: &[Box<dyn Task>],
    options: &RunOptions,
) -> Result<Option<Recorder>> {
    let Some(url) = &args.db else {
        return Ok(None);
    };
    let store = Store::open(url)?;
    let spec = model_spec(args);
    let identities = task_identities(
        &with_judge(
            with_generation(spec.identity()?, args.max_new_tokens),
            options.judge.as_ref().map(|j| j.model.as_str()),
        ),
        tasks,
        options.data_dir.as_deref(),
        options.limit,
    )?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| args.model.model.clone());
    let (reference, base_url) = match &spec {
        ModelSpec::Remote { base_urls, name } => (Some(name.clone()), base_urls.first().cloned()),
        ModelSpec::Deployed { model, .. } => (Some(model.clone()), None),
        ModelSpec::InProcess { reference, .. } => (Some(reference.clone()), None),
    };
    let model = ModelRecord {
        name: name.clone(),
        display_name: name.clone(),
        reference,
        base_url,
        // A sweep entry a worker can run again (queued from the dashboard).
        settings: serde_json::to_value(model_entry(args, &name))?,
        params_b: None,
        created_at: 0,
    };
    let config = json!({
        "data_dir": options.data_dir,
        "limit": options.limit,
        "args": std::env::args().skip(1).collect::<Vec<_>>(),
    });
    let claimed = args
        .claimed_runs
        .iter()
        .map(|c| {
            c.split_once('=')
                .map(|(t, id)| (t.to_string(), RunId(id.to_string())))
                .with_context(|| format!("--claimed-runs: expected task=id, got {c:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let output_dir = options.output_dir.display().to_string();
    Ok(Some(Recorder::start(
        store,
        model,
        tasks,
        &identities,
        &config,
        &output_dir,
        &claimed,
    )?))
}

/// An identity with the generation override, where one is given (so runs without it keep
/// the identities they had).
pub(super) fn with_generation(mut identity: Value, max_new_tokens: Option<usize>) -> Value {
    if let Some(n) = max_new_tokens {
        identity["generation"] = json!({"max_new_tokens": n});
    }
    identity
}
