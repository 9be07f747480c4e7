//! Benchmark tasks, datasets and scoring (see DESIGN.md); filled in by the evaluation work.
