//! Pins the CLI's printed output byte for byte: `ember position show` (JSON and text) and
//! `ember embed stats/neighbors` (JSON and text) on fixed inputs. The files under
//! `tests/golden/` were written by the binary before the presentation code moved to
//! `src/viz`; a refactoring must not change them.
//!
//! To re-record after an intended output change: `EMBER_BLESS=1 cargo test --release --test golden_cli`
//! (then review the diff of `tests/golden/`).

use std::path::Path;
use std::process::Command;

/// (golden file name, arguments). `tests/golden/table.txt` is a fixed 24 × 6 GloVe-style table.
const CASES: &[(&str, &[&str])] = &[
    ("show-sinusoidal.json", &["position", "show", "--scheme", "sinusoidal", "--dim", "8", "--positions", "4", "--json"]),
    ("show-sinusoidal-halves.json", &["position", "show", "--scheme", "sinusoidal", "--layout", "halves", "--dim", "6", "--positions", "3", "--base", "500", "--json"]),
    ("show-rope-half-split.json", &["position", "show", "--scheme", "rope", "--dim", "8", "--positions", "4", "--vector", "1,2,3,4,5,6,7,8", "--json"]),
    ("show-rope-interleaved.json", &["position", "show", "--scheme", "rope", "--layout", "interleaved", "--dim", "8", "--positions", "4", "--vector", "1,2,3,4,5,6,7,8", "--json"]),
    ("show-rope-yarn.json", &["position", "show", "--scheme", "rope", "--dim", "16", "--scaling", "yarn", "--factor", "4", "--original-max", "64", "--json"]),
    ("show-rope-yarn-betas.json", &["position", "show", "--scheme", "rope", "--dim", "16", "--scaling", "yarn", "--factor", "4", "--original-max", "64", "--beta-fast", "16", "--beta-slow", "2", "--attention-factor", "1.5", "--json"]),
    ("show-rope-dynamic.json", &["position", "show", "--scheme", "rope", "--dim", "16", "--scaling", "dynamic", "--factor", "2", "--max-position", "4", "--seq-len", "16", "--json"]),
    ("show-rope-llama3.json", &["position", "show", "--scheme", "rope", "--dim", "16", "--base", "500000", "--scaling", "llama3", "--factor", "8", "--original-max", "32", "--json"]),
    ("show-rope-linear-partial.json", &["position", "show", "--scheme", "rope", "--dim", "8", "--partial-rotary-factor", "0.5", "--scaling", "linear", "--factor", "2", "--json"]),
    ("show-alibi.json", &["position", "show", "--scheme", "alibi", "--heads", "6", "--positions", "5", "--json"]),
    ("show-learned.json", &["position", "show", "--scheme", "learned", "--json"]),
    ("show-learned-set.json", &["position", "show", "--scheme", "learned", "--max-len", "32", "--init-std", "0.1", "--json"]),
    ("show-none.json", &["position", "show", "--scheme", "none", "--json"]),
    ("show-sinusoidal.txt", &["position", "show", "--scheme", "sinusoidal", "--dim", "4", "--positions", "3"]),
    ("show-rope.txt", &["position", "show", "--scheme", "rope", "--dim", "4", "--positions", "3", "--vector", "1,2,3,4"]),
    ("show-alibi.txt", &["position", "show", "--scheme", "alibi", "--heads", "3", "--positions", "3"]),
    ("show-learned.txt", &["position", "show", "--scheme", "learned"]),
    ("show-none.txt", &["position", "show", "--scheme", "none"]),
    ("stats.json", &["embed", "stats", "tests/golden/table.txt", "--json"]),
    ("stats.txt", &["embed", "stats", "tests/golden/table.txt"]),
    ("neighbors-cosine.json", &["embed", "neighbors", "tests/golden/table.txt", "--token", "king", "--k", "5", "--json"]),
    ("neighbors-euclidean.json", &["embed", "neighbors", "tests/golden/table.txt", "--token", "king", "--k", "3", "--metric", "euclidean", "--json"]),
    ("neighbors-dot.json", &["embed", "neighbors", "tests/golden/table.txt", "--token", "w3", "--metric", "dot", "--json"]),
    ("neighbors-remove-top.json", &["embed", "neighbors", "tests/golden/table.txt", "--token", "queen", "--k", "4", "--center", "--remove-top", "1", "--json"]),
    ("neighbors-cosine.txt", &["embed", "neighbors", "tests/golden/table.txt", "--token", "king", "--k", "5"]),
];

#[test]
fn printed_output_is_byte_identical_to_the_golden_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let golden = root.join("tests/golden");
    let bless = std::env::var_os("EMBER_BLESS").is_some();
    let mut failures = Vec::new();
    for (name, args) in CASES {
        let out = Command::new(env!("CARGO_BIN_EXE_ember")).args(*args).current_dir(root).output().expect("run ember");
        assert!(out.status.success(), "ember {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        let path = golden.join(name);
        if bless {
            std::fs::write(&path, &out.stdout).unwrap();
        } else if std::fs::read(&path).unwrap_or_default() != out.stdout {
            failures.push(format!("ember {} differs from tests/golden/{name}:\n{}", args.join(" "), String::from_utf8_lossy(&out.stdout)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
