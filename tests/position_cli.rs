//! End-to-end tests of `ember position show/plot` flag parsing: flags are parsed into the
//! same `PositionConfig` as TOML, negative numbers are accepted as typed, errors name flags.

use std::process::{Command, Output};

fn ember(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ember")).args(args).output().expect("run ember")
}

fn show_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["position", "show", "--json"];
    all.extend_from_slice(args);
    let o = ember(&all);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let mut all = vec!["position", "show"];
    all.extend_from_slice(args);
    let o = ember(&all);
    assert_eq!(o.status.code(), Some(2), "{args:?} should be a user error: {}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn vector_with_negative_numbers_is_accepted() {
    let v = show_json(&["--scheme", "rope", "--dim", "4", "--positions", "2", "--vector", "-0.5,1,2,0.25"]);
    assert_eq!(v["rotated"][0], serde_json::json!([-0.5, 1.0, 2.0, 0.25]), "position 0 leaves the vector as it is");
    let v = show_json(&["--scheme", "rope", "--dim", "4", "--positions", "1", "--vector=-1,-2,-3,-4"]);
    assert_eq!(v["rotated"][0], serde_json::json!([-1.0, -2.0, -3.0, -4.0]));
}

#[test]
fn negative_numeric_flags_reach_the_config_checks() {
    for (flag, value, field) in [("--base", "-5", "rope.base"), ("--factor", "-2", "rope.scaling.factor"), ("--partial-rotary-factor", "-0.5", "rope.partial_rotary_factor")] {
        let mut args = vec!["--scheme", "rope", flag, value];
        if flag == "--factor" {
            args.extend(["--scaling", "linear"]);
        }
        let e = fails(&args);
        assert!(e.contains(field) && !e.contains("unexpected argument"), "{flag} {value}: {e}");
    }
    let e = fails(&["--scheme", "learned", "--init-std", "-1e-3"]);
    assert!(e.contains("learned.init_std"), "{e}");
    let e = fails(&["--scheme", "sinusoidal", "--dim", "-4"]);
    assert!(e.contains("--dim") && e.contains("-4") && !e.contains("unexpected argument"), "{e}");
}

#[test]
fn both_half_split_spellings_and_the_default_agree() {
    let base = ["--scheme", "rope", "--dim", "8", "--positions", "3", "--vector", "1,2,3,4,5,6,7,8"];
    let default = show_json(&base);
    for layout in ["half_split", "half-split"] {
        let mut args = base.to_vec();
        args.extend(["--layout", layout]);
        assert_eq!(show_json(&args), default, "{layout}");
    }
    let mut args = base.to_vec();
    args.extend(["--layout", "interleaved"]);
    assert_ne!(show_json(&args), default);
}

#[test]
fn flag_defaults_are_the_toml_defaults() {
    // yarn's beta_fast 32 / beta_slow 1 and sinusoidal's base 10000 come from the config types.
    let implicit = show_json(&["--scheme", "rope", "--dim", "16", "--scaling", "yarn", "--factor", "4", "--original-max", "64"]);
    let explicit = show_json(&["--scheme", "rope", "--dim", "16", "--scaling", "yarn", "--factor", "4", "--original-max", "64", "--beta-fast", "32", "--beta-slow", "1", "--base", "10000"]);
    assert_eq!(implicit, explicit);
    let v = show_json(&["--scheme", "learned", "--positions", "5"]);
    assert_eq!(v, serde_json::json!({"max_len": 5, "init_std": 0.02}), "max_len defaults to --positions");
}

#[test]
fn options_that_do_not_apply_or_are_missing_name_the_flag() {
    let e = fails(&["--scheme", "sinusoidal", "--factor", "2"]);
    assert!(e.contains("--scheme sinusoidal") && e.contains("`--factor`"), "{e}");
    let e = fails(&["--scheme", "rope", "--scaling", "linear", "--beta-fast", "3", "--factor", "2"]);
    assert!(e.contains("--scaling linear") && e.contains("`--beta-fast`"), "{e}");
    let e = fails(&["--scheme", "rope", "--scaling", "dynamic", "--factor", "2"]);
    assert!(e.contains("missing field `--max-position`"), "{e}");
    let e = fails(&["--scheme", "alibi", "--base", "2"]);
    assert!(e.contains("`--base`"), "{e}");
    let e = fails(&["--scheme", "rope", "--seq-len", "9"]);
    assert!(e.contains("--seq-len"), "{e}");
    let e = fails(&["--scheme", "rotary"]);
    assert!(e.contains("rotary") && e.contains("sinusoidal"), "{e}");
    let e = fails(&["--scheme", "sinusoidal", "--vector", "1,2"]);
    assert!(e.contains("only rope rotates a vector"), "{e}");
    let e = fails(&["--scheme", "rope", "--dim", "4", "--vector", "1,2,3"]);
    assert!(e.contains("3 values") && e.contains('4'), "{e}");
}

#[test]
fn help_points_to_a_readme_that_exists() {
    let o = ember(&["position", "show", "--help"]);
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(!help.contains("crates/position/README.md"), "{help}");
    assert!(help.contains("README.md"), "{help}");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(readme.contains("### `ember position show` / `plot`") && readme.contains("`show --json` prints one object"));
}

#[test]
fn plot_writes_a_png_and_rejects_learned() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sin.png");
    let o = ember(&["position", "plot", "--scheme", "sinusoidal", "--dim", "16", "--positions", "20", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("wrote {} (sinusoidal heatmap, 20 positions x 16 features)\n", out.display()));
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (900, 650));
    let o = ember(&["position", "plot", "--scheme", "learned", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to plot for `learned`"));
}

#[test]
fn learned_bias_schemes_show_their_fixed_parts_and_name_bad_settings() {
    // T5 (4 buckets, max distance 6): exact buckets 0, 1; then 2 + ⌊2·ln(n/2)/ln 3⌋, capped at 3
    let v = show_json(&["--scheme", "t5", "--positions", "6", "--num-buckets", "4", "--max-distance", "6"]);
    assert_eq!(v["buckets"][5], serde_json::json!([3, 3, 2, 2, 1, 0]), "{v}");
    assert_eq!(v["buckets"][0][1], serde_json::Value::Null, "future keys are masked");
    // KERPLE at init: −ln(1 + m_h (i − j)) with ALiBi's slopes (2 heads: 1/16, 1/256)
    let v = show_json(&["--scheme", "kerple", "--heads", "2", "--positions", "3"]);
    let b = v["bias"][0][2][0].as_f64().unwrap();
    assert!((b + (1.0f64 + 2.0 / 16.0).ln()).abs() < 1e-12, "{v}");
    // FIRE's input at the initial c = 0.1: ψ(i − j)/ψ(max(L, i))
    let v = show_json(&["--scheme", "fire", "--positions", "4", "--threshold", "2"]);
    let x = v["normalized"][3][0].as_f64().unwrap();
    assert!((x - 1.0).abs() < 1e-12 && v["normalized"][1][0].as_f64().unwrap() > 0.0, "{v}");
    let v = show_json(&["--scheme", "xpos", "--dim", "4", "--gamma", "0.4"]);
    assert_eq!(v["zeta"].as_array().unwrap().len(), 2);
    for (args, field) in [(&["--scheme", "t5", "--num-buckets", "0"][..], "t5.num_buckets"), (&["--scheme", "fire", "--hidden", "0"][..], "fire.hidden"), (&["--scheme", "xpos", "--scale-base", "-1"][..], "xpos.scale_base")] {
        let e = fails(args);
        assert!(e.contains(field), "{args:?}: {e}");
    }
    assert!(fails(&["--scheme", "kerple", "--num-buckets", "3"]).contains("--num-buckets"));
}
