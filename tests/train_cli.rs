//! End-to-end: `ember train` from a config file, Ctrl-C (SIGINT) saves a checkpoint and
//! exits with 130, `--resume` continues from it, `eval`/`sample`/`embed stats` read the run.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn ember() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ember"))
}

fn write_config(dir: &Path, steps: usize) -> std::path::PathBuf {
    let corpus: String = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/tinyshakespeare.txt"))
        .unwrap()
        .chars()
        .take(20_000)
        .collect();
    std::fs::write(dir.join("corpus.txt"), corpus).unwrap();
    // The tiny rope model of tests/golden/tiny-train.toml, with this test's step budget, no
    // evaluation until the end, and the run directory next to the config.
    let config = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/tiny-train.toml"))
        .unwrap()
        .replace("CORPUS", &dir.join("corpus.txt").display().to_string())
        .replace("steps = 6", &format!("steps = {steps}"))
        .replace("warmup = 2", "warmup = 0")
        .replace("eval_interval = 3", "eval_interval = 100000")
        + &format!("\n[run]\nout_dir = \"{}\"\n", dir.join("run").display());
    let path = dir.join("tiny.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_resume_continues() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 1_000_000);
    let run_dir = dir.path().join("run"); // also the config's out_dir; passed to check the hint
    let child = ember().arg("train").arg(&config).arg("--quiet").arg("--out").arg(&run_dir).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let metrics = dir.path().join("run/metrics.jsonl");
    let start = Instant::now();
    while std::fs::read_to_string(&metrics).map(|m| m.lines().count()).unwrap_or(0) < 20 {
        assert!(start.elapsed() < Duration::from_secs(120), "training did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill").arg("-INT").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The hint repeats the overrides the run was started with.
    let hint = format!("continue with: ember train {} --out {} --resume", config.display(), run_dir.display());
    assert!(stdout.contains(&hint), "{stdout}\nexpected: {hint}");
    let steps_done = std::fs::read_to_string(&metrics).unwrap().lines().count();
    assert!(dir.path().join("run/checkpoint.bin").exists());

    // Resume to a few more steps than were done: it continues, it does not restart.
    let target = steps_done + 5;
    let out = ember().arg("train").arg(&config).args(["--quiet", "--resume", "--steps"]).arg(target.to_string()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = std::fs::read_to_string(&metrics).unwrap();
    let steps: Vec<u64> = lines.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).filter(|v| v.get("loss").is_some()).map(|v| v["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, (0..target as u64).collect::<Vec<_>>(), "each step logged once, in order");
    assert!(String::from_utf8_lossy(&out.stdout).contains("val loss"));

    // The run directory serves eval, sample and embed.
    let run = dir.path().join("run");
    let curve = image::open(run.join("loss_curve.png")).expect("ember train draws loss_curve.png");
    assert_eq!((curve.width(), curve.height()), (900, 560));
    let out = ember().arg("eval").arg(&run).args(["--json", "--stride", "4", "--max-tokens", "200"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["tokens"].as_u64(), v["stride"].as_u64(), v["context"].as_u64()), (Some(200), Some(4), Some(8)));
    assert!((v["perplexity"].as_f64().unwrap() - v["loss"].as_f64().unwrap().exp()).abs() < 1e-6);
    let out = ember().arg("sample").arg(&run).args(["--prompt", "ROMEO", "--tokens", "10"]).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("ROMEO"));
    // Negative values reach ember's own checks, which say what is allowed.
    let neg = ember().arg("sample").arg(&run).args(["--temperature", "-1"]).output().unwrap();
    assert_eq!(neg.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&neg.stderr).contains("--temperature: must be ≥ 0"), "{}", String::from_utf8_lossy(&neg.stderr));
    // Greedy text past the window: the KV cache and --no-cache agree; --json reports the speed.
    let json = |extra: &[&str]| -> serde_json::Value {
        let out = ember().arg("sample").arg(&run).args(["--prompt", "RO", "--tokens", "20", "--temperature", "0", "--json"]).args(extra).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let (cached, uncached) = (json(&[]), json(&["--no-cache"]));
    assert_eq!(cached["text"], uncached["text"]);
    assert_eq!((cached["cached"].as_bool(), uncached["cached"].as_bool(), cached["tokens"].as_u64()), (Some(true), Some(false), Some(20)));
    assert!(cached["tokens_per_s"].as_f64().unwrap() > 0.0);
    let out = ember().args(["embed", "stats"]).arg(&run).arg("--json").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dim"].as_u64(), Some(16));
}

#[test]
fn bench_step_cli_reports_json() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 2);
    let out = ember().args(["bench", "step"]).arg(&config).args(["--steps", "2", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["steps"].as_u64(), Some(2));
    for key in ["forward_ms", "backward_ms", "step_ms", "tokens_per_s", "gflop_per_s"] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
    }
}

#[test]
fn gradcheck_cli_passes_and_reports_json() {
    let out = ember().args(["gradcheck", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pass"], serde_json::Value::Bool(true));
    let checks = v["checks"].as_array().unwrap();
    assert!(checks.len() >= 12);
    for c in checks {
        for key in ["name", "max_abs_err", "max_rel_err", "tolerance", "pass"] {
            assert!(c.get(key).is_some(), "{key} missing in {c}");
        }
    }
}

#[test]
fn bench_head_cli_reports_exactly_the_json_fields_and_rejects_bad_flags() {
    let sized = |vocab: &str, tokens: &str, extra: &[&str]| ember().args(["bench", "head", "--vocab", vocab, "--tokens", tokens, "--dim", "8", "--repeat", "1"]).args(extra).output().unwrap();
    let run = |extra: &[&str]| sized("50", "33", extra);
    for (extra, fused, chunk) in [(&[][..], false, None), (&["--fused"][..], true, Some(ember_embed::fused::default_chunk(50))), (&["--fused", "--chunk", "10"][..], true, Some(10))] {
        let out = run(&[extra, &["--json"][..]].concat());
        assert!(out.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["chunk", "dim", "fused", "ms", "peak_bytes", "tokens", "vocab"], "{v}");
        assert_eq!((v["vocab"].as_u64(), v["tokens"].as_u64(), v["dim"].as_u64()), (Some(50), Some(33), Some(8)));
        assert_eq!(v["fused"].as_bool(), Some(fused));
        assert_eq!(v["chunk"].as_u64(), chunk.map(|c| c as u64), "{v}");
        assert!(v["ms"].as_f64().is_some_and(|x| x > 0.0), "{v}");
        assert!(v["peak_bytes"].as_u64().is_some_and(|x| x > 1 << 20), "flex: the process peak RSS: {v}");
    }
    let text = run(&["--fused"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("peak memory"), "{}", String::from_utf8_lossy(&text.stdout));
    for ((vocab, tokens, extra), message) in [
        (("-5", "33", &[][..]), "--vocab: must be ≥ 1, got -5"),
        (("50", "0", &[][..]), "--tokens: must be ≥ 1, got 0"),
        (("50", "33", &["--fused", "--chunk", "-1"][..]), "--chunk: must be ≥ 1, got -1"),
        (("50", "33", &["--chunk", "4"][..]), "add --fused"),
        (("50", "33", &["--backend", "tpu"][..]), "tpu"),
    ] {
        let out = sized(vocab, tokens, extra);
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{extra:?}: {err}");
    }
}
