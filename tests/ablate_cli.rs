//! End-to-end: `ember eval --rope-scaling`, and `ember ablate` (outputs, intervals and
//! --compare, resume, shards + --collect, --jobs; a failing shard or Ctrl-C ends every
//! shard; bad requests refused) on a tiny budget.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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
    write_custom(dir, out, "", "[[variant]]\nlabel = \"learned\"\nposition = { scheme = \"learned\", max_len = 8 }\n")
}

/// The tiny base and an ablation into `out` over seeds 1 and 2 of none, `more` (TOML
/// variants), rope and rope+linear, with `head` (TOML keys, e.g. `steps = …`) on top.
fn write_custom(dir: &Path, out: &str, head: &str, more: &str) -> PathBuf {
    let corpus: String = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/tinyshakespeare.txt")).unwrap().chars().take(5_000).collect();
    std::fs::write(dir.join("corpus.txt"), corpus).unwrap();
    let base = format!(
        "[model]\nd_model = 16\nn_layers = 1\nn_heads = 2\n[data]\ncorpus = \"{}\"\ncontext = 8\n\
         [train]\nbatch_size = 4\nsteps = 3\nlr = 1e-3\neval_interval = 1\neval_batches = 1\n",
        dir.join("corpus.txt").display()
    );
    std::fs::write(dir.join("base.toml"), base).unwrap();
    let ablation = format!(
        "{head}base = \"base.toml\"\nout_dir = \"{}\"\nseeds = [1, 2]\neval_lengths = [1, 2]\n[eval]\nmax_tokens = 64\n\
         [[variant]]\nlabel = \"none\"\nposition = {{ scheme = \"none\" }}\n{more}\
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
    let table = ok(ember(&["ablate", c, "--quiet", "--compare", "rope", "none"]));
    assert!(table.contains("| learned |") && table.contains("n/a"), "{table}");
    assert!(table.contains("95 % confidence interval over the 2 seeds") && table.contains(" ± "), "{table}");
    assert!(table.contains("paired difference from none") && table.contains("# Paired difference: rope − none"), "{table}");
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

/// Start `ember args…` with stderr into `log`; wait at most `limit` for it, then (if still
/// running) kill it and the shard processes it named, and fail. Returns its exit code and stderr.
fn run_bounded(mut cmd: Command, log: &Path, limit: Duration, mut started: impl FnMut(u32)) -> (Option<i32>, String) {
    let mut child = cmd.stdout(Stdio::null()).stderr(std::fs::File::create(log).unwrap()).spawn().expect("run ember");
    started(child.id());
    let t = Instant::now();
    while t.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), std::fs::read_to_string(log).unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let stderr = std::fs::read_to_string(log).unwrap();
    for pid in shard_pids(&stderr) {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    panic!("ember did not exit within {limit:?}; stderr:\n{stderr}");
}

/// The shard process ids `--jobs` prints ("shard i/n is process PID").
fn shard_pids(stderr: &str) -> Vec<i32> {
    stderr.lines().filter_map(|l| l.split(" is process ").nth(1)).filter_map(|r| r.split_whitespace().next()?.parse().ok()).collect()
}

/// Whether process `pid` exists (an unreaped zombie counts).
fn exists(pid: i32) -> bool {
    unsafe { libc::kill(pid, 0) == 0 }
}

fn ablate_jobs(config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ember"));
    c.args(["ablate", config.to_str().unwrap(), "--jobs", "2", "--quiet"]);
    c
}

#[test]
fn a_failing_shard_stops_the_others() {
    let dir = temp("fail");
    // A million steps: a shard left running would outlive the test's time limit.
    let config = write_custom(&dir, "fail", "steps = 1000000\n", "");
    // none seed 1 (shard 0/2's first job) cannot create its run directory: shard 0 fails.
    std::fs::create_dir_all(dir.join("fail/runs/none")).unwrap();
    std::fs::write(dir.join("fail/runs/none/seed-1"), "a file where the run directory goes").unwrap();
    let (code, stderr) = run_bounded(ablate_jobs(&config), &dir.join("stderr.log"), Duration::from_secs(120), |_| {});
    assert_eq!(code, Some(2), "the failed shard's exit code; stderr:\n{stderr}");
    assert!(stderr.contains("shard 0/2 failed") && stderr.contains("stopping the other shards"), "{stderr}");
    let pids = shard_pids(&stderr);
    assert_eq!(pids.len(), 2, "{stderr}");
    assert!(pids.iter().all(|&p| !exists(p)), "shards left running: {pids:?}\n{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ctrl_c_stops_every_shard_after_it_saves_a_checkpoint() {
    let dir = temp("ctrlc");
    let config = write_custom(&dir, "int", "steps = 1000000\n", "");
    let metrics = |s: u64| dir.join(format!("int/runs/none/seed-{s}/metrics.jsonl"));
    let (code, stderr) = run_bounded(ablate_jobs(&config), &dir.join("stderr.log"), Duration::from_secs(120), |pid| {
        // Both shards are training (none seed 1 and none seed 2): Ctrl-C the parent only
        // (the terminal's Ctrl-C reaches only it, the shards have their own process groups).
        let t = Instant::now();
        while ![1, 2].iter().all(|&s| metrics(s).metadata().is_ok_and(|m| m.len() > 0)) {
            assert!(t.elapsed() < Duration::from_secs(60), "the shards did not start training");
            std::thread::sleep(Duration::from_millis(100));
        }
        unsafe { libc::kill(pid as i32, libc::SIGINT) };
    });
    assert_eq!(code, Some(130), "{stderr}");
    let pids = shard_pids(&stderr);
    assert_eq!(pids.len(), 2, "{stderr}");
    assert!(pids.iter().all(|&p| !exists(p)), "shards left running: {pids:?}\n{stderr}");
    for s in [1, 2] {
        assert!(dir.join(format!("int/runs/none/seed-{s}/checkpoint.bin")).exists(), "seed {s} saved no checkpoint:\n{stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_requests_are_refused_before_anything_runs() {
    let dir = temp("bad");
    let config = write_ablation(&dir, "bad");
    let c = config.to_str().unwrap();
    let out = ember(&["ablate", c, "--compare", "rope", "nope"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--compare") && err.contains("`nope` is not a variant") && err.contains("none, learned, rope, rope+linear"), "{err}");
    assert!(!dir.join("bad").exists(), "nothing was trained");
    assert_eq!(ember(&["ablate", c, "--jobs", "0"]).status.code(), Some(2));
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap().replace("seeds = [1, 2]", "seeds = []")).unwrap();
    let out = ember(&["ablate", c]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.toml") && err.contains("`seeds`: the list is empty"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shipped_ablation_configs_load_and_shakespeare_has_seeds_for_intervals() {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    for name in ["ablation-shakespeare.toml", "ablation-copy.toml", "ablation-reverse.toml", "ablation-addition.toml"] {
        let a = ember_train::ablate::Ablation::load(&configs.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        // The grid covers every scheme the library offers.
        for scheme in ["none", "sinusoidal", "learned", "rope", "alibi", "t5", "kerple", "fire", "xpos"] {
            assert!(a.config.variants.iter().any(|v| v.position.as_ref().is_some_and(|p| p.scheme() == scheme)), "{name}: no {scheme} variant");
        }
        if name == "ablation-shakespeare.toml" {
            assert!(a.config.seeds.len() >= 3, "{name}: {:?}", a.config.seeds);
        }
    }
}
