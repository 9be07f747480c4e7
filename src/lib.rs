//! The code behind the `vlm-run`, `vlm-serve` and `vlm-eval` binaries in `src/bin/`: each
//! binary parses its flags, turns them into the `vlm-*` crates' configurations and hands
//! off; what they share, and what would crowd a thin `main`, lives in [`cli`].

pub mod cli;
