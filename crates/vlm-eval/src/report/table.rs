//! What a run prints: lmms-eval's results table (`make_table`), then each task's breakdown
//! and failure warnings.

use crate::run::TaskRun;

/// lmms-eval's results table: one row per task metric, sorted by `metric,filter`, `%.4f`
/// values, the CLT column only when some metric has one.
pub fn table(runs: &[TaskRun]) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut any_clt = false;
    for run in runs {
        let mut metrics = run.scores.metrics.clone();
        metrics.sort_by_key(|m| format!("{},{}", m.name, m.filter));
        let cell = |v: Option<f64>| v.map_or("N/A".into(), |v| format!("{v:.4}"));
        for (i, m) in metrics.iter().enumerate() {
            any_clt |= m.stderr_clt.is_some();
            rows.push(vec![
                if i == 0 {
                    run.name.to_string()
                } else {
                    String::new()
                },
                m.filter.clone(),
                "0".into(),
                m.name.clone(),
                "↑".into(),
                // lmms-eval's None (MathVista at 0 accuracy) is NaN here, null in JSON.
                if m.value.is_nan() {
                    "N/A".into()
                } else {
                    format!("{:.4}", m.value)
                },
                "±".into(),
                cell(m.stderr),
                cell(m.stderr_clt),
            ]);
        }
    }
    let mut headers = vec![
        "Tasks", "Filter", "n-shot", "Metric", "", "Value", "", "Stderr",
    ];
    let mut right = vec![false, false, true, false, false, true, false, true];
    if any_clt {
        headers.push("Stderr_CLT");
        right.push(true);
    } else {
        rows.iter_mut().for_each(|r| {
            r.pop();
        });
    }
    let widths: Vec<usize> = (0..headers.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([headers[c].chars().count(), 3])
                .max()
                .unwrap_or(3)
        })
        .collect();
    let line = |cells: Vec<String>| format!("|{}|\n", cells.join("|"));
    let mut out = line(
        headers
            .iter()
            .zip(&widths)
            .map(|(h, &w)| format!("{h:^w$}"))
            .collect(),
    );
    out += &line(
        widths
            .iter()
            .zip(&right)
            .map(|(&w, &r)| {
                if r {
                    format!("{}:", "-".repeat(w - 1))
                } else {
                    "-".repeat(w)
                }
            })
            .collect(),
    );
    for row in &rows {
        out += &line(
            row.iter()
                .zip(widths.iter().zip(&right))
                .map(|(cell, (&w, &r))| {
                    if r {
                        format!("{cell:>w$}")
                    } else {
                        format!("{cell:<w$}")
                    }
                })
                .collect(),
        );
    }
    out
}

/// Each task's breakdown (what lmms-eval logs below its table) and failure warnings.
pub fn details(runs: &[TaskRun], mode: &str) -> String {
    let mut out = String::new();
    for run in runs {
        out += &run.scores.summary;
        if run.failures > 0 {
            let next = if mode == "score" {
                "they are marked `error` in the predictions file"
            } else {
                "vlm-eval --resume with the same flags retries them"
            };
            out += &format!(
                "WARNING {}: {} of {} samples got no response and were scored as empty answers \
                 (see `error` in {}); {next}\n",
                run.name,
                run.failures,
                run.effective,
                run.samples_file.display()
            );
        }
    }
    out
}
