//! The fused head + loss against the plain path in f64 on flex (its own test binary: the
//! float type is set once per process), to 1e-9.

mod common;

use burn::tensor::{DType, Device, FloatDType, Tensor};
use common::{assert_parity, cases};

#[test]
fn fused_loss_and_gradients_match_the_plain_path_in_f64() {
    let mut device = Device::flex();
    device.configure(FloatDType::F64).expect("flex supports f64");
    assert_eq!(Tensor::<1>::zeros([1], &device).dtype(), DType::F64);
    let mut worst = 0.0f64;
    for c in cases() {
        worst = worst.max(assert_parity(&c, &device, 1e-9, "flex f64"));
    }
    eprintln!("flex f64: worst relative error {worst:.2e}");
}
