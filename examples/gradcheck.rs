//! Prove a tiny model's gradients from code, on any backend:
//! `cargo run --release --example gradcheck -- [flex|ndarray|wgpu]`
//!
//! The same checks as `ember gradcheck`, called as library functions.

fn main() -> anyhow::Result<()> {
    let backend = std::env::args().nth(1).unwrap_or_else(|| "flex".into());
    let device = ember::device::device_from_name(&backend)?;
    let (config, vocab, batch) = ember::train::gradcheck::default_problem();
    let report = ember::train::gradcheck::run(&config, vocab, &batch, &device, None)?;
    for check in &report.checks {
        println!("{:<60} rel err {:.2e} (tol {:.0e}) {}", check.name, check.max_rel_err, check.tolerance, if check.pass { "PASS" } else { "FAIL" });
    }
    anyhow::ensure!(report.pass, "some gradient checks failed");
    Ok(())
}
