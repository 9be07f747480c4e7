//! The decoder's packed linear kernel against candle's matmul on the shapes of the bench
//! model (hidden 768, MLP 2048, vocab 32000) at decode (1 and 16 rows) and prefill (512
//! and 2048 rows). Prints GFLOP/s of both, measured back to back. `cargo bench --bench linear_kernel`

use candle_core::{Device, Tensor};
use std::time::Instant;
use vlm_models::layers::Linear;

fn gflops(m: usize, n: usize, k: usize, iters: usize, f: impl Fn()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    (2 * m * n * k * iters) as f64 / t.elapsed().as_secs_f64() / 1e9
}

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let shapes = [
        (1, 2048, 768),
        (16, 2048, 768),
        (16, 768, 2048),
        (1, 32000, 768),
        (16, 32000, 768),
        (512, 2048, 768),
        (2048, 2048, 768),
        (2048, 768, 2048),
    ];
    println!("rows  out    in     packed GFLOP/s  candle GFLOP/s  ratio");
    for (m, n, k) in shapes {
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev)?;
        let lin = Linear::new(candle_nn::Linear::new(w.clone(), None));
        let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
        let wt = w.t()?;
        let iters = (4_000_000_000 / (2 * m * n * k)).max(5);
        let ours = gflops(m, n, k, iters, || {
            lin.forward(&x).unwrap();
        });
        let candle = gflops(m, n, k, iters, || {
            x.matmul(&wt).unwrap();
        });
        println!(
            "{m:<5} {n:<6} {k:<6} {ours:<15.1} {candle:<15.1} {:.2}x",
            ours / candle
        );
    }
    Ok(())
}
