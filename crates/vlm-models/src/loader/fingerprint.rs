//! What identifies a checkpoint's weights, so a rerun can tell whether it has evaluated
//! these exact weights before: the hub commit of a snapshot in the Hugging Face cache, else
//! a hash of the files that decide the outputs.

use std::path::Path;

use super::snapshot::Snapshot;
use crate::error::{ModelError, Result};

/// Files besides the weights that change what a model answers.
const DECIDING_FILES: [&str; 8] = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "chat_template.json",
    "preprocessor_config.json",
    "processor_config.json",
];

impl Snapshot {
    /// `rev:<commit>` for a snapshot inside a Hugging Face cache (`.../snapshots/<sha>/`),
    /// whose contents the commit fixes; otherwise `blake3:<hex>` over the weights and the
    /// files in [`DECIDING_FILES`], names included (reads every byte of the weights once).
    pub fn fingerprint(&self) -> Result<String> {
        if let Some(commit) = hub_commit(self.dir()) {
            return Ok(format!("rev:{commit}"));
        }
        let mut hasher = blake3::Hasher::new();
        let mut files: Vec<_> = DECIDING_FILES
            .iter()
            .map(|f| self.path(f))
            .filter(|p| p.is_file())
            .collect();
        files.extend(self.weight_files()?);
        for path in files {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            hasher.update(name.as_bytes());
            hasher.update(&[0]);
            let file = std::fs::File::open(&path).map_err(|e| ModelError::io(&path, e))?;
            hasher
                .update_reader(file)
                .map_err(|e| ModelError::io(&path, e))?;
        }
        Ok(format!("blake3:{}", hasher.finalize().to_hex()))
    }
}

/// The commit of a `<cache>/models--org--name/snapshots/<40 hex>` directory.
fn hub_commit(dir: &Path) -> Option<String> {
    let name = dir.file_name()?.to_str()?;
    let parent = dir.parent()?;
    let is_commit = name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit());
    let in_snapshots = parent.file_name()? == "snapshots"
        && parent
            .parent()?
            .file_name()?
            .to_str()?
            .starts_with("models--");
    (is_commit && in_snapshots).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures")
            .join(name)
    }

    #[test]
    fn local_weights_are_hashed_and_cache_snapshots_named_by_commit() {
        let a = Snapshot::open(fixture("llava-tiny"))
            .unwrap()
            .fingerprint()
            .unwrap();
        assert!(a.starts_with("blake3:"), "{a}");
        assert_eq!(
            a,
            Snapshot::open(fixture("llava-tiny"))
                .unwrap()
                .fingerprint()
                .unwrap()
        );
        let b = Snapshot::open(fixture("qwen2-vl-tiny"))
            .unwrap()
            .fingerprint()
            .unwrap();
        assert_ne!(a, b);

        // A copy with one weight byte changed is another model.
        let copy = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(fixture("llava-tiny")).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
        }
        let same = Snapshot::open(copy.path()).unwrap().fingerprint().unwrap();
        assert_eq!(same, a);
        let weights = copy.path().join("model.safetensors");
        let mut bytes = std::fs::read(&weights).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&weights, bytes).unwrap();
        assert_ne!(
            Snapshot::open(copy.path()).unwrap().fingerprint().unwrap(),
            a
        );

        let sha = "0123456789abcdef0123456789abcdef01234567";
        let cached = Path::new("/c/models--llava-hf--llava-1.5-7b-hf/snapshots").join(sha);
        assert_eq!(hub_commit(&cached).as_deref(), Some(sha));
        assert_eq!(hub_commit(&fixture("llava-tiny")), None);
    }
}
