//! # ember-hack
//!
//! A workspace-hack crate (the pattern `cargo hakari` automates): no code, only dependencies
//! that pin the *features* of shared third-party crates to the union the whole workspace
//! uses. Every ember crate depends on it, so `cargo run --release`, `cargo test --release
//! --workspace` and `cargo test --release -p <crate>` all resolve the same features for
//! those crates and share one build of Burn, cubecl and wgpu, instead of rebuilding them
//! whenever a dev-dependency (criterion, tempfile) or a narrower package selection changes
//! a feature deep in the graph.
//!
//! Regenerate the list after changing dependencies: compare `cargo tree -e features` of
//! `-p ember -e normal,build`, of each `-p <crate>` and of `--workspace`, and add every
//! crate whose feature set differs, with the workspace's features (see the README,
//! "Building").
