//! The Hugging Face cache and hub: where an alias or repo id's snapshot is, downloading it
//! when the hub is reachable and not offline.

use std::path::PathBuf;

use hf_hub::{api::sync::ApiBuilder, Cache, Repo};

use super::snapshot::Snapshot;
use crate::error::{ModelError, Result};

/// Files a snapshot may need; the hub listing decides which of them exist.
fn wanted(file: &str) -> bool {
    file.ends_with(".safetensors")
        || matches!(
            file,
            "config.json"
                | "generation_config.json"
                | "model.safetensors.index.json"
                | "tokenizer.json"
                | "tokenizer_config.json"
                | "special_tokens_map.json"
                | "preprocessor_config.json"
                | "processor_config.json"
                | "chat_template.json"
                | "chat_template.jinja"
        )
}

/// The hub cache as huggingface_hub finds it: `HF_HUB_CACHE`, else `HF_HOME/hub`, else
/// `~/.cache/huggingface/hub` (hf-hub's own `Cache::from_env` skips `HF_HUB_CACHE`).
pub fn hf_cache() -> Cache {
    match std::env::var_os("HF_HUB_CACHE") {
        Some(dir) if !dir.is_empty() => Cache::new(PathBuf::from(dir)),
        _ => Cache::from_env(),
    }
}

/// `HF_HUB_OFFLINE` set to anything but `0`: nothing may be downloaded.
pub fn hub_offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| !v.is_empty() && v != "0")
}

pub(super) fn snapshot_for(alias: &str, repo: &str) -> Result<Snapshot> {
    let cache = hf_cache();
    if let Some(config) = cache.model(repo.to_string()).get("config.json") {
        if let Some(dir) = config.parent() {
            return Snapshot::open(dir);
        }
    }
    let unreachable = |reason: String| ModelError::HubUnreachable {
        alias: alias.to_string(),
        repo: repo.to_string(),
        reason,
    };
    if hub_offline() {
        return Err(unreachable(format!(
            "HF_HUB_OFFLINE is set; looked in {}",
            cache.path().display()
        )));
    }
    let api = ApiBuilder::from_cache(cache)
        .with_progress(true)
        .build()
        .map_err(|e| unreachable(e.to_string()))?;
    let api_repo = api.repo(Repo::model(repo.to_string()));
    let info = api_repo.info().map_err(|e| unreachable(e.to_string()))?;
    let mut config: Option<PathBuf> = None;
    for sibling in info.siblings.iter().filter(|s| wanted(&s.rfilename)) {
        tracing::info!(file = %sibling.rfilename, repo, "downloading");
        let path = api_repo
            .get(&sibling.rfilename)
            .map_err(|e| unreachable(e.to_string()))?;
        if sibling.rfilename == "config.json" {
            config = Some(path);
        }
    }
    let dir = config
        .as_deref()
        .and_then(|p| p.parent())
        .ok_or_else(|| unreachable(format!("{repo} has no config.json")))?;
    Snapshot::open(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test for everything that sets the hub environment variables, so no other test
    /// sees them change.
    #[test]
    fn aliases_resolve_through_the_cache_and_fail_clearly_offline() {
        let cache = std::env::temp_dir().join(format!("vlm-hf-cache-{}", std::process::id()));
        std::fs::create_dir_all(&cache).unwrap();
        // SAFETY: this is the only test in the crate that reads or writes these variables.
        unsafe {
            std::env::set_var("HF_HUB_CACHE", &cache);
            std::env::set_var("HF_HUB_OFFLINE", "1");
        }
        let err = super::super::resolve("llava-1.5-7b").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ModelError::HubUnreachable { .. }), "{msg}");
        assert!(
            msg.contains("llava-hf/llava-1.5-7b-hf") && msg.contains("HF_HUB_OFFLINE"),
            "{msg}"
        );

        // The cache layout huggingface_hub writes: refs/main names the snapshot folder.
        let repo = cache.join("models--llava-hf--llava-1.5-7b-hf");
        let snapshot = repo.join("snapshots/0123abcd");
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
        std::fs::write(snapshot.join("config.json"), r#"{"model_type": "llava"}"#).unwrap();
        let found = super::super::resolve("llava-1.5-7b").unwrap();
        assert_eq!(found.dir(), snapshot.as_path());
        std::fs::remove_dir_all(&cache).ok();
    }
}
