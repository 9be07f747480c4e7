//! A Hugging Face snapshot directory and the files in it: config, weights, tokenizer,
//! processor and chat template, generation settings.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::aliases::known_aliases;
use crate::error::{ModelError, Result};

/// A Hugging Face snapshot directory: config.json, safetensors weights (single or sharded),
/// tokenizer.json, and the processor / template / generation files beside them.
#[derive(Debug, Clone)]
pub struct Snapshot {
    dir: PathBuf,
    config: Value,
}

/// Where a chat template was found, for logs and error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatTemplateSource {
    Jinja,
    ChatTemplateJson,
    TokenizerConfig,
}

impl Snapshot {
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(ModelError::NoSuchModel {
                path: dir,
                aliases: known_aliases(),
            });
        }
        let config = read_json(&dir, "config.json")?.ok_or_else(|| ModelError::MissingFile {
            dir: dir.clone(),
            file: "config.json".into(),
            hint: "every checkpoint has one",
        })?;
        Ok(Self { dir, config })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &Value {
        &self.config
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    pub fn read_json(&self, file: &str) -> Result<Option<Value>> {
        read_json(&self.dir, file)
    }

    fn missing(&self, file: &str, hint: &'static str) -> ModelError {
        ModelError::MissingFile {
            dir: self.dir.clone(),
            file: file.into(),
            hint,
        }
    }

    /// The safetensors files, in the order the shard index lists them.
    pub fn weight_files(&self) -> Result<Vec<PathBuf>> {
        const HINT: &str = "weights must be safetensors: model.safetensors, or shards listed in model.safetensors.index.json";
        if let Some(index) = self.read_json("model.safetensors.index.json")? {
            let map = index
                .get("weight_map")
                .and_then(Value::as_object)
                .ok_or_else(|| {
                    ModelError::invalid(
                        self.path("model.safetensors.index.json"),
                        "no weight_map object",
                    )
                })?;
            let mut files: Vec<String> = Vec::new();
            for file in map.values().filter_map(Value::as_str) {
                if !files.iter().any(|f| f == file) {
                    files.push(file.to_string());
                }
            }
            files.sort();
            return files
                .into_iter()
                .map(|f| {
                    let path = self.path(&f);
                    if path.is_file() {
                        Ok(path)
                    } else {
                        Err(self.missing(&f, "a shard named in model.safetensors.index.json"))
                    }
                })
                .collect();
        }
        let single = self.path("model.safetensors");
        if single.is_file() {
            return Ok(vec![single]);
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(|e| ModelError::io(&self.dir, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        found.sort();
        if found.is_empty() {
            return Err(self.missing("model.safetensors", HINT));
        }
        Ok(found)
    }

    pub fn tokenizer_path(&self) -> Result<PathBuf> {
        let path = self.path("tokenizer.json");
        if path.is_file() {
            Ok(path)
        } else {
            Err(self.missing(
                "tokenizer.json",
                "a fast tokenizer is required; save one with transformers' AutoTokenizer.save_pretrained",
            ))
        }
    }

    pub fn tokenizer_config(&self) -> Result<Option<Value>> {
        self.read_json("tokenizer_config.json")
    }

    pub fn generation_config(&self) -> Result<Option<Value>> {
        self.read_json("generation_config.json")
    }

    /// `processor_config.json` as transformers 5 writes it (processor-level settings plus an
    /// `image_processor` section), if present.
    pub fn processor_config(&self) -> Result<Option<Value>> {
        self.read_json("processor_config.json")
    }

    /// The image processor settings: the hub's `preprocessor_config.json`, or the
    /// `image_processor` section of transformers 5's `processor_config.json`.
    pub fn image_processor_config(&self) -> Result<(PathBuf, Value)> {
        if let Some(v) = self.read_json("preprocessor_config.json")? {
            return Ok((self.path("preprocessor_config.json"), v));
        }
        if let Some(v) = self
            .processor_config()?
            .and_then(|mut p| p.get_mut("image_processor").map(Value::take))
        {
            return Ok((self.path("processor_config.json"), v));
        }
        Err(self.missing(
            "preprocessor_config.json",
            "or processor_config.json with an image_processor section: the image processor settings",
        ))
    }

    /// The checkpoint's chat template, looked up where transformers looks: chat_template.jinja,
    /// chat_template.json, then tokenizer_config.json (a string, or a list of named templates
    /// of which "default" is used).
    pub fn chat_template(&self) -> Result<Option<(String, ChatTemplateSource)>> {
        let jinja = self.path("chat_template.jinja");
        if jinja.is_file() {
            let text = std::fs::read_to_string(&jinja).map_err(|e| ModelError::io(&jinja, e))?;
            return Ok(Some((text, ChatTemplateSource::Jinja)));
        }
        if let Some(v) = self.read_json("chat_template.json")? {
            let path = self.path("chat_template.json");
            let t = template_value(v.get("chat_template"))
                .ok_or_else(|| ModelError::invalid(path, "no chat_template string"))?;
            return Ok(Some((t, ChatTemplateSource::ChatTemplateJson)));
        }
        if let Some(v) = self.tokenizer_config()? {
            if let Some(t) = template_value(v.get("chat_template")) {
                return Ok(Some((t, ChatTemplateSource::TokenizerConfig)));
            }
        }
        Ok(None)
    }

    /// End-of-sequence token ids: generation_config.json's `eos_token_id` (one id or a list),
    /// else config.json's (top level or `text_config`).
    pub fn eos_token_ids(&self) -> Result<Vec<u32>> {
        let from = |v: Option<&Value>| -> Option<Vec<u32>> {
            match v? {
                Value::Number(n) => Some(vec![u32::try_from(n.as_u64()?).ok()?]),
                Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_u64().and_then(|n| u32::try_from(n).ok()))
                    .collect(),
                _ => None,
            }
        };
        if let Some(gen) = self.generation_config()? {
            if let Some(ids) = from(gen.get("eos_token_id")) {
                return Ok(ids);
            }
        }
        let text = self.config.get("text_config");
        Ok(from(self.config.get("eos_token_id"))
            .or_else(|| from(text.and_then(|t| t.get("eos_token_id"))))
            .unwrap_or_default())
    }
}

fn template_value(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Array(named) => named
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .and_then(|t| t.get("template"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}

fn read_json(dir: &Path, file: &str) -> Result<Option<Value>> {
    let path = dir.join(file);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ModelError::io(path, e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ModelError::invalid(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vlm-snapshot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn missing_config_is_named() {
        let dir = temp_dir("noconfig");
        let err = Snapshot::open(&dir).unwrap_err();
        assert!(
            matches!(&err, ModelError::MissingFile { file, .. } if file == "config.json"),
            "{err}"
        );
    }

    #[test]
    fn broken_json_is_named_with_its_path() {
        let dir = temp_dir("badjson");
        std::fs::write(dir.join("config.json"), "{ not json").unwrap();
        let err = Snapshot::open(&dir).unwrap_err();
        assert!(
            matches!(&err, ModelError::InvalidFile { path, .. } if path.ends_with("config.json")),
            "{err}"
        );
    }

    #[test]
    fn template_from_tokenizer_config_and_named_list() {
        let dir = temp_dir("template");
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        std::fs::write(
            dir.join("tokenizer_config.json"),
            r#"{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}"#,
        )
        .unwrap();
        let snap = Snapshot::open(&dir).unwrap();
        assert_eq!(
            snap.chat_template().unwrap(),
            Some(("D".to_string(), ChatTemplateSource::TokenizerConfig))
        );
        std::fs::write(dir.join("chat_template.json"), r#"{"chat_template": "J"}"#).unwrap();
        assert_eq!(
            snap.chat_template().unwrap(),
            Some(("J".to_string(), ChatTemplateSource::ChatTemplateJson))
        );
    }

    #[test]
    fn eos_ids_from_generation_config_or_config() {
        let dir = temp_dir("eos");
        std::fs::write(
            dir.join("config.json"),
            r#"{"text_config": {"eos_token_id": 7}}"#,
        )
        .unwrap();
        let snap = Snapshot::open(&dir).unwrap();
        assert_eq!(snap.eos_token_ids().unwrap(), vec![7]);
        std::fs::write(
            dir.join("generation_config.json"),
            r#"{"eos_token_id": [3, 9]}"#,
        )
        .unwrap();
        assert_eq!(snap.eos_token_ids().unwrap(), vec![3, 9]);
    }

    #[test]
    fn missing_shard_is_named() {
        let dir = temp_dir("shard");
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        std::fs::write(
            dir.join("model.safetensors.index.json"),
            r#"{"weight_map": {"a": "model-00001-of-00002.safetensors"}}"#,
        )
        .unwrap();
        let err = Snapshot::open(&dir).unwrap().weight_files().unwrap_err();
        assert!(
            err.to_string().contains("model-00001-of-00002.safetensors"),
            "{err}"
        );
    }
}
