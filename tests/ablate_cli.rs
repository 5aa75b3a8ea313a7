//! End-to-end: `ember eval --rope-scaling`, and `ember ablate` (outputs, resume, shards +
//! --collect, --jobs) on a tiny budget.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ember(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ember")).args(args).output().expect("run ember")
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "stdout: {}\nstderr: {}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-ablate-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A tiny base config and an ablation of none / learned / rope / rope+linear into `out`.
fn write_ablation(dir: &Path, out: &str) -> PathBuf {
    let corpus: String = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/tinyshakespeare.txt")).unwrap().chars().take(5_000).collect();
    std::fs::write(dir.join("corpus.txt"), corpus).unwrap();
    let base = format!(
        "[model]\nd_model = 16\nn_layers = 1\nn_heads = 2\n[data]\ncorpus = \"{}\"\ncontext = 8\n\
         [train]\nbatch_size = 4\nsteps = 3\nlr = 1e-3\neval_interval = 1\neval_batches = 1\n",
        dir.join("corpus.txt").display()
    );
    std::fs::write(dir.join("base.toml"), base).unwrap();
    let ablation = format!(
        "base = \"base.toml\"\nout_dir = \"{}\"\nseeds = [1, 2]\neval_lengths = [1, 2]\n[eval]\nmax_tokens = 64\n\
         [[variant]]\nlabel = \"none\"\nposition = {{ scheme = \"none\" }}\n\
         [[variant]]\nlabel = \"learned\"\nposition = {{ scheme = \"learned\", max_len = 8 }}\n\
         [[variant]]\nlabel = \"rope\"\nposition = {{ scheme = \"rope\" }}\n\
         [[variant]]\nlabel = \"rope+linear\"\neval_of = \"rope\"\nrope_scaling = {{ kind = \"linear\", factor = 2.0 }}\n",
        dir.join(out).display()
    );
    let path = dir.join(format!("{out}.toml"));
    std::fs::write(&path, ablation).unwrap();
    path
}

/// results.csv without the wall-clock column.
fn numbers(csv: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(csv).unwrap();
    let at = text.lines().next().unwrap().split(',').position(|h| h == "train_time_s").unwrap();
    text.lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            f.remove(at);
            f.join(",")
        })
        .collect()
}

#[test]
fn ablate_end_to_end_resume_shards_jobs_and_eval_scaling() {
    let dir = temp("e2e");
    let config = write_ablation(&dir, "full");
    let c = config.to_str().unwrap();
    let table = ok(ember(&["ablate", c, "--quiet"]));
    assert!(table.contains("| learned |") && table.contains("n/a"), "{table}");
    let out = dir.join("full");
    for f in ["results.csv", "results.json", "results.md", "loss_curves.png", "extrapolation.png"] {
        assert!(out.join(f).metadata().map(|m| m.len() > 0).unwrap_or(false), "{f} missing");
    }
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4 * 2 * 2 * 2, "variants × seeds × lengths × modes");
    // Rerun: every cell is skipped, nothing trains.
    let again = ember(&["ablate", c, "--quiet"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("0 cells evaluated, 8 already done, trained []"), "{}", String::from_utf8_lossy(&again.stderr));

    // Shards into another directory, then --collect: the same numbers.
    let sharded = write_ablation(&dir, "sharded");
    let s = sharded.to_str().unwrap();
    ok(ember(&["ablate", s, "--shard", "0/2", "--quiet"]));
    let early = ember(&["ablate", s, "--collect"]);
    assert_eq!(early.status.code(), Some(2), "collect names missing cells");
    assert!(String::from_utf8_lossy(&early.stderr).contains("not finished"));
    ok(ember(&["ablate", s, "--shard", "1/2", "--quiet"]));
    ok(ember(&["ablate", s, "--collect"]));
    assert_eq!(numbers(&dir.join("sharded/results.csv")), numbers(&out.join("results.csv")));
    // --jobs 2: child processes, same numbers.
    let jobs = write_ablation(&dir, "jobs");
    ok(ember(&["ablate", jobs.to_str().unwrap(), "--jobs", "2", "--quiet"]));
    assert_eq!(numbers(&dir.join("jobs/results.csv")), numbers(&out.join("results.csv")));

    // ember eval on a finished rope run, with and without scaling; learned refused past 8.
    let rope = out.join("runs/rope/seed-1");
    let r = rope.to_str().unwrap();
    let plain = ok(ember(&["eval", r, "--context", "16", "--json"]));
    for kind in ["linear", "dynamic", "yarn", "llama3"] {
        let scaled = ok(ember(&["eval", r, "--context", "16", "--json", "--rope-scaling", kind, "--factor", "2"]));
        assert!(scaled.contains("\"loss\""), "{kind}: {scaled}");
        if kind == "yarn" {
            assert_ne!(scaled, plain, "the attention factor changes the scores");
        }
    }
    assert_eq!(ember(&["eval", r, "--rope-scaling", "yarn"]).status.code(), Some(2), "--factor is required");
    assert_eq!(ember(&["eval", r, "--rope-scaling", "ntk", "--factor", "2"]).status.code(), Some(2));
    let learned = ember(&["eval", out.join("runs/learned/seed-1").to_str().unwrap(), "--context", "16"]);
    assert!(String::from_utf8_lossy(&learned.stderr).contains("trained on 8 positions"), "{}", String::from_utf8_lossy(&learned.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}
