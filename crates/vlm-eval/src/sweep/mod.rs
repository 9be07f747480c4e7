//! Sweeps: many models over the same tasks, each on its share of a device pool; their
//! configuration and the devices they hand out.

mod config;
mod devices;

pub use config::{JudgeEntry, ModelEntry, Overrides, Sweep, SweepConfig, SweepConfigError};
pub use devices::{device_flags, parse_pool, Device, DeviceError};
