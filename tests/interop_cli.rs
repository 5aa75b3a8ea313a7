//! End-to-end, as a user runs it from another directory: `ember import nanogpt` on the
//! nanoGPT fixture, then `eval`, `sample`, `embed stats` and `export` on the new run; bad
//! input exits 2 with a clear message and writes nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// `ember ARGS` run in `cwd`.
fn ember(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ember")).current_dir(cwd).args(args).output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn imported_nanogpt_run_evaluates_samples_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let (ck, meta, corpus) = (repo("tests/fixtures/nanogpt/ckpt.pt"), repo("tests/fixtures/nanogpt/meta.pkl"), repo("data/tinyshakespeare.txt"));
    let s = |p: &PathBuf| p.display().to_string();
    let out = ok(&ember(dir.path(), &["import", "nanogpt", &s(&ck), "--meta", &s(&meta), "--corpus", &s(&corpus), "--out", "imported"]));
    assert!(out.contains("2 layers, 4 heads, d 16") && out.contains("tied head"), "{out}");
    let run = dir.path().join("imported");
    let tok = std::fs::read_to_string(run.join("tokenizer.json")).unwrap();
    assert!(tok.contains("\"WordLevel\"") && tok.contains("\"Fuse\""), "a Hugging Face tokenizer.json: {tok:.200}");

    // From yet another directory, with relative paths resolved by the user's shell.
    let elsewhere = tempfile::tempdir().unwrap();
    let run_s = s(&run);
    let report: serde_json::Value = serde_json::from_str(&ok(&ember(elsewhere.path(), &["eval", &run_s, "--max-tokens", "128", "--json"]))).unwrap();
    let torch: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(repo("tests/fixtures/nanogpt/logits.json")).unwrap()).unwrap();
    let (ember_loss, torch_loss) = (report["loss"].as_f64().unwrap(), torch["val_loss_8_windows"].as_f64().unwrap());
    assert!((ember_loss - torch_loss).abs() < 1e-5, "ember eval {ember_loss} vs PyTorch {torch_loss}");
    let text = ok(&ember(elsewhere.path(), &["sample", &run_s, "--tokens", "20", "--prompt", "ROMEO:"]));
    assert!(text.starts_with("ROMEO:") && text.trim_end().chars().count() >= 20, "{text}");
    assert!(ok(&ember(elsewhere.path(), &["embed", "stats", &run_s])).contains("65"));

    let exported = ok(&ember(elsewhere.path(), &["export", &run_s, "--format", "safetensors", "--names", "nanogpt", "--out", "w.safetensors"]));
    assert!(exported.contains("29 tensors"), "{exported}");
    assert!(elsewhere.path().join("w.safetensors").is_file());
    ok(&ember(elsewhere.path(), &["export", &run_s]));
    assert!(run.join("model.safetensors").is_file(), "default --out: inside the run");
}

#[test]
fn bad_input_exits_2_with_a_clear_message_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = repo("data/tinyshakespeare.txt").display().to_string();
    let meta = repo("tests/fixtures/nanogpt/meta.pkl").display().to_string();
    let cases: [(&str, &str); 3] = [
        (&corpus, "not a nanoGPT checkpoint"),
        ("missing.pt", "no such file"),
        (&meta, "not a nanoGPT checkpoint"),
    ];
    for (ck, needle) in cases {
        let out = ember(dir.path(), &["import", "nanogpt", ck, "--meta", &meta, "--corpus", &corpus, "--out", "run"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(needle), "{ck}: {err}");
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing written");
    }
    let out = ember(dir.path(), &["export", "no-such-run", "--names", "nanogpt"]);
    assert_eq!(out.status.code(), Some(2));
    let out = ember(dir.path(), &["export", "x", "--names", "gpt2"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("ember or nanogpt"));
}
