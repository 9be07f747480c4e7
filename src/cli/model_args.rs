//! The flags every binary that loads a model shares (model, device, dtype, threads, chat
//! template), and how they load it.

use std::path::PathBuf;

use anyhow::{Context, Result};
use vlm_models::{loader, LoadOptions, VlmModel};

#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    /// Local Hugging Face snapshot directory, hub repo id, or alias (llava-1.5-7b, qwen2-vl-2b, ...).
    #[arg(long, env = "VLM_MODEL")]
    pub model: String,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// auto (bf16 on CUDA, f32 on CPU), f32, f16 or bf16. On the CPU, bf16 and f16 hold the
    /// weights in half precision and compute in f32.
    #[arg(long, default_value = "auto")]
    pub dtype: String,
    /// Quantize the language model's linear weights at load: q8_0, q4_0 or q4_k (llama.cpp's
    /// block formats; the vision tower keeps --dtype).
    #[arg(long, env = "VLM_QUANTIZE")]
    pub quantize: Option<String>,
    /// Compute threads (default: one per available core, or per --cpu-bind core).
    #[arg(long, env = "VLM_CPU_OMP_THREADS")]
    pub threads: Option<usize>,
    /// Cores to pin the compute threads to, one each: "0-3,8".
    #[arg(long, env = "VLM_CPU_OMP_THREADS_BIND")]
    pub cpu_bind: Option<String>,
    /// A Jinja chat template file to use instead of the checkpoint's.
    #[arg(long)]
    pub chat_template: Option<PathBuf>,
}

impl ModelArgs {
    /// Configures the compute threads, then resolves and loads the model.
    pub fn load(&self) -> Result<VlmModel> {
        if self.threads.is_some() || self.cpu_bind.is_some() {
            vlm_engine::configure_threads(self.threads, self.cpu_bind.as_deref())?;
        }
        let mut options = LoadOptions::parse(&self.device, &self.dtype)
            .and_then(|o| o.with_quantize(self.quantize.as_deref()))
            .map_err(anyhow::Error::msg)?;
        if let Some(path) = &self.chat_template {
            let source = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read chat template {}", path.display()))?;
            options.chat_template = Some(source);
        }
        let snapshot = loader::resolve(&self.model)?;
        let before = resident_bytes();
        let started = std::time::Instant::now();
        let model = VlmModel::load(snapshot, &options)?;
        let gib = |b: u64| format!("{:.2}", b as f64 / (1u64 << 30) as f64);
        tracing::info!(
            weights = options.describe_weights(),
            resident_gib =
                resident_bytes().map(|after| gib(after.saturating_sub(before.unwrap_or(0)))),
            decode_reads_gib = gib(model.decode_weight_bytes() as u64),
            seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
            "model loaded"
        );
        Ok(model)
    }
}

/// This process's resident memory (Linux `/proc/self/statm`), if it can be read.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system setting.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}
