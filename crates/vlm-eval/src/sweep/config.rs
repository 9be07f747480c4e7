//! `sweep.toml`: the tasks, data and devices of a sweep and the models in it, read strictly
//! (an unknown key is an error naming it) and checked before anything runs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::devices::{parse_pool, Device};
use crate::identity::ModelSpec;
use crate::tasks;

/// A sweep as its file states it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    pub tasks: Vec<String>,
    pub data_dir: Option<PathBuf>,
    pub output_dir: Option<PathBuf>,
    pub limit: Option<usize>,
    #[serde(default)]
    pub devices: Vec<String>,
    /// The judge model for tasks that need one (MathVista), as `[judge]`.
    pub judge: Option<JudgeEntry>,
    pub models: Vec<ModelEntry>,
}

/// `[judge]`: an OpenAI-compatible server with the judge model.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JudgeEntry {
    pub url: String,
    pub model: String,
    /// The environment variable holding the judge's key.
    pub api_key_env: Option<String>,
    pub concurrency: Option<usize>,
}

impl JudgeEntry {
    /// The `vlm-eval` flags that name this judge.
    pub fn flags(&self) -> Vec<String> {
        let mut flags = vec![
            "--judge-url".to_string(),
            self.url.clone(),
            "--judge-model".into(),
            self.model.clone(),
        ];
        if let Some(var) = &self.api_key_env {
            flags.extend(["--judge-api-key-env".into(), var.clone()]);
        }
        if let Some(c) = self.concurrency {
            flags.extend(["--judge-concurrency".into(), c.to_string()]);
        }
        flags
    }
}

/// One `[[models]]` entry: a model loaded in-process (`model` and engine settings) or a
/// remote OpenAI-compatible server (`base_url`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    pub model: Option<String>,
    pub base_url: Option<String>,
    /// A command that serves `model` (`{model}`) on a port (`{port}`), started for the run
    /// and stopped after it: `vllm serve {model} --port {port}`.
    pub deploy: Option<String>,
    /// The environment variable holding `base_url`'s key.
    pub api_key_env: Option<String>,
    pub concurrency: Option<usize>,
    pub dtype: Option<String>,
    /// `q8_0`, `q4_0` or `q4_k`: the language model's weights quantized at load.
    pub quantize: Option<String>,
    pub kv_cache_gb: Option<f64>,
    pub max_model_len: Option<usize>,
    pub max_num_seqs: Option<usize>,
    pub min_pixels: Option<u64>,
    pub max_pixels: Option<u64>,
    /// How many devices of the pool it takes.
    #[serde(default = "one")]
    pub devices: usize,
}

fn one() -> usize {
    1
}

impl ModelEntry {
    /// The first engine setting given, which only a model loaded here can take.
    fn engine_setting(&self) -> Option<&'static str> {
        [
            ("dtype", self.dtype.is_some()),
            ("quantize", self.quantize.is_some()),
            ("kv_cache_gb", self.kv_cache_gb.is_some()),
            ("max_model_len", self.max_model_len.is_some()),
            ("max_num_seqs", self.max_num_seqs.is_some()),
            ("min_pixels", self.min_pixels.is_some()),
            ("max_pixels", self.max_pixels.is_some()),
        ]
        .into_iter()
        .find_map(|(key, set)| set.then_some(key))
    }

    /// What can be checked of an entry on its own (the devices it needs are checked against
    /// a pool by the sweep): a name that can name a folder, a model or a server (not both),
    /// engine settings only for a model loaded here, and values an engine accepts.
    pub fn check(&self) -> Result<(), String> {
        let m = self;
        if m.name.is_empty() || m.name.contains(['/', '\\', '\0']) || m.name.starts_with('.') {
            return Err(
                "a name must be non-empty, without slashes and not start with a dot (it names the run folder)".into(),
            );
        }
        if let Some(command) = &m.deploy {
            if m.model.is_none() || m.base_url.is_some() {
                return Err("deploy serves `model` (its {model}); give model, not base_url".into());
            }
            if !command.contains("{port}") {
                return Err("deploy needs `{port}`, where the server is told to listen".into());
            }
            if let Some(key) = m.engine_setting() {
                return Err(format!(
                    "{key} is an engine setting; with deploy it belongs in the command"
                ));
            }
            if m.concurrency == Some(0) {
                return Err("concurrency must be at least 1".into());
            }
            return Ok(());
        }
        match (&m.model, &m.base_url) {
            (Some(_), Some(_)) => return Err("give either model or base_url, not both".into()),
            (None, None) => {
                return Err("give model (loaded here) or base_url (a remote /v1)".into())
            }
            (None, Some(url)) => {
                if let Some(key) = m.engine_setting() {
                    return Err(format!(
                        "{key} is an engine setting, and this model is served at base_url"
                    ));
                }
                check_server("base_url", url, m.api_key_env.as_deref(), m.concurrency)?;
            }
            (Some(model), None) => {
                if model.is_empty() {
                    return Err("model is empty".into());
                }
                if m.api_key_env.is_some() || m.concurrency.is_some() {
                    return Err("api_key_env and concurrency belong to base_url models".into());
                }
                if let Some(q) = &m.quantize {
                    if vlm_models::layers::Quantization::parse(q).is_none() {
                        return Err(format!(
                            "quantize {q:?} is not one of {}",
                            vlm_models::layers::Quantization::NAMES
                        ));
                    }
                }
                if let Some(gb) = m.kv_cache_gb {
                    if !(gb.is_finite() && gb > 0.0 && gb <= 1e6) {
                        return Err(format!(
                            "kv_cache_gb must be a positive number of GiB, got {gb}"
                        ));
                    }
                }
                if m.max_num_seqs == Some(0) || m.max_model_len == Some(0) {
                    return Err("max_num_seqs and max_model_len must be at least 1".into());
                }
                if let (Some(lo), Some(hi)) = (m.min_pixels, m.max_pixels) {
                    if lo > hi {
                        return Err(format!("min_pixels {lo} exceeds max_pixels {hi}"));
                    }
                }
            }
        }
        if m.devices == 0 {
            return Err("devices must be at least 1".into());
        }
        Ok(())
    }

    /// The model as a run's identity sees it, on CUDA devices or CPU ones (which decides
    /// what dtype `auto` is).
    pub fn spec(&self, cuda: bool) -> ModelSpec {
        if let (Some(command), Some(model)) = (&self.deploy, &self.model) {
            return ModelSpec::Deployed {
                command: command.clone(),
                model: model.clone(),
            };
        }
        match (&self.model, &self.base_url) {
            (_, Some(url)) => ModelSpec::Remote {
                base_urls: vec![url.clone()],
                name: self.name.clone(),
            },
            (model, None) => ModelSpec::InProcess {
                reference: model.clone().unwrap_or_default(),
                device: if cuda { "cuda" } else { "cpu" }.into(),
                dtype: self.dtype.clone().unwrap_or_else(|| "auto".into()),
                quantize: self.quantize.clone(),
                max_model_len: self.max_model_len,
                min_pixels: self.min_pixels,
                max_pixels: self.max_pixels,
                chat_template: None,
            },
        }
    }
}

/// A sweep checked against this machine: known tasks, existing devices, every model fits.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub tasks: Vec<String>,
    pub data_dir: Option<PathBuf>,
    pub output_dir: PathBuf,
    pub limit: Option<usize>,
    pub pool: Vec<Device>,
    pub judge: Option<JudgeEntry>,
    pub models: Vec<ModelEntry>,
}

/// Why a sweep cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SweepConfigError {
    #[error("cannot read {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// Command-line settings that take precedence over the file's.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub output_dir: Option<PathBuf>,
    pub devices: Option<Vec<String>>,
    /// Checked for a queue, whose runs go to workers on other machines: the devices are
    /// theirs, so this machine's are not checked.
    pub for_queue: bool,
}

impl SweepConfig {
    pub fn read(path: &Path) -> Result<Self, SweepConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| SweepConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        toml::from_str(&text).map_err(|e| SweepConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.message().to_string()
                + &e.span()
                    .map(|s| format!(" (at line {})", text[..s.start].lines().count().max(1)))
                    .unwrap_or_default(),
        })
    }

    /// Checks everything that can be checked before a model loads.
    pub fn check(mut self, path: &Path, overrides: &Overrides) -> Result<Sweep, SweepConfigError> {
        let invalid = |message: String| SweepConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if self.tasks.is_empty() {
            return Err(invalid("tasks is empty; name at least one task".into()));
        }
        if let Some(judge) = &self.judge {
            check_server(
                "url",
                &judge.url,
                judge.api_key_env.as_deref(),
                judge.concurrency,
            )
            .map_err(|e| invalid(format!("[judge] {e}")))?;
        }
        // Task files are named relative to the config file, and kept as absolute paths so
        // child runs started elsewhere find them.
        let base = path.parent().unwrap_or(Path::new("."));
        for task in &mut self.tasks {
            if tasks::is_task_file(task) && Path::new(task.as_str()).is_relative() {
                *task = base.join(task.as_str()).display().to_string();
            }
            tasks::resolve(task).map_err(|e| invalid(e.to_string()))?;
        }
        if let Some((i, task)) = self
            .tasks
            .iter()
            .enumerate()
            .find(|(i, t)| self.tasks[..*i].contains(t))
        {
            return Err(invalid(format!("task `{task}` is listed twice (at {i})")));
        }
        if self.models.is_empty() {
            return Err(invalid("no [[models]]; add at least one".into()));
        }
        let specs = overrides.devices.as_ref().unwrap_or(&self.devices);
        let pool = if overrides.for_queue {
            Vec::new()
        } else {
            parse_pool(specs).map_err(|e| invalid(e.0))?
        };
        let cuda_pool = matches!(pool.first(), Some(Device::Cuda(_)));
        let mut names = Vec::new();
        for m in &self.models {
            m.check()
                .map_err(|e| invalid(format!("model `{}`: {e}", m.name)))?;
            let at = format!("model `{}`", m.name);
            if names.contains(&&m.name) {
                return Err(invalid(format!("{at} is listed twice")));
            }
            names.push(&m.name);
            if m.devices == 0 || (!overrides.for_queue && m.devices > pool.len()) {
                return Err(invalid(format!(
                    "{at} needs {} device(s) and the pool has {} ({})",
                    m.devices,
                    pool.len(),
                    pool.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            if cuda_pool && m.devices > 1 {
                return Err(invalid(format!(
                    "{at} asks for {} CUDA devices; a model runs on one (no tensor parallelism)",
                    m.devices
                )));
            }
        }
        // Paths become absolute (from the directory the command runs in), so children and
        // workers elsewhere read the same files; a model that is not a directory is an
        // alias or hub id and stays as it is.
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let models = self
            .models
            .into_iter()
            .map(|mut m| {
                if let Some(model) = &m.model {
                    if Path::new(model).is_dir() {
                        m.model = Some(absolute(Path::new(model)).display().to_string());
                    }
                }
                m
            })
            .collect();
        Ok(Sweep {
            tasks: self.tasks,
            data_dir: self.data_dir.as_deref().map(absolute),
            output_dir: overrides
                .output_dir
                .clone()
                .or(self.output_dir)
                .unwrap_or_else(|| PathBuf::from("sweep-out")),
            limit: self.limit,
            pool,
            judge: self.judge,
            models,
        })
    }
}

/// A server's settings, the evaluated model's or the judge's: an http(s) URL (under `key`),
/// a key variable that is set, and at least one request in flight.
fn check_server(
    key: &str,
    url: &str,
    api_key_env: Option<&str>,
    concurrency: Option<usize>,
) -> Result<(), String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("{key} {url:?} is not an http(s) URL"));
    }
    if let Some(var) = api_key_env {
        if std::env::var_os(var).is_none() {
            return Err(format!("api_key_env names {var}, which is not set"));
        }
    }
    if concurrency == Some(0) {
        return Err("concurrency must be at least 1".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Sweep, String> {
        let config: SweepConfig = toml::from_str(text).map_err(|e| e.message().to_string())?;
        config
            .check(Path::new("sweep.toml"), &Overrides::default())
            .map_err(|e| e.to_string())
    }

    const GOOD: &str = r#"
        tasks = ["mme", "mmmu_val"]
        data_dir = "eval-datasets"
        limit = 4
        [[models]]
        name = "a"
        model = "tests/fixtures/llava-tiny-hub"
        dtype = "f32"
        kv_cache_gb = 0.5
        [[models]]
        name = "b"
        base_url = "http://127.0.0.1:9/v1"
        concurrency = 2
    "#;

    #[test]
    fn a_good_sweep_and_every_kind_of_bad_one() {
        let sweep = check(GOOD).unwrap();
        assert_eq!(sweep.models.len(), 2);
        assert_eq!(sweep.models[0].devices, 1);
        assert_eq!(sweep.output_dir, PathBuf::from("sweep-out"));
        assert_eq!(sweep.pool.len(), 1);

        // A deployed model: its command serves `model` and holds the engine settings.
        let deployed = GOOD.replace(
            "base_url = \"http://127.0.0.1:9/v1\"",
            "model = \"llava-hf/llava-1.5-7b-hf\"\n        deploy = \"vllm serve {model} --port {port}\"",
        );
        let sweep = check(&deployed).unwrap();
        assert!(matches!(
            sweep.models[1].spec(false),
            ModelSpec::Deployed { ref command, .. } if command.contains("{port}")
        ));
        let no_port = check(&deployed.replace(" --port {port}", "")).unwrap_err();
        assert!(no_port.contains("needs `{port}`"), "{no_port}");
        let engine = check(&deployed.replace("concurrency = 2", "kv_cache_gb = 1.0")).unwrap_err();
        assert!(engine.contains("belongs in the command"), "{engine}");
        let served = check(&deployed.replace(
            "model = \"llava-hf/llava-1.5-7b-hf\"",
            "base_url = \"http://h/v1\"",
        ))
        .unwrap_err();
        assert!(served.contains("deploy serves `model`"), "{served}");

        // A judge for the tasks that need one, handed to every child as flags.
        let judged = GOOD.replace(
            "limit = 4",
            "limit = 4\n        [judge]\n        url = \"http://judge:8000/v1\"\n        model = \"j\"\n        concurrency = 3",
        );
        let sweep = check(&judged).unwrap();
        assert_eq!(
            sweep.judge.unwrap().flags(),
            [
                "--judge-url",
                "http://judge:8000/v1",
                "--judge-model",
                "j",
                "--judge-concurrency",
                "3"
            ]
        );
        let bad = check(&judged.replace("http://judge", "judge")).unwrap_err();
        assert!(bad.contains("[judge] url"), "{bad}");
        let none = check(&judged.replace("concurrency = 3", "concurrency = 0")).unwrap_err();
        assert!(
            none.contains("[judge] concurrency must be at least 1"),
            "{none}"
        );
        let key =
            check(&judged.replace("concurrency = 3", "api_key_env = \"VLM_NO_SUCH_VAR_SET\""))
                .unwrap_err();
        assert!(
            key.contains("[judge] api_key_env names VLM_NO_SUCH_VAR_SET"),
            "{key}"
        );

        let unknown = check(&GOOD.replace("dtype", "dtyp")).unwrap_err();
        assert!(unknown.contains("unknown field `dtyp`"), "{unknown}");
        let task = check(&GOOD.replace("mmmu_val", "mmmu")).unwrap_err();
        assert!(task.contains("unknown task `mmmu`"), "{task}");
        let devices = check(&GOOD.replace("limit = 4", "devices = [\"cpu:100000\"]")).unwrap_err();
        assert!(devices.contains("core 100000"), "{devices}");
        let more = check(&GOOD.replace("dtype = \"f32\"", "devices = 3")).unwrap_err();
        assert!(
            more.contains("needs 3 device(s) and the pool has 1"),
            "{more}"
        );
        let both = check(&GOOD.replace("concurrency = 2", "model = \"x\"")).unwrap_err();
        assert!(both.contains("either model or base_url"), "{both}");
        let engine_on_remote =
            check(&GOOD.replace("concurrency = 2", "kv_cache_gb = 1.0")).unwrap_err();
        assert!(
            engine_on_remote.contains("kv_cache_gb is an engine setting"),
            "{engine_on_remote}"
        );
        let twice = check(&GOOD.replace("name = \"b\"", "name = \"a\"")).unwrap_err();
        assert!(twice.contains("listed twice"), "{twice}");
        let key = check(&GOOD.replace("concurrency = 2", "api_key_env = \"VLM_NO_SUCH_VAR_SET\""))
            .unwrap_err();
        assert!(key.contains("VLM_NO_SUCH_VAR_SET"), "{key}");
        let twice_task =
            check(&GOOD.replace("\"mme\", \"mmmu_val\"", "\"mme\", \"mme\"")).unwrap_err();
        assert!(
            twice_task.contains("task `mme` is listed twice"),
            "{twice_task}"
        );
        for bad in [
            "kv_cache_gb = -1.0",
            "kv_cache_gb = 1e300",
            "max_num_seqs = 0",
        ] {
            let err = check(&GOOD.replace("kv_cache_gb = 0.5", bad)).unwrap_err();
            assert!(err.contains("model `a`"), "{bad}: {err}");
        }
        let scheme = check(&GOOD.replace("http://127.0.0.1:9/v1", "ftp://x")).unwrap_err();
        assert!(scheme.contains("not an http(s) URL"), "{scheme}");
        let slash = check(&GOOD.replace("name = \"a\"", "name = \"../a\"")).unwrap_err();
        assert!(slash.contains("without slashes"), "{slash}");
    }

    #[test]
    fn read_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sweep.toml");
        std::fs::write(&path, GOOD.replace("limit = 4", "limit = 4\nbogus = 1")).unwrap();
        let err = SweepConfig::read(&path).unwrap_err().to_string();
        assert!(
            err.contains("unknown field `bogus`") && err.contains("line"),
            "{err}"
        );
    }
}
