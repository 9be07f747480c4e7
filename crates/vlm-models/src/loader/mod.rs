//! Finding a checkpoint: a local Hugging Face snapshot directory, or an alias / repo id
//! resolved through the Hugging Face cache (downloading when the hub is reachable).

mod aliases;
mod fingerprint;
mod hub;
mod options;
mod snapshot;
mod weights;

pub use aliases::{is_repo_id, known_aliases, resolve_repo_id, ALIASES};
pub use hub::{hf_cache, hub_offline};
pub use options::LoadOptions;
pub use snapshot::{ChatTemplateSource, Snapshot};
pub use weights::{KeyLayout, Weights};

use std::path::Path;

use crate::error::{ModelError, Result};
use hub::snapshot_for;

/// Turns what a user typed after `--model` into a snapshot directory: an existing directory
/// is used as is; anything else is an alias or a hub repo id.
pub fn resolve(model: &str) -> Result<Snapshot> {
    let path = Path::new(model);
    if path.is_dir() {
        return Snapshot::open(path);
    }
    match resolve_repo_id(model) {
        Some(repo) => snapshot_for(model, repo),
        None => Err(ModelError::NoSuchModel {
            path: path.to_path_buf(),
            aliases: known_aliases(),
        }),
    }
}
