//! Memory-mapped safetensors with typed errors, legacy key layouts resolved, and the
//! layer constructors (linear, layer norm, embedding) the networks load through.

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{safetensors::MmapedSafetensors, DType, Device, Shape, Tensor};
use candle_nn::{Embedding, LayerNorm};

use super::LoadOptions;
use crate::error::{ModelError, Result};
use crate::layers::{Linear, WeightFormat};

/// How one model family's checkpoints name their tensors. Code asks for the names current
/// transformers uses (`model.language_model.layers.0...`); each `(current, legacy)` prefix
/// pair says where the same tensor lives in older hub checkpoints.
#[derive(Debug, Clone, Copy)]
pub struct KeyLayout {
    pub legacy_prefixes: &'static [(&'static str, &'static str)],
}

struct Inner {
    tensors: MmapedSafetensors,
    layout: KeyLayout,
    dir: PathBuf,
    options: LoadOptions,
}

/// Memory-mapped safetensors with typed errors for missing or misshapen tensors, and the
/// legacy key layouts resolved. Cheap to clone; `pp` scopes it to a prefix, `quantized`
/// to the layers `--quantize` applies to.
#[derive(Clone)]
pub struct Weights {
    inner: Arc<Inner>,
    prefix: String,
    quantized: bool,
}

impl Weights {
    pub fn open(
        files: &[PathBuf],
        dir: PathBuf,
        layout: KeyLayout,
        options: &LoadOptions,
    ) -> Result<Self> {
        // SAFETY: the files are mapped read-only; like every mmap loader we rely on nobody
        // truncating a checkpoint while it is being served.
        let tensors = unsafe { MmapedSafetensors::multi(files) }.map_err(|e| {
            ModelError::invalid(files.first().cloned().unwrap_or_else(|| dir.clone()), e)
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                tensors,
                layout,
                dir,
                options: options.clone(),
            }),
            prefix: String::new(),
            quantized: false,
        })
    }

    pub fn pp(&self, name: impl std::fmt::Display) -> Self {
        Self {
            inner: self.inner.clone(),
            prefix: self.full(&name.to_string()),
            quantized: self.quantized,
        }
    }

    /// The same scope, with `--quantize` applying to its linear layers (the language
    /// model's).
    pub fn quantized(&self) -> Self {
        Self {
            quantized: true,
            ..self.clone()
        }
    }

    /// The dtype activations and everything but packed or quantized weights use.
    pub fn dtype(&self) -> DType {
        self.inner.options.compute_dtype()
    }

    pub fn device(&self) -> &Device {
        &self.inner.options.device
    }

    fn full(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The stored key for a current-layout name, if the tensor exists under any layout.
    fn stored_key(&self, name: &str) -> Option<String> {
        let exists = |k: &str| self.inner.tensors.get(k).is_ok();
        if exists(name) {
            return Some(name.to_string());
        }
        self.inner
            .layout
            .legacy_prefixes
            .iter()
            .filter_map(|(current, legacy)| {
                name.strip_prefix(current)
                    .map(|rest| format!("{legacy}{rest}"))
            })
            .find(|k| exists(k))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.stored_key(&self.full(name)).is_some()
    }

    /// Loads `name` as stored, checking it has `shape`.
    fn get_stored(&self, shape: impl Into<Shape>, name: &str) -> Result<Tensor> {
        let full = self.full(name);
        let key = self
            .stored_key(&full)
            .ok_or_else(|| ModelError::MissingWeight {
                dir: self.inner.dir.clone(),
                name: full.clone(),
            })?;
        let tensor = self.inner.tensors.load(&key, self.device())?;
        let shape = shape.into();
        if tensor.shape() != &shape {
            return Err(ModelError::WrongShape {
                name: key,
                expected: shape.dims().to_vec(),
                actual: tensor.dims().to_vec(),
            });
        }
        Ok(tensor)
    }

    /// Loads `name`, checking it has `shape`, converted to the compute dtype.
    pub fn get(&self, shape: impl Into<Shape>, name: &str) -> Result<Tensor> {
        Ok(self.get_stored(shape, name)?.to_dtype(self.dtype())?)
    }

    pub fn linear(&self, in_dim: usize, out_dim: usize, bias: bool) -> Result<Linear> {
        let weight = self.get_stored((out_dim, in_dim), "weight")?;
        let bias = if bias {
            Some(self.get(out_dim, "bias")?)
        } else {
            None
        };
        self.linear_from(weight, bias)
    }

    /// One linear layer computing several that read the same input (`parts`: each one's
    /// name and output width, in output order): their weights (and biases) stacked along
    /// the outputs. Every output element is computed exactly as by its own layer; the
    /// input is read, and for quantized formats quantized, once.
    pub fn linear_fused(
        &self,
        in_dim: usize,
        parts: &[(&str, usize)],
        bias: bool,
    ) -> Result<Linear> {
        let mut weights = Vec::with_capacity(parts.len());
        let mut biases = Vec::with_capacity(parts.len());
        for &(name, out_dim) in parts {
            let part = self.pp(name);
            let weight = part.get_stored((out_dim, in_dim), "weight")?;
            let dtype = weights
                .first()
                .map_or(weight.dtype(), |w: &Tensor| w.dtype());
            weights.push(weight.to_dtype(dtype)?);
            if bias {
                biases.push(part.get(out_dim, "bias")?);
            }
        }
        let weight = Tensor::cat(&weights, 0)?;
        drop(weights);
        let bias = if bias {
            Some(Tensor::cat(&biases, 0)?)
        } else {
            None
        };
        self.linear_from(weight, bias)
    }

    /// A linear layer over `weight` (`[out, in]`, any dtype) in this scope's format.
    pub fn linear_from(&self, weight: Tensor, bias: Option<Tensor>) -> Result<Linear> {
        let format = self.inner.options.weight_format(self.quantized);
        if format == WeightFormat::Native {
            let weight = weight.to_dtype(self.dtype())?;
            return Ok(Linear::new(candle_nn::Linear::new(weight, bias)));
        }
        Ok(Linear::with_format(weight, bias, format)?)
    }

    pub fn layer_norm(&self, dim: usize, eps: f64) -> Result<LayerNorm> {
        Ok(LayerNorm::new(
            self.get(dim, "weight")?,
            self.get(dim, "bias")?,
            eps,
        ))
    }

    /// An embedding table. Where linear weights are packed in half precision or
    /// quantized, the table keeps a half-precision dtype (the checkpoint's own if it is
    /// one, else `--dtype`'s) and looked-up rows are widened: a 152k-token table is not
    /// held in f32.
    pub fn embedding(&self, count: usize, dim: usize) -> Result<Embedding> {
        let table = self.get_stored((count, dim), "weight")?;
        let compute = self.dtype();
        let requested = self.inner.options.dtype;
        let half = |d: DType| matches!(d, DType::BF16 | DType::F16);
        let dtype = if compute != DType::F32
            || self.inner.options.weight_format(true) == WeightFormat::Native
        {
            compute
        } else if half(table.dtype()) {
            table.dtype()
        } else if half(requested) {
            requested
        } else {
            compute
        };
        Ok(Embedding::new(table.to_dtype(dtype)?, dim))
    }
}
