//! What every family reads from a snapshot before building its network, in one order:
//! its config (with errors naming config.json), its image processor config, its weights.

use std::path::PathBuf;

use serde_json::Value;

use crate::error::{ModelError, Result, UnsupportedConfig};
use crate::loader::{KeyLayout, LoadOptions, Snapshot, Weights};
use crate::preprocess::PreprocessError;

/// A snapshot and load options, as a family's loader sees them.
pub(crate) struct FamilySource<'a> {
    pub snapshot: &'a Snapshot,
    pub options: &'a LoadOptions,
    pub config_path: PathBuf,
}

impl<'a> FamilySource<'a> {
    pub fn new(snapshot: &'a Snapshot, options: &'a LoadOptions) -> Self {
        Self {
            snapshot,
            options,
            config_path: snapshot.path("config.json"),
        }
    }

    pub fn config(&self) -> &Value {
        self.snapshot.config()
    }

    /// A config.json setting the family cannot run, as the error that names the file.
    pub fn unsupported(&self, reason: UnsupportedConfig) -> ModelError {
        ModelError::unsupported(&self.config_path, reason)
    }

    /// config.json is not what the family expects at all.
    pub fn invalid_config(&self, message: impl std::fmt::Display) -> ModelError {
        ModelError::invalid(&self.config_path, message)
    }

    /// The image processor config (preprocessor_config.json or processor_config.json),
    /// parsed by `parse`, with the file it came from for later errors.
    pub fn image_processor<P>(
        &self,
        parse: impl FnOnce(&Value) -> std::result::Result<P, PreprocessError>,
    ) -> Result<(PathBuf, P)> {
        let (path, config) = self.snapshot.image_processor_config()?;
        let processor = parse(&config).map_err(|e| ModelError::invalid(&path, e))?;
        Ok((path, processor))
    }

    /// The checkpoint's safetensors, mapped, with the family's key layout.
    pub fn weights(&self, layout: KeyLayout) -> Result<Weights> {
        Weights::open(
            &self.snapshot.weight_files()?,
            self.snapshot.dir().to_path_buf(),
            layout,
            self.options,
        )
    }
}
