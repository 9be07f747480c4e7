//! What the engine's test files share: the fixture checkpoints and images, and waiting
//! for an engine to go idle.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vlm_core::ImageData;
use vlm_engine::{Engine, EngineStats};
use vlm_models::loader::Snapshot;
use vlm_models::{LoadOptions, VlmModel};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// A fixture checkpoint in f32.
pub fn model(name: &str) -> Arc<VlmModel> {
    let snapshot = Snapshot::open(fixtures().join(name)).unwrap();
    Arc::new(VlmModel::load(snapshot, &LoadOptions::default()).unwrap())
}

pub fn image(name: &str) -> ImageData {
    ImageData::new(std::fs::read(fixtures().join("images").join(name)).unwrap())
}

/// The engine's stats once it has nothing running or waiting (the last step's bookkeeping
/// lands just after its final token is sent).
pub fn wait_idle(engine: &Engine) -> EngineStats {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = engine.stats();
        if stats.running + stats.waiting == 0 && stats.kv_blocks_used == 0 {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "engine never went idle: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
