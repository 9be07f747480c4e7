//! `--threads` / `--cpu-bind`: each compute worker runs on exactly one listed core. In its own
//! test binary because the compute pool can be configured once per process.

use vlm_engine::{available_cores, configure_threads, current_thread_cores, format_cpu_list};

#[test]
fn compute_workers_are_pinned_one_core_each() {
    let available = available_cores();
    // Unavailable or malformed cores are refused before anything is set up.
    let err = configure_threads(None, Some("1000"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("core 1000 is not available"), "{err}");
    let err = configure_threads(None, Some("0-100000"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("past the 1024 cores"), "{err}");
    assert!(configure_threads(None, Some("2-1"))
        .unwrap_err()
        .to_string()
        .contains("backwards"));
    let err = configure_threads(
        Some(available.len() + 1),
        Some(&format_cpu_list(&available)),
    )
    .unwrap_err();
    assert!(err.to_string().contains("more than"), "{err}");

    // The last two available cores (or the only one), in reverse order of worker index.
    let cores: Vec<usize> = available.iter().rev().take(2).copied().collect();
    let list = format_cpu_list(&{
        let mut c = cores.clone();
        c.sort_unstable();
        c
    });
    let plan = configure_threads(None, Some(&list)).unwrap();
    assert_eq!(plan.threads, cores.len());
    assert_eq!(
        std::env::var("CANDLE_NUM_THREADS").unwrap(),
        cores.len().to_string()
    );
    assert_eq!(std::env::var("CANDLE_CPU_MASK").unwrap(), list);
    let mut sorted = cores.clone();
    sorted.sort_unstable();
    let per_worker: Vec<Vec<usize>> = rayon::broadcast(|_| current_thread_cores());
    assert_eq!(per_worker.len(), sorted.len());
    for (i, set) in per_worker.iter().enumerate() {
        assert_eq!(
            set,
            &vec![sorted[i]],
            "worker {i} runs on exactly core {}",
            sorted[i]
        );
    }
    // Configured once per process.
    assert!(configure_threads(None, None).is_err());
    // Candle still computes on the pinned pool.
    let t = candle_core::Tensor::ones((64, 64), candle_core::DType::F32, &candle_core::Device::Cpu)
        .unwrap();
    let s = t
        .matmul(&t)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(s, 64.0 * 64.0 * 64.0);
}
