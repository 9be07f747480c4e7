//! A serving engine started for the run (`--deploy "vllm serve {model} --port {port}"`):
//! the command runs in its own process group with its output in a log file, is waited for
//! until its `/v1/models` answers with the model, and is stopped (SIGTERM to the group,
//! SIGKILL after a grace period) when the [`Deployment`] is dropped, on failure, and on
//! SIGINT / SIGTERM.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use super::openai::{model_ids, with_bearer};

/// What to start and how long to wait for it.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// A shell command; `{port}` and `{model}` are substituted.
    pub command: String,
    pub model: String,
    /// Where the command's stdout and stderr go.
    pub log: PathBuf,
    /// How long the server may take to answer `/v1/models`.
    pub ready_timeout: Duration,
    /// How long it gets to exit after SIGTERM before SIGKILL.
    pub grace: Duration,
    /// Sent with the readiness check, for a server started with a key.
    pub api_key: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("--deploy: the command needs `{{port}}`, where the server is told to listen")]
    NoPortPlaceholder,
    #[error("cannot pick a free port: {0}")]
    NoFreePort(std::io::Error),
    #[error("cannot write the deployment log {}: {error}", path.display())]
    Log {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot start `{command}`: {error}")]
    Spawn {
        command: String,
        error: std::io::Error,
    },
    #[error("the deployed server exited ({status}) before answering {url}; its log ({}) ends:\n{tail}", log.display())]
    Exited {
        status: std::process::ExitStatus,
        url: String,
        log: PathBuf,
        tail: String,
    },
    #[error("the deployed server did not answer {url} within {seconds} s (--deploy-timeout); its log ({}) ends:\n{tail}", log.display())]
    NotReady {
        url: String,
        seconds: u64,
        log: PathBuf,
        tail: String,
    },
}

/// The process group of the running deployment, for the signal handler (0: none).
static GROUP: AtomicI32 = AtomicI32::new(0);
static HANDLER: Once = Once::new();

/// On SIGINT / SIGTERM: stop the deployment's group, then exit as the signal asks.
fn install_signal_handler() {
    HANDLER.call_once(|| {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        // Registered here, before any server starts: no signal can slip past.
        let streams = runtime.block_on(async {
            (
                signal(SignalKind::interrupt()).ok(),
                signal(SignalKind::terminate()).ok(),
            )
        });
        std::thread::spawn(move || {
            let code = runtime.block_on(async move {
                let (int, term) = streams;
                tokio::select! {
                    _ = next_signal(int) => 130,
                    _ = next_signal(term) => 143,
                }
            });
            let group = GROUP.swap(0, Ordering::SeqCst);
            if group > 0 {
                eprintln!("vlm-eval: stopping the deployed server");
                stop_group(group, Duration::from_secs(10));
            }
            std::process::exit(code);
        });
    });
}

/// The stream's next signal; never, without a stream.
async fn next_signal(stream: Option<tokio::signal::unix::Signal>) {
    match stream {
        Some(mut s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// SIGTERM to the group (whose leader, the shell, has the group's id); SIGKILL once
/// `grace` has passed with any process of it left.
fn stop_group(group: i32, grace: Duration) {
    // SAFETY: signalling, and reaping the leader of, a process group this process created.
    unsafe { libc::kill(-group, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    loop {
        // A leader that exited stays a zombie (and the group signallable) until reaped.
        // SAFETY: as above; a null status pointer is allowed.
        unsafe { libc::waitpid(group, std::ptr::null_mut(), libc::WNOHANG) };
        // SAFETY: signal 0 only checks whether any process of the group is left.
        if unsafe { libc::kill(-group, 0) } != 0 {
            return;
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe {
        libc::kill(-group, libc::SIGKILL);
        libc::waitpid(group, std::ptr::null_mut(), 0);
    }
    // Killed processes take a moment to go; wait (briefly) until none is left.
    let deadline = Instant::now() + Duration::from_secs(2);
    // SAFETY: signal 0 only checks whether any process of the group is left.
    while unsafe { libc::kill(-group, 0) } == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The last `lines` non-blank lines of a log file (none if it cannot be read), for an error.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether a server answering `/models` with `listed` is ours: it lists the model, or gives
/// nothing to go by (no list, or an empty one).
fn serves(listed: Option<&[String]>, model: &str) -> bool {
    listed.is_none_or(|models| models.is_empty() || models.iter().any(|m| m == model))
}

fn free_port() -> Result<u16, DeployError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(DeployError::NoFreePort)?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(DeployError::NoFreePort)
}

/// A running deployed server; stopped when dropped.
pub struct Deployment {
    child: Child,
    base_url: String,
    grace: Duration,
    stopped: bool,
}

impl Deployment {
    /// Starts the command and waits until `GET /v1/models` answers 200.
    pub fn start(options: &DeployOptions) -> Result<Self, DeployError> {
        if !options.command.contains("{port}") {
            return Err(DeployError::NoPortPlaceholder);
        }
        let port = free_port()?;
        let command = options
            .command
            .replace("{port}", &port.to_string())
            .replace("{model}", &options.model);
        let log_error = |error| DeployError::Log {
            path: options.log.clone(),
            error,
        };
        if let Some(dir) = options.log.parent() {
            std::fs::create_dir_all(dir).map_err(log_error)?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&options.log)
            .map_err(log_error)?;
        let err = log.try_clone().map_err(log_error)?;
        install_signal_handler();
        // The command runs under a shell that, told to stop (by us, or by the kernel when
        // this process dies, even by SIGKILL), passes SIGTERM to the whole group: `sh`
        // itself does not forward signals to what it started.
        let supervised = format!("trap 'trap - TERM; kill 0' TERM\n{{ {command}\n}} &\nwait $!");
        let mut shell = Command::new("sh");
        shell
            .args(["-c", &supervised])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; the child asks to be stopped if this process
        // dies without stopping it (kill -9).
        unsafe {
            shell.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = shell.spawn().map_err(|error| DeployError::Spawn {
            command: command.clone(),
            error,
        })?;
        GROUP.store(child.id() as i32, Ordering::SeqCst);
        let mut deployment = Self {
            child,
            base_url: format!("http://127.0.0.1:{port}/v1"),
            grace: options.grace,
            stopped: false,
        };
        tracing::info!(command, log = %options.log.display(), "deployed server starting");
        deployment.wait_ready(options)?;
        Ok(deployment)
    }

    fn wait_ready(&mut self, options: &DeployOptions) -> Result<(), DeployError> {
        let url = format!("{}/models", self.base_url);
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(5))
            .build();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.stop();
                return Err(DeployError::Exited {
                    status,
                    url,
                    log: options.log.clone(),
                    tail: log_tail(&options.log, 20),
                });
            }
            let request = with_bearer(agent.get(&url), options.api_key.as_deref());
            // Ready once it answers and serves the model: a server that lists other models
            // is not ours (another process took the port); ours then fails to start.
            if let Ok(response) = request.call() {
                let body = response.into_json::<serde_json::Value>().ok();
                let listed = body.as_ref().and_then(model_ids);
                if serves(listed.as_deref(), &options.model) {
                    return Ok(());
                }
                tracing::warn!(
                    "the server at {url} lists {:?}, not `{}`; waiting for ours",
                    listed.unwrap_or_default(),
                    options.model
                );
            }
            if started.elapsed() >= options.ready_timeout {
                self.stop();
                return Err(DeployError::NotReady {
                    url,
                    seconds: options.ready_timeout.as_secs(),
                    log: options.log.clone(),
                    tail: log_tail(&options.log, 20),
                });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Stops the server's whole process group (SIGTERM, then SIGKILL after the grace).
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        // Reaped here (or by `stop_group`), so `Child::wait` has nothing left to do. The
        // signal handler still knows the group meanwhile, so a second Ctrl-C during the
        // grace period kills it rather than leaving it.
        stop_group(self.child.id() as i32, self.grace);
        GROUP.store(0, Ordering::SeqCst);
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::serves;

    #[test]
    fn a_server_listing_other_models_is_not_ours() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(serves(Some(&names(&["m", "other"])), "m"));
        assert!(!serves(Some(&names(&["other"])), "m"));
        // Nothing to go by: a server without a model list, or with an empty one.
        assert!(serves(Some(&[]), "m"));
        assert!(serves(None, "m"));
    }
}
