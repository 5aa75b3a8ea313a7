//! One file per command group; each `run` returns the process exit code.
pub mod bench;
pub mod ablate;
pub mod embed;
pub mod interop;
pub mod position;
pub mod train;
