//! The compute thread pool: `--threads N` and `--cpu-bind 0-3,8` (VLLM_CPU_OMP_THREADS_BIND's
//! syntax). Builds on candle's own CPU pool settings (`CANDLE_NUM_THREADS`,
//! `CANDLE_CPU_MASK`, read once when candle first computes) and pins each worker of the rayon
//! pool that candle's matmuls run on to one listed core.

use std::sync::OnceLock;

use crate::error::EngineError;

/// Threads and the cores they are pinned to (`cores[i]` for worker `i`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadPlan {
    pub threads: usize,
    pub cores: Option<Vec<usize>>,
}

static PLAN: OnceLock<ThreadPlan> = OnceLock::new();

/// The plan [`configure_threads`] installed, if any.
pub fn thread_plan() -> Option<&'static ThreadPlan> {
    PLAN.get()
}

/// A cpu list (`--cpu-bind`, VLLM_CPU_OMP_THREADS_BIND's syntax) that does not parse; the
/// message names the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CpuListError(String);

/// The most cores a CPU list may name (`CPU_SETSIZE`).
const MAX_CORES: usize = 1024;

/// Parses "0-3,8" into sorted, distinct core ids.
pub fn parse_cpu_list(list: &str) -> Result<Vec<usize>, CpuListError> {
    let mut cores = Vec::new();
    for part in list.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(CpuListError(format!("empty entry in cpu list {list:?}")));
        }
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let parse = |s: &str| {
            s.trim().parse::<usize>().map_err(|_| {
                CpuListError(format!("{s:?} in cpu list {list:?} is not a core number"))
            })
        };
        let (a, b) = (parse(a)?, parse(b)?);
        // Linux's CPU sets hold at most this many cores (CPU_SETSIZE).
        if b >= MAX_CORES {
            return Err(CpuListError(format!(
                "core {b} in cpu list {list:?} is past the {MAX_CORES} cores a CPU set can name"
            )));
        }
        if a > b {
            return Err(CpuListError(format!(
                "range {part:?} in cpu list {list:?} runs backwards"
            )));
        }
        cores.extend(a..=b);
    }
    cores.sort_unstable();
    cores.dedup();
    Ok(cores)
}

/// Cores this process may run on.
pub fn available_cores() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills a zeroed cpu_set_t of the size it is given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Cores the calling thread may run on.
pub fn current_thread_cores() -> Vec<usize> {
    // SAFETY: as in `available_cores`, for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// A thread could not be pinned to its core.
#[derive(Debug, thiserror::Error)]
#[error("cannot pin to core {core}: {error}")]
pub struct PinError {
    pub core: usize,
    pub error: std::io::Error,
}

/// Pins the calling thread to one core.
pub fn pin_current_thread(core: usize) -> Result<(), PinError> {
    // SAFETY: a zeroed cpu_set_t with one core set, passed with its own size.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(PinError {
            core,
            error: std::io::Error::last_os_error(),
        })
    }
}

/// Sets up the compute pool. Call once, before the model is loaded (candle reads its
/// settings at its first computation). `threads` defaults to the number of listed cores,
/// or of available cores; with `cpu_bind`, worker `i` is pinned to the `i`-th listed core.
pub fn configure_threads(
    threads: Option<usize>,
    cpu_bind: Option<&str>,
) -> Result<ThreadPlan, EngineError> {
    let err = |m: String| EngineError::Config(m);
    let available = available_cores();
    let cores = match cpu_bind {
        Some(list) => {
            let cores = parse_cpu_list(list).map_err(|m| err(format!("--cpu-bind: {m}")))?;
            if let Some(bad) = cores.iter().find(|c| !available.contains(c)) {
                return Err(err(format!(
                    "--cpu-bind: core {bad} is not available to this process (available: {})",
                    format_cpu_list(&available)
                )));
            }
            Some(cores)
        }
        None => None,
    };
    let limit = cores.as_ref().map_or(available.len(), Vec::len);
    let threads = threads.unwrap_or(limit);
    if threads == 0 {
        return Err(err("--threads must be at least 1".into()));
    }
    if cores.is_some() && threads > limit {
        return Err(err(format!(
            "--threads {threads} is more than the {limit} cores in --cpu-bind"
        )));
    }
    let cores = cores.map(|c| c[..threads].to_vec());
    let plan = ThreadPlan {
        threads,
        cores: cores.clone(),
    };
    if PLAN.get().is_some() {
        return Err(err("the compute pool is already configured".into()));
    }
    // SAFETY: called once at start-up, before any thread reads these variables.
    unsafe {
        std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        if let Some(c) = &cores {
            std::env::set_var("CANDLE_CPU_MASK", format_cpu_list(c));
        }
    }
    let pinned = cores.clone();
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("vlm-compute-{i}"))
        .start_handler(move |i| {
            if let Some(c) = &pinned {
                if let Err(e) = pin_current_thread(c[i]) {
                    tracing::warn!("{e}");
                }
            }
        })
        .build_global()
        .map_err(|_| {
            err(
                "the compute pool already started: configure threads before loading the model"
                    .into(),
            )
        })?;
    let _ = PLAN.set(plan.clone());
    tracing::info!(threads, cores = ?cores, "compute pool configured");
    Ok(plan)
}

/// "0-3,8" for [0, 1, 2, 3, 8].
pub fn format_cpu_list(cores: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cores.len() {
        let mut j = i;
        while j + 1 < cores.len() && cores[j + 1] == cores[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            cores[i].to_string()
        } else {
            format!("{}-{}", cores[i], cores[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_and_print() {
        assert_eq!(parse_cpu_list("0-3,8"), Ok(vec![0, 1, 2, 3, 8]));
        assert_eq!(parse_cpu_list(" 2, 1,1 "), Ok(vec![1, 2]));
        assert!(parse_cpu_list("3-1")
            .unwrap_err()
            .to_string()
            .contains("backwards"));
        assert!(parse_cpu_list("a")
            .unwrap_err()
            .to_string()
            .contains("not a core"));
        assert!(parse_cpu_list("1,,2")
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert!(!available_cores().is_empty());
    }
}
