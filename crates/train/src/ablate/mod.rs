//! Ablating position schemes: `ember ablate CONFIG`.
//!
//! An ablation ([`config`]) names a base training config, the variants (any `[position]`
//! table, or an eval-only RoPE scaling of a trained RoPE variant), the seeds and the
//! evaluation lengths (multiples of the training context `T`). For every trained variant ×
//! seed it trains with the base's budget: the same steps, batch, schedule, data order (the
//! batch sampler is keyed by the seed only) and initialization seed; the position table of
//! `learned` is drawn after every other weight, so all other weights start equal too.
//! Each cell is then evaluated at every length with non-overlapping and sliding windows
//! ([`crate::eval::evaluate_split`]); a learned table past its training length is `n/a`
//! with the reason ([`crate::eval::untrained_length`]).
//!
//! ```text
//! out_dir/
//!   ablation.toml               the settings the cells were made with
//!   runs/<label>/seed-<s>/      a normal run directory per trained variant × seed
//!   cells/<label>/seed-<s>.json the finished cell's rows (results::Row), one file per cell
//!   results.csv results.json    every row: variant, seed, eval_len, mode, loss, perplexity,
//!                               tokens, train_time_s, reason
//!   results.md                  per mode: mean and 95 % t interval over seeds, variant ×
//!                               length; each variant's paired difference from the first
//!   loss_curves.png extrapolation.png   (drawn by the CLI)
//! ```
//!
//! With a synthetic task as the base's data ([`crate::tasks`]), lengths are multiples of the
//! task's `max_len` and each cell is scored by exact-match accuracy and answer loss on fresh
//! examples (mode `exact_match`).
//!
//! Files: [`config`] (schema), [`grid`] (cells, jobs, shards), [`runner`] (train + eval,
//! resume, skip), [`results`] (rows, CSV/JSON/Markdown), [`stats`] (t intervals, paired
//! differences).
//!
//! ## Seeds and statistics
//!
//! Every trained variant runs once per seed, and the seed is the only thing that differs
//! between the runs of a variant; variants at one seed share data order and initialization.
//! A cell of `results.md` is the mean over seeds with its 95 % Student-t interval
//! (`n − 1` degrees of freedom; none for one seed). Because variants share seeds, the
//! comparison that cancels seed-to-seed noise is *paired*: the per-seed difference of two
//! variants, averaged, with its own t interval ([`results::paired`]; `results.md` compares
//! every variant with the first, `ember ablate --compare A B` any two).
//!
//! ## Resuming, sharding, concurrency
//!
//! Rerunning the same command skips finished cells and resumes an interrupted training
//! from its checkpoint. `out_dir/ablation.toml` records the settings on the first run; a
//! later run with other settings into the same `out_dir` is refused rather than mixing cells. `--shard i/n` (0 ≤ i < n) runs only jobs `k ≡ i (mod n)` and writes
//! their cells; `--collect` merges every cell into the outputs (and names missing ones).
//! Shards only share `out_dir`, so they can run on different machines with a shared disk:
//!
//! ```text
//! # Slurm job array (4 shards), then the merge:
//! sbatch --array=0-3 --cpus-per-task=4 --wrap 'ember ablate configs/ablation-shakespeare.toml --shard $SLURM_ARRAY_TASK_ID/4'
//! ember ablate configs/ablation-shakespeare.toml --collect
//! # GNU parallel on one machine:
//! parallel -j4 'RAYON_NUM_THREADS=1 ember ablate configs/ablation-shakespeare.toml --shard {}/4 --quiet' ::: 0 1 2 3
//! ember ablate configs/ablation-shakespeare.toml --collect
//! ```
//!
//! `--jobs N` does the same on one machine: it starts N child processes (shards `i/N`),
//! each with `RAYON_NUM_THREADS = cores / N` so the CPU backend's rayon pool of each job
//! gets its own share of the cores, shows one progress bar over the cells, then collects.
//! A failing child or Ctrl-C stops the others (their trainings save a checkpoint; see the
//! CLI's `src/cli/ablate/jobs.rs`), so a rerun resumes.

pub mod config;
pub mod grid;
pub mod results;
pub mod runner;
pub mod stats;

pub use config::{Ablation, AblationConfig, EvalSettings, Variant};
pub use grid::{Cell, Job, Shard};
pub use results::Row;
pub use runner::{run_shard, AblateOptions, ShardOutcome};
