//! `vlm-eval`'s command line: an evaluation by default, or one of its subcommands (score,
//! sweep, runs, leaderboard, queue, worker, sync, dashboard, tasks), each run by `vlm::cli`.

use std::process::ExitCode;

use clap::{ArgMatches, Args, Command, CommandFactory, FromArgMatches, Parser, Subcommand};
use vlm::cli::dashboard::{dashboard_command, DashboardArgs};
use vlm::cli::evaluate::{evaluate_command, score_command, EvaluateArgs, ScoreArgs};
use vlm::cli::main_with;
use vlm::cli::runs_commands::{leaderboard_command, runs_command, LeaderboardArgs, RunsArgs};
use vlm::cli::sweep::{sweep_command, SweepArgs};
use vlm::cli::sync_command::{sync_command, SyncArgs};
use vlm::cli::tasks_command::{tasks_command, TasksArgs};
use vlm::cli::workers::{queue_command, worker_command, QueueArgs, WorkerArgs};

/// The command line: `vlm-eval [flags]` evaluates; `vlm-eval score [flags]` rescores saved
/// predictions. Evaluating takes no subcommand, and a derived parser would build the
/// evaluation's flags even under `score` (failing on its required `--model`), so the
/// matches are told apart here.
enum Cli {
    Evaluate(Box<EvaluateArgs>),
    Other(Box<Subcommands>),
}

#[derive(Subcommand, Debug)]
enum Subcommands {
    #[command(
        display_name = "vlm-eval score",
        about = "Score a predictions JSONL ({\"doc_id\": ..., \"response\": ...} per line, or an \
                 lmms-eval samples file) without running a model"
    )]
    Score(ScoreArgs),
    /// Evaluate many models on the same tasks over a pool of devices (sweep.toml), reusing
    /// finished runs.
    Sweep(SweepArgs),
    /// List the runs in a runs store.
    Runs(RunsArgs),
    /// A task's leaderboard: each model's best completed run on its primary metric.
    Leaderboard(LeaderboardArgs),
    /// Put a sweep's runs in the runs store for workers, without running them.
    Queue(QueueArgs),
    /// Claim queued runs from the runs store and run them on this machine's devices.
    Worker(WorkerArgs),
    /// Record runs from existing output folders (ours and lmms-eval's) in the runs store.
    Sync(SyncArgs),
    /// Serve the runs store's REST API and the dashboard page.
    Dashboard(DashboardArgs),
    /// List the tasks --tasks knows (dataset, metrics); check task files given as arguments.
    Tasks(TasksArgs),
}

impl CommandFactory for Cli {
    fn command() -> Command {
        let command = Command::new("vlm-eval")
            .version(env!("CARGO_PKG_VERSION"))
            .about(
                "Evaluate a vision-language model on benchmarks (MME, MMMU-val, POPE, \
                 ScienceQA-IMG, AI2D, ChartQA, TextVQA, DocVQA, or a task file), scored as \
                 lmms-eval scores them",
            )
            // Without a subcommand the flags are an evaluation's; `score` takes only its
            // own, and the evaluation's required ones are not required with it.
            .args_conflicts_with_subcommands(true)
            .subcommand_negates_reqs(true)
            .propagate_version(true)
            .disable_help_subcommand(true);
        Subcommands::augment_subcommands(EvaluateArgs::augment_args(command))
    }

    fn command_for_update() -> Command {
        Self::command()
    }
}

impl FromArgMatches for Cli {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        if matches.subcommand_name().is_some() {
            Subcommands::from_arg_matches(matches).map(|s| Self::Other(Box::new(s)))
        } else {
            EvaluateArgs::from_arg_matches(matches).map(|args| Self::Evaluate(Box::new(args)))
        }
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Parser for Cli {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    main_with("vlm-eval", "warn", || match cli {
        Cli::Evaluate(args) => evaluate_command(*args),
        Cli::Other(sub) => match *sub {
            Subcommands::Score(args) => score_command(args),
            Subcommands::Sweep(args) => sweep_command(args),
            Subcommands::Runs(args) => runs_command(args),
            Subcommands::Leaderboard(args) => leaderboard_command(args),
            Subcommands::Queue(args) => queue_command(args),
            Subcommands::Worker(args) => worker_command(args),
            Subcommands::Sync(args) => sync_command(args),
            Subcommands::Dashboard(args) => dashboard_command(args),
            Subcommands::Tasks(args) => tasks_command(args),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_evaluate_and_score_rescores() {
        Cli::command().debug_assert();
        let evaluate = Cli::try_parse_from(["vlm-eval", "--tasks", "mme", "--model", "m"]);
        assert!(matches!(evaluate, Ok(Cli::Evaluate(_))));
        let score = [
            "vlm-eval",
            "score",
            "--tasks",
            "mme",
            "--predictions",
            "p.jsonl",
        ];
        assert!(matches!(
            Cli::try_parse_from(score),
            Ok(Cli::Other(ref s)) if matches!(**s, Subcommands::Score(_))
        ));
        let sweep = [
            "vlm-eval",
            "sweep",
            "--config",
            "s.toml",
            "--devices",
            "cpu:0,cpu:1",
        ];
        assert!(matches!(
            Cli::try_parse_from(sweep),
            Ok(Cli::Other(ref s)) if matches!(**s, Subcommands::Sweep(_))
        ));
        // The evaluation's flags belong to no subcommand.
        assert!(Cli::try_parse_from(["vlm-eval", "--tasks", "mme", "score"]).is_err());
    }
}
