//! The benchmarks. A task says which dataset split it reads, how one row becomes a prompt
//! (text and images, in the order the model sees them), how many tokens to generate, and
//! how responses are parsed and aggregated. MME and MMMU are written in Rust; the others
//! are task files (`crates/vlm-eval/tasks/*.toml`, built in) naming built-in scorers, and
//! a user's own task file is loaded from its path ([`resolve`]).

pub mod file;
pub mod mathvista;
pub mod mme;
pub mod mmmu;
pub mod scorers;
mod task;

use std::path::Path;

pub use file::{FileTask, TaskFileError};
pub use task::{store_metric_key, Metric, SampleScore, Task, TaskError, TaskScores};

/// The task files built into the binary: lmms-eval's task name and the file.
const BUILTIN_FILES: [(&str, &str); 6] = [
    ("pope", include_str!("../../tasks/pope.toml")),
    (
        "scienceqa_img",
        include_str!("../../tasks/scienceqa_img.toml"),
    ),
    ("ai2d", include_str!("../../tasks/ai2d.toml")),
    ("chartqa", include_str!("../../tasks/chartqa.toml")),
    ("textvqa_val", include_str!("../../tasks/textvqa_val.toml")),
    ("docvqa_val", include_str!("../../tasks/docvqa_val.toml")),
];

/// A task written in Rust: its lmms-eval name and how to make it.
type CodedTask = (&'static str, fn() -> Box<dyn Task>);

/// The tasks written in Rust that `vlm-eval tasks` lists before the shipped files.
const CODED_BEFORE_FILES: [CodedTask; 2] = [
    ("mme", || Box::new(mme::Mme)),
    ("mmmu_val", || Box::new(mmmu::MmmuVal)),
];

/// The tasks written in Rust that `vlm-eval tasks` lists after the shipped files.
const CODED_AFTER_FILES: [CodedTask; 3] = [
    ("mathvista_testmini_format", || {
        Box::new(mathvista::MathVista {
            shot: mathvista::ShotType::FormatPrompt,
        })
    }),
    ("mathvista_testmini_cot", || {
        Box::new(mathvista::MathVista {
            shot: mathvista::ShotType::StepByStep,
        })
    }),
    ("mathvista_testmini_solution", || {
        Box::new(mathvista::MathVista {
            shot: mathvista::ShotType::Solution,
        })
    }),
];

/// Every built-in task's name, in the order `vlm-eval tasks` lists them.
pub fn names() -> Vec<&'static str> {
    let coded = |tasks: &'static [CodedTask]| tasks.iter().map(|(name, _)| *name);
    coded(&CODED_BEFORE_FILES)
        .chain(BUILTIN_FILES.iter().map(|(name, _)| *name))
        .chain(coded(&CODED_AFTER_FILES))
        .collect()
}

/// A built-in task by its lmms-eval name.
pub fn by_name(name: &str) -> Option<Box<dyn Task>> {
    if let Some((_, make)) = CODED_BEFORE_FILES
        .iter()
        .chain(&CODED_AFTER_FILES)
        .find(|(n, _)| *n == name)
    {
        return Some(make());
    }
    let (_, text) = BUILTIN_FILES.iter().find(|(n, _)| *n == name)?;
    let path = Path::new("crates/vlm-eval/tasks").join(format!("{name}.toml"));
    // Shipped files are checked by a test; a broken one is a build defect.
    FileTask::parse(&path, text)
        .ok()
        .map(|t| Box::new(t.shipped()) as Box<dyn Task>)
}

/// A task from a task file's text as a run's config carries it (`task_file`): a queued
/// run on a worker without the file, or the dashboard showing a run's images.
pub fn from_definition(text: &str) -> Result<Box<dyn Task>, TaskFileError> {
    let task = FileTask::parse(Path::new("(the run's task_file)"), text)?;
    Ok(Box::new(task))
}

/// The task's name for a `--tasks` entry: the name a task file gives, else the entry.
pub fn name_of(spec: &str) -> String {
    match resolve(spec) {
        Ok(task) => task.name().to_string(),
        Err(_) => spec.to_string(),
    }
}

/// Whether a built-in task is one of the shipped task files (rather than written in Rust).
pub fn is_shipped_file(name: &str) -> bool {
    BUILTIN_FILES.iter().any(|(n, _)| *n == name)
}

/// Whether `spec` names a task file rather than a built-in task.
pub fn is_task_file(spec: &str) -> bool {
    spec.ends_with(".toml")
}

/// A built-in task by name, or the task file at `spec` (a path ending in `.toml`).
pub fn resolve(spec: &str) -> Result<Box<dyn Task>, TaskFileError> {
    if let Some(task) = by_name(spec) {
        return Ok(task);
    }
    if !is_task_file(spec) {
        return Err(TaskFileError::Unknown {
            name: spec.to_string(),
            known: names().join(", "),
        });
    }
    let path = Path::new(spec);
    let task = FileTask::load(path)?;
    if by_name(task.name()).is_some() {
        return Err(TaskFileError::ShadowsBuiltin {
            path: path.to_path_buf(),
            name: task.name().to_string(),
        });
    }
    Ok(Box::new(task))
}

/// A task name as lmms-eval and we write them: letters, digits, `_`, `-`, `.`, not
/// starting with a dot.
pub(crate) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_task_file_loads_under_its_name() {
        for (name, text) in BUILTIN_FILES {
            let task =
                FileTask::parse(Path::new(name), text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(task.name(), name);
            assert!(by_name(name).is_some());
            assert!(task.metric_names().contains(&task.primary_metric()));
            // Shipped tasks travel by name, not as files.
            assert_eq!(by_name(name).unwrap().definition(), None);
        }
        assert_eq!(names().len(), 11);
        // The runs store keys a filtered metric as results.json does, without `,none`.
        assert_eq!(
            by_name("ai2d").unwrap().primary_key(),
            "exact_match,flexible-extract"
        );
        assert_eq!(by_name("pope").unwrap().primary_key(), "pope_f1_score");
        assert_eq!(
            by_name("mme").unwrap().primary_key(),
            "mme_perception_score"
        );
    }
}
