//! Finding a split's parquet shards: a local snapshot directory, the Hugging Face cache, or
//! the hub, in that order. A config's shards sit under its folder
//! (`ScienceQA-IMG/test-*.parquet`); only that folder is searched.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};

use super::error::DatasetError;
use super::spec::DatasetSpec;

/// Where the shards were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `--data-dir DIR`, as `DIR/<repo id>/`.
    DataDir(PathBuf),
    /// A snapshot in the Hugging Face cache.
    HfCache(PathBuf),
    /// Downloaded from the hub into the cache.
    Hub,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::DataDir(p) => write!(f, "{}", p.display()),
            Origin::HfCache(p) => write!(f, "{} (Hugging Face cache)", p.display()),
            Origin::Hub => write!(f, "the Hugging Face hub"),
        }
    }
}

/// A split's shards, in the order `datasets` concatenates them (sorted paths).
#[derive(Debug, Clone)]
pub struct Located {
    pub files: Vec<PathBuf>,
    pub origin: Origin,
    /// The dataset commit, where it can be known.
    pub revision: Option<String>,
}

/// Whether a path inside a snapshot holds rows of `split`, by the naming rules `datasets`
/// applies to repositories without a loading script: `<split>-00000-of-00004.parquet`,
/// `<split>.parquet`, or any file under a `<split>/` folder (the hub's parquet conversion).
fn is_split_shard(relative: &Path, split: &str) -> bool {
    if relative.extension().and_then(|e| e.to_str()) != Some("parquet") {
        return false;
    }
    let Some(stem) = relative.file_stem().and_then(|s| s.to_str()) else {
        return false;
    };
    let named = stem == split
        || stem
            .strip_prefix(split)
            .is_some_and(|rest| rest.starts_with(['-', '_', '.']));
    let in_folder = relative
        .parent()
        .is_some_and(|p| p.components().any(|c| c.as_os_str() == split));
    named || in_folder
}

/// Every shard of `split` under `root` (under its `config` folder, if given), sorted by
/// relative path.
pub fn shards_in(root: &Path, config: Option<&str>, split: &str) -> Vec<PathBuf> {
    let root = match config {
        Some(c) => root.join(c),
        None => root.to_path_buf(),
    };
    let root = root.as_path();
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if path.is_dir() {
                if !hidden {
                    stack.push(path);
                }
            } else if let Ok(rel) = path.strip_prefix(root) {
                if !hidden && is_split_shard(rel, split) {
                    found.push(path);
                }
            }
        }
    }
    found.sort();
    found
}

/// The commit `huggingface-cli download --local-dir` records next to each file.
fn local_dir_revision(root: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(root).ok()?;
    let meta = root
        .join(".cache/huggingface/download")
        .join(format!("{}.metadata", rel.display()));
    let text = std::fs::read_to_string(meta).ok()?;
    let first = text.lines().next()?.trim();
    (first.len() == 40 && first.chars().all(|c| c.is_ascii_hexdigit())).then(|| first.into())
}

/// The snapshot `refs/main` points at in the cache, else the only snapshot there is.
fn cached_snapshot(cache: &Path, repo: &str) -> Option<(PathBuf, String)> {
    let folder = cache.join(format!("datasets--{}", repo.replace('/', "--")));
    if let Ok(rev) = std::fs::read_to_string(folder.join("refs/main")) {
        let rev = rev.trim().to_string();
        let dir = folder.join("snapshots").join(&rev);
        if dir.is_dir() {
            return Some((dir, rev));
        }
    }
    let mut snapshots: Vec<PathBuf> = std::fs::read_dir(folder.join("snapshots"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    if snapshots.len() != 1 {
        return None;
    }
    let dir = snapshots.pop()?;
    let rev = dir.file_name()?.to_string_lossy().into_owned();
    Some((dir, rev))
}

/// Why the hub could not provide a split (shown in the "looked in" list).
#[derive(Debug, thiserror::Error)]
enum DownloadError {
    #[error(transparent)]
    Hub(#[from] ApiError),
    #[error("{repo} has no parquet files for split `{split}`")]
    NoShards { repo: String, split: String },
}

fn download(spec: &DatasetSpec, cache: Cache) -> Result<Located, DownloadError> {
    let api = ApiBuilder::from_cache(cache).with_progress(true).build()?;
    let api_repo = api.repo(Repo::new(spec.repo.clone(), RepoType::Dataset));
    let info = api_repo.info()?;
    let in_config = |f: &str| -> Option<String> {
        match &spec.config {
            Some(c) => f.strip_prefix(&format!("{c}/")).map(str::to_string),
            None => Some(f.to_string()),
        }
    };
    let mut names: Vec<&str> = info
        .siblings
        .iter()
        .map(|s| s.rfilename.as_str())
        .filter(|f| in_config(f).is_some_and(|rel| is_split_shard(Path::new(&rel), &spec.split)))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(DownloadError::NoShards {
            repo: spec.describe(),
            split: spec.split.clone(),
        });
    }
    let files = names
        .iter()
        .map(|name| api_repo.get(name))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Located {
        files,
        origin: Origin::Hub,
        revision: Some(info.sha),
    })
}

/// `data_dir/<repo>/`, then the Hugging Face cache; where it looked goes to `looked`.
fn locate_local(
    repo: &str,
    spec: &DatasetSpec,
    data_dir: Option<&Path>,
    cache: &Cache,
    looked: &mut Vec<String>,
) -> Option<Located> {
    let (config, split) = (spec.config.as_deref(), spec.split.as_str());
    let shards = |root: &Path| shards_in(root, config, split);
    let place = |root: &Path| match config {
        Some(c) => root.join(c).display().to_string(),
        None => root.display().to_string(),
    };
    if let Some(dir) = data_dir {
        let root = dir.join(repo);
        let files = shards(&root);
        if !files.is_empty() {
            let revision = local_dir_revision(&root, &files[0]);
            return Some(Located {
                files,
                origin: Origin::DataDir(root),
                revision,
            });
        }
        looked.push(format!("{} (no {split} shards)", place(&root)));
    }
    match cached_snapshot(cache.path(), repo) {
        Some((dir, rev)) => {
            let files = shards(&dir);
            if !files.is_empty() {
                return Some(Located {
                    files,
                    origin: Origin::HfCache(dir),
                    revision: Some(rev),
                });
            }
            looked.push(format!("{} (no {split} shards)", place(&dir)));
        }
        None => looked.push(format!(
            "{} (not cached)",
            cache
                .path()
                .join(format!("datasets--{}", repo.replace('/', "--")))
                .display()
        )),
    }
    None
}

/// Finds the split `spec` names: `data_dir/<repo>/[<config>/]`, then the Hugging Face
/// cache (each also under the spec's aliases, the same data published under other ids),
/// then the hub for its repository (unless `HF_HUB_OFFLINE` is set).
pub fn locate(spec: &DatasetSpec, data_dir: Option<&Path>) -> Result<Located, DatasetError> {
    let mut looked = Vec::new();
    let cache = vlm_models::loader::hf_cache();
    for id in spec.ids() {
        if let Some(found) = locate_local(id, spec, data_dir, &cache, &mut looked) {
            return Ok(found);
        }
    }
    if vlm_models::loader::hub_offline() {
        looked.push("the hub (skipped: HF_HUB_OFFLINE is set)".into());
    } else {
        match download(spec, cache) {
            Ok(found) => return Ok(found),
            Err(reason) => looked.push(format!("the hub ({reason})")),
        }
    }
    Err(DatasetError::NotFound {
        repo: spec.repo.clone(),
        config: spec.config.clone(),
        split: spec.split.clone(),
        looked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_shards_by_the_datasets_naming_rules() {
        let yes = [
            "data/test-00000-of-00004.parquet",
            "test.parquet",
            "data/test_part.parquet",
            "default/test/0000.parquet",
            "Accounting/test-00000-of-00001.parquet",
        ];
        let no = [
            "data/testing-00000-of-00001.parquet",
            "data/validation-00000-of-00001.parquet",
            "data/test-00000-of-00001.arrow",
            "contest-00000.parquet",
        ];
        for p in yes {
            assert!(is_split_shard(Path::new(p), "test"), "{p}");
        }
        for p in no {
            assert!(!is_split_shard(Path::new(p), "test"), "{p}");
        }
    }

    #[test]
    fn data_dir_shards_are_sorted_and_other_splits_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("org/set/data");
        std::fs::create_dir_all(&data).unwrap();
        for name in [
            "test-00001-of-00002.parquet",
            "test-00000-of-00002.parquet",
            "dev-00000-of-00001.parquet",
        ] {
            std::fs::write(data.join(name), b"").unwrap();
        }
        let found = locate(&DatasetSpec::new("org/set", "test"), Some(dir.path())).unwrap();
        let names: Vec<_> = found
            .files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["test-00000-of-00002.parquet", "test-00001-of-00002.parquet"]
        );
        assert_eq!(found.origin, Origin::DataDir(dir.path().join("org/set")));
    }

    #[test]
    fn a_config_reads_only_its_own_folder() {
        let dir = tempfile::tempdir().unwrap();
        for (config, name) in [
            ("ScienceQA-IMG", "test-00000-of-00001.parquet"),
            ("ScienceQA-FULL", "test-00000-of-00001.parquet"),
            ("ScienceQA-FULL", "validation-00000-of-00001.parquet"),
        ] {
            let folder = dir.path().join("lmms-lab/ScienceQA").join(config);
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join(name), b"").unwrap();
        }
        let spec = DatasetSpec {
            config: Some("ScienceQA-IMG".into()),
            ..DatasetSpec::new("lmms-lab/ScienceQA", "test")
        };
        let found = locate(&spec, Some(dir.path())).unwrap();
        assert_eq!(found.files.len(), 1);
        assert!(found.files[0].ends_with("ScienceQA-IMG/test-00000-of-00001.parquet"));

        let missing = DatasetSpec {
            config: Some("ScienceQA-NONE".into()),
            ..spec
        };
        let mut looked = Vec::new();
        let cache = Cache::new(dir.path().join("cache"));
        let found = locate_local(
            "lmms-lab/ScienceQA",
            &missing,
            Some(dir.path()),
            &cache,
            &mut looked,
        );
        assert!(found.is_none());
        assert!(
            looked[0].ends_with("lmms-lab/ScienceQA/ScienceQA-NONE (no test shards)"),
            "{looked:?}"
        );
    }
}
