//! End-to-end tests of `ember embed …` on small generated tables.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ember(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ember")).args(args).output().expect("run ember")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// 40 tokens in d = 8 (deterministic pseudo-random), with `queen` = `king` + a small offset
/// and `man` = `king` · 3 (same direction, far away), written as GloVe text.
fn glove(dir: &Path) -> PathBuf {
    let mut state = 12345u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
    };
    let king: Vec<f64> = (0..8).map(|_| next()).collect();
    let mut text = String::new();
    let line = |w: &str, v: &[f64]| format!("{w} {}\n", v.iter().map(|x| format!("{x:.6}")).collect::<Vec<_>>().join(" "));
    text += &line("king", &king);
    text += &line("queen", &king.iter().map(|x| x + 0.05).collect::<Vec<_>>());
    text += &line("man", &king.iter().map(|x| x * 3.0).collect::<Vec<_>>());
    for i in 0..37 {
        let v: Vec<f64> = (0..8).map(|_| next()).collect();
        text += &line(&format!("w{i}"), &v);
    }
    let path = dir.join("table.txt");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn stats_json_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let table = glove(dir.path());
    let o = ember(&["embed", "stats", table.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["rows"], 40);
    assert_eq!(v["dim"], 8);
    for k in ["mean", "std", "min", "max"] {
        assert!(v["norm"][k].is_f64(), "norm.{k} in {v}");
    }
    assert!(v["mean_vector_norm"].is_f64() && v["anisotropy"].is_f64());
    let ev: Vec<f64> = v["explained_variance"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(ev.len(), 8);
    assert!((ev.iter().sum::<f64>() - 1.0).abs() < 1e-4 && ev.windows(2).all(|w| w[0] >= w[1]), "{ev:?}");
    let o = ember(&["embed", "stats", table.to_str().unwrap()]);
    assert!(o.status.success() && stdout(&o).contains("anisotropy") && stdout(&o).contains("PC1"), "{}", stdout(&o));
}

#[test]
fn neighbors_per_metric() {
    let dir = tempfile::tempdir().unwrap();
    let table = glove(dir.path());
    let t = table.to_str().unwrap();
    // cosine: man (same direction) and queen are the top two; euclidean: queen first, man far.
    let o = ember(&["embed", "neighbors", t, "--token", "king", "--k", "3", "--metric", "euclidean", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["query"], "king");
    assert_eq!(v["metric"], "euclidean");
    let n = v["neighbors"].as_array().unwrap();
    assert_eq!(n.len(), 3);
    assert_eq!(n[0]["token"], "queen");
    assert_eq!(n[0]["id"], 1);
    assert!((n[0]["score"].as_f64().unwrap() - 0.05 * 8f64.sqrt()).abs() < 1e-4);
    assert!(n.iter().all(|e| e["token"] != "king" && e["token"] != "man"));
    let o = ember(&["embed", "neighbors", t, "--token", "king", "--k", "2", "--metric", "cosine", "--json"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["neighbors"][0]["token"], "man");
    assert!((v["neighbors"][0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-5);
    let o = ember(&["embed", "neighbors", t, "--token", "king", "--metric", "dot", "--json"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["neighbors"].as_array().unwrap().len(), 10);
    assert_eq!(v["neighbors"][0]["token"], "man", "3× king has the largest dot product");
    for extra in [&["--center"][..], &["--whiten"], &["--remove-top", "2"], &["--center", "--remove-top", "1", "--whiten"]] {
        let mut args = vec!["embed", "neighbors", t, "--token", "queen", "--metric", "cosine"];
        args.extend_from_slice(extra);
        let o = ember(&args);
        assert!(o.status.success() && stdout(&o).contains("nearest to `queen` by cosine"), "{extra:?}: {}", stderr(&o));
    }
}

#[test]
fn user_errors_exit_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let table = glove(dir.path());
    let t = table.to_str().unwrap();
    let o = ember(&["embed", "neighbors", t, "--token", "kingg"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("`kingg` is not in the table") && stderr(&o).contains("did you mean: king"), "{}", stderr(&o));
    let o = ember(&["embed", "neighbors", t, "--token", "king", "--metric", "manhattan"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown metric"), "{}", stderr(&o));
    let o = ember(&["embed", "stats", t, "--backend", "tpu"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown backend"), "{}", stderr(&o));
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "a 1 2\nb 3 4\nc 5 oops\n").unwrap();
    let o = ember(&["embed", "stats", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad.txt:3: field 3 of `c` is `oops`"), "{}", stderr(&o));
    let o = ember(&["embed", "stats", dir.path().join("nope.txt").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn safetensors_table_with_vocab() {
    let dir = tempfile::tempdir().unwrap();
    // safetensors by hand: u64 header length, JSON header, little-endian f32 data.
    let values: Vec<f32> = vec![1.0, 0.0, 0.9, 0.1, 0.0, 1.0];
    let header = r#"{"emb.weight":{"dtype":"F32","shape":[3,2],"data_offsets":[0,24]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    let st = dir.path().join("model.safetensors");
    std::fs::write(&st, bytes).unwrap();
    let vocab = dir.path().join("tokens.txt");
    std::fs::write(&vocab, "east\nnortheast\nnorth\n").unwrap();
    let args = ["embed", "neighbors", st.to_str().unwrap(), "--tensor", "emb.weight", "--vocab", vocab.to_str().unwrap(), "--token", "east", "--k", "1", "--json"];
    let o = ember(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(r#""neighbors":[{"token":"northeast","id":1"#), "{}", stdout(&o));
    let o = ember(&["embed", "stats", st.to_str().unwrap(), "--tensor", "wte", "--vocab", vocab.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("available: emb.weight"), "{}", stderr(&o));
}

#[test]
fn plot_writes_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let table = glove(dir.path());
    let out = dir.path().join("table.png");
    let o = ember(&["embed", "plot", table.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let png = std::fs::read(&out).unwrap();
    assert!(png.len() > 10_000 && &png[1..4] == b"PNG");
}

/// A tiny run of `ember train` (the rope model of tests/golden/tiny-train.toml, 6 steps, d 16,
/// 1 layer, context 8, on the first 20,000 characters of tiny Shakespeare), trained once per
/// test binary into a directory that lives as long as the process.
fn tiny_run() -> &'static Path {
    static RUN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let corpus: String = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/tinyshakespeare.txt")).unwrap().chars().take(20_000).collect();
        std::fs::write(dir.join("corpus.txt"), corpus).unwrap();
        let config = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/tiny-train.toml")).unwrap().replace("CORPUS", &dir.join("corpus.txt").display().to_string())
            + &format!("\n[run]\nout_dir = \"{}\"\n", dir.join("run").display());
        std::fs::write(dir.join("tiny.toml"), config).unwrap();
        let o = ember(&["train", dir.join("tiny.toml").to_str().unwrap(), "--quiet"]);
        assert!(o.status.success(), "{}", stderr(&o));
        dir.join("run")
    })
}

fn json(args: &[&str]) -> serde_json::Value {
    let o = ember(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_str(stdout(&o).trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stdout(&o)))
}

fn fails_with(args: &[&str], message: &str) {
    let o = ember(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains(message), "{args:?}: expected `{message}` in: {}", stderr(&o));
}

#[test]
fn stats_of_a_run_correlate_norms_with_frequency() {
    let run = tiny_run().to_str().unwrap();
    let v = json(&["embed", "stats", run, "--json"]);
    let nf = &v["norm_frequency"];
    assert_eq!(nf.as_object().unwrap().len(), 3, "{nf}");
    let counted = nf["tokens_counted"].as_u64().unwrap();
    assert!(counted > 30 && counted <= v["rows"].as_u64().unwrap(), "{nf}");
    assert!(nf["spearman"].as_f64().unwrap().abs() <= 1.0 && nf["pearson"].as_f64().unwrap().abs() <= 1.0);
    assert!(v["centered_norm"]["mean"].is_f64());
    let o = ember(&["embed", "stats", run]);
    assert!(stdout(&o).contains("norm vs log freq") && stdout(&o).contains("training split of"), "{}", stdout(&o));
    // From another directory, output piped to a file, on another backend: the same numbers.
    let dir = tempfile::tempdir().unwrap();
    let out = std::fs::File::create(dir.path().join("s.json")).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_ember")).current_dir(dir.path()).args(["embed", "stats", run, "--json", "--backend", "ndarray"]).stdout(out).status().unwrap();
    assert!(status.success());
    let w: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("s.json")).unwrap()).unwrap();
    assert_eq!(w["norm_frequency"]["tokens_counted"], nf["tokens_counted"]);
    assert!((w["norm_frequency"]["spearman"].as_f64().unwrap() - nf["spearman"].as_f64().unwrap()).abs() < 1e-6);
}

#[test]
fn counts_file_for_an_external_table() {
    let dir = tempfile::tempdir().unwrap();
    let table = glove(dir.path());
    let t = table.to_str().unwrap();
    // king 1000, queen 100, man 10, w0 0 (excluded), zebra: not in the table
    let counts = dir.path().join("counts.txt");
    std::fs::write(&counts, "king 1000\nqueen 100\nman 10\nw0 0\nzebra 5\n").unwrap();
    let o = ember(&["embed", "stats", t, "--counts", counts.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 token(s) of") && stderr(&o).contains("zebra"), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["norm_frequency"]["tokens_counted"], 3);
    // norms: man = 3·‖king‖ > queen ≈ king; counts king > queen > man → negative rank correlation
    assert!(v["norm_frequency"]["spearman"].as_f64().unwrap() < 0.0, "{v}");
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "king 1000\nqueen many\n").unwrap();
    fails_with(&["embed", "stats", t, "--counts", bad.to_str().unwrap()], "bad.txt:2: the count of `queen` is `many`, not a non-negative integer");
    fails_with(&["embed", "plot", t, "--counts", "--out", dir.path().join("x.png").to_str().unwrap()], "not a run directory; pass --counts FILE");
    let png = dir.path().join("c.png");
    let o = ember(&["embed", "plot", t, "--counts", counts.to_str().unwrap(), "--out", png.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(image::open(&png).unwrap().width(), 2100, "three panels");
}

#[test]
fn plot_of_a_run_with_its_counts() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("run.svg");
    let o = ember(&["embed", "plot", tiny_run().to_str().unwrap(), "--counts", "--out", svg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("Row norm vs log frequency") && text.contains("most frequent"), "labels by frequency");
}

#[test]
fn contextual_neighbors_of_a_run() {
    let run = tiny_run().to_str().unwrap();
    for backend in ["flex", "ndarray"] {
        let v = json(&["embed", "neighbors", run, "--context", "First Citizen", "--at", "3", "--layer", "1", "-k", "4", "--sample", "64", "--json", "--backend", backend]);
        assert_eq!((v["query"].as_str(), v["layer"].as_u64(), v["position"].as_u64()), (Some("s"), Some(1), Some(3)), "{v}");
        assert_eq!(v["metric"], "cosine");
        assert_eq!(v["neighbors"].as_array().unwrap().len(), 4);
        let c = v["corpus_neighbors"].as_array().unwrap();
        assert_eq!(c.len(), 4);
        assert!(c.iter().all(|n| n["context"].as_str().unwrap().contains('[')), "{v}");
        assert_eq!(v["sample"], 64);
    }
    // default layer = the last (1 block → layer 1); euclidean scores grow down the list
    let v = json(&["embed", "neighbors", run, "--context", "ROMEO", "--at", "0", "--metric", "euclidean", "--json"]);
    assert_eq!(v["layer"], 1);
    let s: Vec<f64> = v["corpus_neighbors"].as_array().unwrap().iter().map(|n| n["score"].as_f64().unwrap()).collect();
    assert!(s.windows(2).all(|w| w[0] <= w[1]), "{s:?}");
    let o = ember(&["embed", "neighbors", run, "--context", "First Citizen", "--at", "0", "--layer", "0"]);
    assert!(o.status.success() && stdout(&o).contains("after layer 0") && stdout(&o).contains("sampled corpus positions"), "{}", stdout(&o));
    let v = json(&["embed", "neighbors", run, "--compare", "--token", "e", "--contexts", "5", "--json"]);
    assert_eq!(v["layers"].as_array().unwrap().len(), 2);
    assert_eq!(v["contexts"].as_array().unwrap().len(), 5);
    let o = ember(&["embed", "neighbors", run, "--compare", "--context", "the", "--at", "2"]);
    assert!(o.status.success() && stdout(&o).contains("`e` in 16 corpus contexts"), "{}{}", stdout(&o), stderr(&o));
}

#[test]
fn contextual_input_errors() {
    let run = tiny_run().to_str().unwrap();
    fails_with(&["embed", "neighbors", run, "--context", "abc", "--at", "3"], "position 3 is past the text: it has 3 tokens, so use 0..=2");
    fails_with(&["embed", "neighbors", run, "--context", "abc", "--at", "-1"], "position -1 is past the text");
    fails_with(&["embed", "neighbors", run, "--context", "abc", "--at", "0", "--layer", "2"], "--layer: 2 is out of range: the model has 1 layers; use 0..=1");
    fails_with(&["embed", "neighbors", run, "--context", "abc", "--at", "0", "--sample", "0"], "--sample");
    fails_with(&["embed", "neighbors", run, "--context", "abc"], "needs both --context TEXT and --at N");
    fails_with(&["embed", "neighbors", run, "--context", "abc", "--at", "0", "--center"], "do not apply to --context");
    fails_with(&["embed", "neighbors", run, "--context", "abc", "--at", "0", "-k", "0"], "--k 0: pass a positive number");
    fails_with(&["embed", "neighbors", run, "--token", "e", "--k", "-3"], "--k -3: pass a positive number");
    fails_with(&["embed", "neighbors", run, "--context", "abc", "--at", "0", "--seed", "-1"], "--seed -1");
    fails_with(&["embed", "neighbors", run, "--compare", "--token", "e", "--contexts", "1"], "at least 2 contexts");
    fails_with(&["embed", "neighbors", run, "--compare"], "--compare needs the token");
    let dir = tempfile::tempdir().unwrap();
    let table = glove(dir.path());
    fails_with(&["embed", "neighbors", table.to_str().unwrap(), "--context", "king", "--at", "0"], "is not a run directory");
}

#[test]
fn quantize_a_run_and_read_the_table_back() {
    let run = tiny_run().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q8.safetensors");
    let o = ember(&["embed", "quantize", run, "--bits", "8", "--max-tokens", "500", "--out", out.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let want = ["bits", "scheme", "bytes_before", "bytes_after", "max_abs_err", "recall_at_10", "val_loss_fp32", "val_loss_quantized"];
    assert_eq!(v.as_object().unwrap().len(), want.len(), "exactly these keys: {v}");
    let at: Vec<usize> = want.iter().map(|k| stdout(&o).find(&format!("\"{k}\":")).unwrap_or_else(|| panic!("{k} missing"))).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "in this order: {}", stdout(&o));
    let v_rows = json(&["embed", "stats", run, "--json"])["rows"].as_u64().unwrap();
    assert_eq!(v["bytes_before"].as_u64(), Some(4 * 16 * v_rows));
    assert_eq!(v["bytes_after"].as_u64(), Some(16 * v_rows + 4 * v_rows));
    assert!((v["val_loss_quantized"].as_f64().unwrap() - v["val_loss_fp32"].as_f64().unwrap()).abs() < 0.01, "{v}");
    // read back: stats and neighbours of the dequantized table
    let s = json(&["embed", "stats", out.to_str().unwrap(), "--json"]);
    assert_eq!((s["rows"].as_u64(), s["dim"].as_u64()), (Some(v_rows), Some(16)));
    let n = json(&["embed", "neighbors", out.to_str().unwrap(), "--token", "e", "-k", "3", "--json"]);
    assert_eq!(n["neighbors"].as_array().unwrap().len(), 3);
    let g = json(&["embed", "quantize", run, "--bits", "4", "--scheme", "groupwise", "--group", "4", "--max-tokens", "500", "--json"]);
    assert_eq!((g["bits"].as_u64(), g["scheme"].as_str()), (Some(4), Some("groupwise-4")));
    assert_eq!(g["bytes_after"].as_u64(), Some(8 * v_rows + 4 * 4 * v_rows));
    let o = ember(&["embed", "quantize", run, "--bits", "4", "--max-tokens", "200"]);
    assert!(o.status.success() && stdout(&o).contains("recall@10") && stdout(&o).contains("val loss quantized"), "{}", stdout(&o));
    fails_with(&["embed", "quantize", run, "--bits", "3"], "--bits: 3: only 8-bit and 4-bit codes are supported");
    fails_with(&["embed", "quantize", run, "--bits", "-8"], "--bits: -8");
    fails_with(&["embed", "quantize", run, "--bits", "8", "--scheme", "groupwise", "--group", "5"], "5 does not divide d = 16");
    fails_with(&["embed", "quantize", run, "--bits", "8", "--scheme", "groupwise", "--group", "0"], "positive divisor");
    fails_with(&["embed", "quantize", run, "--bits", "8", "--scheme", "groupwise"], "needs --group G");
    fails_with(&["embed", "quantize", run, "--bits", "8", "--max-tokens", "0"], "--max-tokens 0");
    // A table file: sizes, error and recall, no model so no losses; read back as a table.
    let table = glove(dir.path());
    let qt = dir.path().join("glove4.safetensors");
    let t = json(&["embed", "quantize", table.to_str().unwrap(), "--bits", "4", "--scheme", "groupwise", "--group", "4", "--out", qt.to_str().unwrap(), "--json"]);
    assert_eq!((t["bytes_before"].as_u64(), t["bytes_after"].as_u64()), (Some(4 * 40 * 8), Some(40 * 4 + 4 * 40 * 2)));
    assert!(t["val_loss_fp32"].is_null() && t["val_loss_quantized"].is_null() && t["recall_at_10"].as_f64().unwrap() > 0.5, "{t}");
    let n = json(&["embed", "neighbors", qt.to_str().unwrap(), "--token", "king", "-k", "1", "--metric", "euclidean", "--json"]);
    assert_eq!(n["neighbors"][0]["token"], "queen");
    fails_with(&["embed", "quantize", table.to_str().unwrap(), "--bits", "8", "--max-tokens", "10"], "--max-tokens applies to a run directory");
}
