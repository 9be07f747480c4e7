//! `vlm-eval`'s progress on the terminal: one bar per task.

use indicatif::{ProgressBar, ProgressStyle};
use vlm_eval::Progress;

/// One bar per task: samples done, rate and ETA.
pub fn progress_bars() -> impl FnMut(Progress<'_>) {
    let mut bar: Option<ProgressBar> = None;
    let style = ProgressStyle::with_template(
        "{prefix:>10} [{elapsed_precise}] {bar:32} {pos}/{len} {per_sec} ETA {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    let mut failed = 0usize;
    move |event| match event {
        Progress::TaskStarted {
            task,
            total,
            already_done,
        } => {
            let b = ProgressBar::new(total as u64).with_style(style.clone());
            b.set_prefix(task.to_string());
            b.set_position(already_done as u64);
            b.reset_eta();
            failed = 0;
            bar = Some(b);
        }
        Progress::SampleDone { failed: f, .. } => {
            if let Some(b) = &bar {
                if f {
                    failed += 1;
                    b.set_message(format!("{failed} failed"));
                }
                b.inc(1);
            }
        }
        Progress::TaskFinished { .. } => {
            if let Some(b) = bar.take() {
                b.finish();
            }
        }
    }
}
