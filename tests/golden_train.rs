//! Pins the JSON that `ember gradcheck --json` and `ember eval --json` print, byte for byte,
//! on fixed inputs (the gradient check's built-in problem; a 6-step run of
//! `tests/golden/tiny-train.toml`). The golden files were written by the binary before the
//! train crate was restructured; a refactoring must not change them. (`gradcheck.json` was
//! re-recorded once, for issue #10's added row: the fused head vs the plain one; every
//! other byte stayed the same; and in session 4 for issue #9's fused kernels, which sum in other
//! orders: gradcheck residuals moved at the 1e-11/1e-17 level, the 6-step run's eval loss by
//! 3e-7 relative; and in session 5 when the finite-difference check moved to the five-point
//! stencil at ε = 1e-3: only the finite-difference rows' residuals changed, the qkv rows 50–100×
//! smaller, the token-table rows within 2.5× of before, all ≥ 2000× below the 1e-5 tolerance;
//! and in session 8 when the loss's target log-probabilities became one op with an analytic
//! backward (`ember_kernels::target_log_probs`): the three closed-form rows went from exactly 0
//! to ≤ 2.3e-16 relative, the others moved at the 1e-12 level, the eval losses by 2e-9
//! relative; the finite-difference rows' relative errors are now taken against at least
//! `10·ε_mach·|L|/(ε·tol)`, so an error within the difference quotient's own rounding passes.)
//!
//! To re-record after an intended change: `EMBER_BLESS=1 cargo test --release --test golden_train`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn ember(args: &[&str], dir: &Path) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_ember")).args(args).current_dir(dir).output().expect("run ember");
    assert!(out.status.success(), "ember {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn check(name: &str, got: &[u8], failures: &mut Vec<String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("EMBER_BLESS").is_some() {
        std::fs::write(&path, got).unwrap();
    } else if std::fs::read(&path).unwrap_or_default() != got {
        failures.push(format!("differs from tests/golden/{name}:\n{}", String::from_utf8_lossy(got)));
    }
}

#[test]
fn gradcheck_and_eval_json_are_byte_identical_to_the_golden_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir: PathBuf = std::env::temp_dir().join(format!("ember-golden-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text: String = std::fs::read_to_string(root.join("data/tinyshakespeare.txt")).unwrap().chars().take(20_000).collect();
    std::fs::write(dir.join("corpus.txt"), text).unwrap();
    let config = std::fs::read_to_string(root.join("tests/golden/tiny-train.toml")).unwrap();
    std::fs::write(dir.join("tiny.toml"), config.replace("CORPUS", &dir.join("corpus.txt").display().to_string())).unwrap();

    let mut failures = Vec::new();
    check("gradcheck.json", &ember(&["gradcheck", "--json"], &dir), &mut failures);
    ember(&["train", "tiny.toml", "--out", "run", "--quiet"], &dir);
    check("eval.json", &ember(&["eval", "run", "--json"], &dir), &mut failures);
    check("eval-sliding.json", &ember(&["eval", "run", "--context", "8", "--stride", "3", "--split", "train", "--max-tokens", "500", "--json"], &dir), &mut failures);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
