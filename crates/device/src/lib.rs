//! # ember-device
//!
//! The one place where a backend *name* (what a user types on the command line or in a
//! config file) becomes a [`burn::tensor::Device`]. Every ember module, test and command
//! takes a `Device` value; nothing in the code base picks a backend by type.
//!
//! | name | device | notes |
//! | --- | --- | --- |
//! | `flex` (alias `cpu`, default) | `Device::flex()` | Burn's pure-Rust CPU backend (SIMD + rayon) |
//! | `ndarray` | `Device::ndarray()` | older CPU backend, kept selectable |
//! | `wgpu` (alias `gpu`) | `Device::wgpu(DefaultDevice)` | best adapter: a GPU via Vulkan/Metal/DX12, else a software one |
//! | `wgpu-cpu` (alias `lavapipe`) | `Device::wgpu(Cpu)` | the software adapter (Mesa lavapipe on Linux) |
//! | `cuda` | `Device::cuda(0)` | only when built with the `cuda` cargo feature |
//!
//! The list of devices the test suites run on lives in the dev-only crate `ember-testing`.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Device, DeviceKind};


/// Whether `device` (autodiff or not) keeps tensors in host memory (flex, ndarray), so that
/// reading a tensor back is a copy, not a queue drain: ember's host-side kernels (the GELU of
/// `ember_kernels`) run only there.
#[allow(deprecated)] // ndarray stays selectable
pub fn is_host_memory(device: &Device) -> bool {
    // Device equality compares the hardware and ignores autodiff.
    *device == Device::flex() || *device == Device::ndarray()
}

/// A backend name users type. Parse one with [`str::parse`]; turn it into a device with
/// [`BackendName::device`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum BackendName {
    /// Burn's flex CPU backend (the default).
    #[default]
    Flex,
    /// Burn's ndarray CPU backend.
    Ndarray,
    /// wgpu on the best adapter the machine has.
    Wgpu,
    /// wgpu on a software (CPU) adapter, e.g. Mesa lavapipe.
    WgpuCpu,
    /// CUDA device 0 (cargo feature `cuda`).
    Cuda,
}

/// Every name [`BackendName`] accepts (aliases included), in the order shown in error
/// messages: `cpu` = `flex`, `gpu` = `wgpu`, `lavapipe` = `wgpu-cpu`.
pub const BACKEND_NAMES: &[&str] = &["flex", "cpu", "ndarray", "wgpu", "gpu", "wgpu-cpu", "lavapipe", "cuda"];

/// Errors from backend selection.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    /// The name is not one of [`BACKEND_NAMES`].
    #[error("unknown backend `{name}`; valid backends are: {}", BACKEND_NAMES.join(", "))]
    Unknown {
        /// What the user typed.
        name: String,
    },
    /// The backend exists but this binary was built without it.
    #[error("backend `{name}` is not compiled into this build; rebuild with `--features {feature}`")]
    NotBuilt {
        /// The backend name.
        name: String,
        /// The cargo feature that enables it.
        feature: String,
    },
}

impl FromStr for BackendName {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "flex" | "cpu" => Ok(Self::Flex),
            "ndarray" => Ok(Self::Ndarray),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            "wgpu-cpu" | "lavapipe" => Ok(Self::WgpuCpu),
            "cuda" => Ok(Self::Cuda),
            _ => Err(DeviceError::Unknown { name: s.to_string() }),
        }
    }
}

impl fmt::Display for BackendName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
            Self::Wgpu => "wgpu",
            Self::WgpuCpu => "wgpu-cpu",
            Self::Cuda => "cuda",
        })
    }
}

impl BackendName {
    /// The Burn device for this backend (without autodiff; call `.autodiff()` to train).
    pub fn device(self) -> Result<Device, DeviceError> {
        Ok(match self {
            Self::Flex => Device::flex(),
            #[allow(deprecated)]
            Self::Ndarray => Device::ndarray(),
            Self::Wgpu => Device::wgpu(DeviceKind::DefaultDevice),
            Self::WgpuCpu => Device::wgpu(DeviceKind::Cpu),
            Self::Cuda => cuda_device()?,
        })
    }

    /// Whether the backend runs on the host CPU with Burn's own kernels (flex, ndarray):
    /// these give bit-identical results run to run from the same seed.
    pub fn is_host_cpu(self) -> bool {
        matches!(self, Self::Flex | Self::Ndarray)
    }
}

#[cfg(feature = "cuda")]
fn cuda_device() -> Result<Device, DeviceError> {
    Ok(Device::cuda(0))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<Device, DeviceError> {
    Err(DeviceError::NotBuilt { name: "cuda".into(), feature: "cuda".into() })
}

/// Parse a backend name and return its device: `device_from_name("flex")`.
pub fn device_from_name(name: &str) -> Result<Device, DeviceError> {
    name.parse::<BackendName>()?.device()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_parses_and_every_alias_is_listed() {
        for name in BACKEND_NAMES {
            assert!(name.parse::<BackendName>().is_ok(), "{name} is listed but does not parse");
        }
        for (alias, to) in [("cpu", BackendName::Flex), ("gpu", BackendName::Wgpu), ("lavapipe", BackendName::WgpuCpu)] {
            assert_eq!(alias.parse(), Ok(to));
        }
    }

    #[test]
    fn parses_every_documented_name() {
        assert_eq!("flex".parse(), Ok(BackendName::Flex));
        assert_eq!("CPU".parse(), Ok(BackendName::Flex));
        assert_eq!("ndarray".parse(), Ok(BackendName::Ndarray));
        assert_eq!("wgpu".parse(), Ok(BackendName::Wgpu));
        assert_eq!("wgpu-cpu".parse(), Ok(BackendName::WgpuCpu));
        assert_eq!("cuda".parse(), Ok(BackendName::Cuda));
        for b in [BackendName::Flex, BackendName::Ndarray, BackendName::Wgpu, BackendName::WgpuCpu] {
            assert_eq!(b.to_string().parse(), Ok(b));
        }
    }

    #[test]
    fn unknown_name_lists_valid_ones() {
        let err = "tpu".parse::<BackendName>().unwrap_err().to_string();
        assert!(err.contains("`tpu`"), "{err}");
        for name in BACKEND_NAMES {
            assert!(err.contains(name), "{err} should list {name}");
        }
    }

    #[test]
    fn host_memory_is_the_cpu_backends_with_or_without_autodiff() {
        for (name, host) in [("flex", true), ("ndarray", true), ("wgpu-cpu", false)] {
            let device = device_from_name(name).unwrap();
            assert_eq!(is_host_memory(&device), host, "{name}");
            assert_eq!(is_host_memory(&device.autodiff()), host, "{name} + autodiff");
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_says_how_to_fix() {
        let err = device_from_name("cuda").unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
