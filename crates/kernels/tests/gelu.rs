//! Parity of ember's fused / host-side ops with the plain Burn composition they replace,
//! forward and gradients, on every test device (flex, ndarray, wgpu).

use burn::tensor::activation;
use burn::tensor::{Device, Distribution, Tensor};
use ember_testing::{assert_close, test_devices};
use ember_kernels::gelu;

/// `x` of `shape` on `device` (autodiff), values N(0, 2²) so both GELU tails are exercised.
fn input<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::<D>::random(shape, Distribution::Normal(0.0, 2.0), device)
}

/// GELU values and input gradients for upstream gradient `w`, on `device` (autodiff), by
/// `f`; returned on flex so devices can be compared.
fn value_and_grad<const D: usize>(f: fn(Tensor<D>) -> Tensor<D>, x: &Tensor<D>, w: &Tensor<D>, device: &Device) -> (Tensor<D>, Tensor<D>) {
    let x = Tensor::<D>::from_data(x.to_data(), device).require_grad();
    let w = Tensor::<D>::from_data(w.to_data(), device);
    let y = f(x.clone());
    let g = x.grad(&(y.clone() * w).sum().backward()).expect("input gradient");
    (Tensor::from_data(y.to_data(), &Device::flex()), Tensor::from_data(g.to_data(), &Device::flex()))
}

/// The reference is Burn's GELU on flex (libm `erf`, exact derivative). Burn's ndarray
/// backward uses the *tanh approximation's* derivative (off by up to 5e-4 from the exact
/// one), so each device's result is compared with the flex reference, not with its own
/// backend's plain kernel; the finite-difference test below checks the derivative itself.
#[test]
fn gelu_matches_the_exact_composition_forward_and_backward() {
    let reference = Device::flex().autodiff();
    for td in test_devices() {
        let device = td.device.clone().autodiff();
        Device::flex().seed(3);
        // 2·7·300 elements: not a multiple of the rayon chunk; 3·40000: several chunks.
        for shape in [[2, 7, 300], [3, 200, 200]] {
            let x = input(shape, &Device::flex());
            let w = input(shape, &Device::flex()); // a random upstream gradient
            let (y, g) = value_and_grad(gelu, &x, &w, &device);
            let (y_ref, g_ref) = value_and_grad(activation::gelu, &x, &w, &reference);
            let what = format!("{} {shape:?}", td.name);
            assert_close(&y, &y_ref, 1e-6, 1e-5, &format!("gelu value, {what}"));
            assert_close(&g, &g_ref, 1e-6, 1e-5, &format!("gelu gradient, {what}"));
        }
        // Without autodiff the value is the same.
        let x = input([4, 33], &Device::flex());
        let on = Tensor::<2>::from_data(x.to_data(), &td.device);
        let y = Tensor::<2>::from_data(gelu(on).to_data(), &Device::flex());
        assert_close(&y, &activation::gelu(x), 1e-6, 1e-5, &format!("gelu value, {} (no autodiff)", td.name));
    }
}

#[test]
fn gelu_gradient_agrees_with_finite_differences() {
    // f32 central differences of the fused op itself (h = 1e-2; GELU's third derivative is
    // small, so the truncation error is < 1e-4): catches a derivative that matches Burn's only
    // because both are wrong in the same way.
    let device = Device::flex().autodiff();
    let xs = [-5.0f32, -2.5, -1.0, -0.3, 0.0, 0.2, 0.7, 1.5, 3.0, 6.0];
    let x = Tensor::<1>::from_floats(xs, &device).require_grad();
    let g = x.grad(&gelu(x.clone()).sum().backward()).unwrap().into_data().try_to_vec::<f32>().unwrap();
    let f = |v: f32| gelu(Tensor::<1>::from_floats([v], &Device::flex())).into_scalar::<f32>() as f64;
    for (x, g) in xs.iter().zip(g) {
        let h = 1e-2f32;
        let fd = (f(x + h) - f(x - h)) / (2.0 * h as f64);
        assert!((g as f64 - fd).abs() < 2e-4, "x = {x}: analytic {g} vs finite differences {fd}");
    }
}
