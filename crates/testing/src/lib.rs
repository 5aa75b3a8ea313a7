//! # ember-testing
//!
//! Test support for the ember crates, used only as a dev-dependency (so none of it is
//! compiled into release builds of the library or the CLI). The devices every numeric test
//! runs on, tolerance helpers, and small corpora for training tests.
//!
//! [`test_devices`] returns flex, ndarray and wgpu. wgpu uses the machine's best adapter;
//! without a GPU that is Mesa's lavapipe (`apt-get install mesa-vulkan-drivers`). When no
//! adapter exists, wgpu is left out with a message on stderr, unless `EMBER_REQUIRE_WGPU=1`
//! (which `.ci/run` sets), in which case the test fails: a missing adapter never hides tests
//! silently in CI.

use std::sync::OnceLock;

use burn::tensor::{Device, Tensor};

use ember_device::BackendName;

/// A device under test with the name it is reported by in assertion messages.
#[derive(Clone, Debug)]
pub struct TestDevice {
    /// The backend's name (`flex`, `ndarray`, `wgpu`).
    pub name: BackendName,
    /// The device (plain, no autodiff).
    pub device: Device,
}

fn wgpu_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if Device::enumerate(burn::tensor::DeviceType::Wgpu).is_empty() {
            return false;
        }
        // Opening the adapter is what fails on a machine without Vulkan: try one tiny op.
        std::panic::catch_unwind(|| {
            let device = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
            let x = Tensor::<1>::from_floats([1.0, 2.0], &device);
            x.sum().into_scalar::<f32>() == 3.0
        })
        .unwrap_or(false)
    })
}

/// Whether `EMBER_REQUIRE_WGPU=1` is set.
pub fn wgpu_required() -> bool {
    std::env::var("EMBER_REQUIRE_WGPU").map(|v| v == "1").unwrap_or(false)
}

/// The wgpu device when an adapter exists. Panics (failing the test) when it does not and
/// `EMBER_REQUIRE_WGPU=1`; otherwise prints why it is skipped and returns `None`.
pub fn wgpu_device() -> Option<Device> {
    if wgpu_available() {
        return Some(BackendName::Wgpu.device().expect("wgpu is always built"));
    }
    if wgpu_required() {
        panic!(
            "EMBER_REQUIRE_WGPU=1 but no wgpu adapter was found; install Vulkan \
             (`apt-get install mesa-vulkan-drivers libvulkan1`) or unset the variable"
        );
    }
    eprintln!("ember: no wgpu adapter found, wgpu tests skipped (set EMBER_REQUIRE_WGPU=1 to fail instead)");
    None
}

/// Devices for numeric tests: flex, ndarray, and wgpu (see the module docs).
pub fn test_devices() -> Vec<TestDevice> {
    let mut out = vec![
        TestDevice { name: BackendName::Flex, device: Device::flex() },
        TestDevice { name: BackendName::Ndarray, device: BackendName::Ndarray.device().unwrap() },
    ];
    if let Some(device) = wgpu_device() {
        out.push(TestDevice { name: BackendName::Wgpu, device });
    }
    out
}

/// Flex and wgpu only: for tests too slow to triple.
pub fn flex_and_wgpu() -> Vec<TestDevice> {
    test_devices().into_iter().filter(|d| d.name != BackendName::Ndarray).collect()
}

/// Maximum absolute difference between two float tensors of the same shape, read back as f64.
pub fn max_abs_diff<const D: usize>(a: &Tensor<D>, b: &Tensor<D>) -> f64 {
    assert_eq!(a.shape(), b.shape(), "shape mismatch");
    let a = a.to_data().convert::<f64>().try_to_vec::<f64>().unwrap();
    let b = b.to_data().convert::<f64>().try_to_vec::<f64>().unwrap();
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Assert two tensors agree to `atol + rtol·|b|` elementwise, naming the device on failure.
pub fn assert_close<const D: usize>(a: &Tensor<D>, b: &Tensor<D>, atol: f64, rtol: f64, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}: shape mismatch");
    let av = a.to_data().convert::<f64>().try_to_vec::<f64>().unwrap();
    let bv = b.to_data().convert::<f64>().try_to_vec::<f64>().unwrap();
    for (i, (x, y)) in av.iter().zip(&bv).enumerate() {
        let tol = atol + rtol * y.abs();
        assert!((x - y).abs() <= tol, "{what}: element {i}: {x} vs {y} (|diff| {} > tol {tol})", (x - y).abs());
    }
}

/// A fresh, empty temporary directory for one test: `$TMP/ember-test-NAME-PID`.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary directory");
    dir
}

/// The first `chars` characters of the repository's tiny Shakespeare, written to
/// `dir/corpus.txt`; returns that path.
pub fn small_corpus(dir: &std::path::Path, chars: usize) -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/tinyshakespeare.txt");
    let text: String = std::fs::read_to_string(root).expect("data/tinyshakespeare.txt").chars().take(chars).collect();
    let path = dir.join("corpus.txt");
    std::fs::write(&path, text).expect("write corpus");
    path
}
