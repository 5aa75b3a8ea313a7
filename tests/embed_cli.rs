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
