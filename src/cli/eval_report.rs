//! `vlm-eval`'s results: `results.json` written, the table, details and throughput printed,
//! and an error when samples got no response.

use anyhow::{bail, Result};
use vlm_eval::{details, table, write_results, RunInfo, RunOptions, TaskRun};

/// Writes `results.json` to the output directory and prints the results; fails an
/// evaluation in which samples got no response.
pub fn report(runs: &[TaskRun], info: &RunInfo, options: &RunOptions) -> Result<()> {
    let path = write_results(runs, info, &options.output_dir)?;
    println!("{}", table(runs));
    print!("{}", details(runs, info.mode));
    for run in runs {
        let answered = run.effective - run.resumed;
        if run.generation_seconds > 0.0 {
            println!(
                "{}: {} samples ({} resumed) in {:.1} s generation ({:.2} samples/s), {} prompt + {} completion tokens",
                run.name,
                run.effective,
                run.resumed,
                run.generation_seconds,
                answered as f64 / run.generation_seconds,
                run.prompt_tokens,
                run.completion_tokens
            );
        }
    }
    println!("results: {}", path.display());
    let failed: usize = runs.iter().map(|r| r.failures).sum();
    if failed > 0 && info.mode == "evaluate" {
        bail!("{failed} samples got no response (scored as empty answers); rerun with --resume to retry them");
    }
    // Judge answers that never came were scored as empty extractions: not a clean run.
    let unjudged: u64 = runs
        .iter()
        .filter_map(|r| r.judge.as_ref())
        .filter_map(|j| j["failed"].as_u64())
        .sum();
    if unjudged > 0 {
        bail!(
            "{unjudged} judge requests failed (scored as empty extractions); rerun with \
             --resume (or `vlm-eval score`) to ask the judge again for just those"
        );
    }
    Ok(())
}
