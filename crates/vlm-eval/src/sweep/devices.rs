//! The devices a sweep hands out: CUDA devices (`cuda:0`) or CPU core sets (`cpu:0-7`),
//! checked against the machine before anything runs.

use std::fmt;
use std::path::Path;

/// One device of the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    Cuda(usize),
    /// A set of cores, pinned one compute thread each.
    Cpu(Vec<usize>),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::Cpu(cores) => write!(f, "cpu:{}", vlm_engine::format_cpu_list(cores)),
        }
    }
}

/// Why a device list cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeviceError(pub String);

/// Parses and checks a pool: every device exists, no core is in two sets, and the pool is
/// all CUDA or all CPU. An empty list is one CPU device of every available core.
pub fn parse_pool(specs: &[String]) -> Result<Vec<Device>, DeviceError> {
    let available = vlm_engine::available_cores();
    if specs.is_empty() {
        return Ok(vec![Device::Cpu(available)]);
    }
    let mut pool = Vec::new();
    for spec in specs {
        let spec = spec.trim();
        let device = if let Some(index) = spec.strip_prefix("cuda:") {
            let n: usize = index.parse().map_err(|_| {
                DeviceError(format!("device {spec:?}: expected cuda:N with N a number"))
            })?;
            if !Path::new(&format!("/dev/nvidia{n}")).exists() {
                return Err(DeviceError(format!(
                    "device {spec} does not exist on this machine (no /dev/nvidia{n})"
                )));
            }
            Device::Cuda(n)
        } else if spec == "cpu" {
            Device::Cpu(available.clone())
        } else if let Some(list) = spec.strip_prefix("cpu:") {
            let cores = vlm_engine::parse_cpu_list(list)
                .map_err(|e| DeviceError(format!("device {spec:?}: {e}")))?;
            if let Some(missing) = cores.iter().find(|c| !available.contains(c)) {
                return Err(DeviceError(format!(
                    "device {spec}: core {missing} is not available to this process (available: {})",
                    vlm_engine::format_cpu_list(&available)
                )));
            }
            Device::Cpu(cores)
        } else {
            return Err(DeviceError(format!(
                "device {spec:?}: expected cuda:N or cpu:LIST (e.g. cpu:0-7)"
            )));
        };
        if pool.contains(&device) {
            return Err(DeviceError(format!("device {device} is listed twice")));
        }
        pool.push(device);
    }
    let cuda = pool.iter().filter(|d| matches!(d, Device::Cuda(_))).count();
    if cuda > 0 && cuda < pool.len() {
        return Err(DeviceError(
            "a pool is all CUDA devices or all CPU core sets, not both".into(),
        ));
    }
    let mut seen = Vec::new();
    for device in &pool {
        if let Device::Cpu(cores) = device {
            if let Some(core) = cores.iter().find(|c| seen.contains(*c)) {
                return Err(DeviceError(format!("core {core} is in two CPU devices")));
            }
            seen.extend(cores.iter().copied());
        }
    }
    Ok(pool)
}

/// The flags that put a child `vlm-eval` on `devices` (one CUDA device, or the union of
/// CPU core sets).
pub fn device_flags(devices: &[Device]) -> Vec<String> {
    match devices {
        [Device::Cuda(n)] => vec!["--device".into(), format!("cuda:{n}")],
        _ => {
            let mut cores: Vec<usize> = devices
                .iter()
                .flat_map(|d| match d {
                    Device::Cpu(c) => c.clone(),
                    Device::Cuda(_) => Vec::new(),
                })
                .collect();
            cores.sort_unstable();
            vec!["--cpu-bind".into(), vlm_engine::format_cpu_list(&cores)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pools_are_checked_against_the_machine() {
        let cores = vlm_engine::available_cores();
        let first = cores[0];
        let pool = parse_pool(&specs(&[&format!("cpu:{first}")])).unwrap();
        assert_eq!(pool, vec![Device::Cpu(vec![first])]);
        assert_eq!(device_flags(&pool), ["--cpu-bind", &first.to_string()]);
        assert_eq!(parse_pool(&[]).unwrap(), vec![Device::Cpu(cores.clone())]);
        let err = |list: &[&str]| parse_pool(&specs(list)).unwrap_err().0;
        assert!(err(&["cpu:1000"]).contains("core 1000 is not available"));
        assert!(err(&["cpu:0-18446744073709551615"]).contains("past the 1024 cores"));
        assert!(err(&["cuda:999"]).contains("does not exist"));
        assert!(err(&["tpu:0"]).contains("expected cuda:N or cpu:LIST"));
        assert!(err(&["cpu:x"]).contains("cpu:x"));
        let dup = format!("cpu:{first}");
        assert!(err(&[&dup, &dup]).contains("listed twice"));
        if cores.len() >= 2 {
            let overlap = [
                format!("cpu:{}", cores[0]),
                format!("cpu:{},{}", cores[0], cores[1]),
            ];
            assert!(err(&[&overlap[0], &overlap[1]]).contains("in two CPU devices"));
            let two = parse_pool(&specs(&[
                &format!("cpu:{}", cores[1]),
                &format!("cpu:{}", cores[0]),
            ]))
            .unwrap();
            let union = format!("{}-{}", cores[0], cores[1]);
            if cores[1] == cores[0] + 1 {
                assert_eq!(device_flags(&two), ["--cpu-bind", &union]);
            }
        }
        assert_eq!(device_flags(&[Device::Cuda(1)]), ["--device", "cuda:1"]);
    }
}
