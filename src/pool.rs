//! Run a command on the rayon pool's own threads.
//!
//! ember's kernels and Burn's flex ops split their work with rayon. Called from a thread
//! outside the pool (the process's main thread), every parallel op injects its jobs into the
//! pool, wakes the workers and parks the caller until they are done: on a 2-core machine that
//! is three threads for two cores, a wake-up per op, and the caller's serial work (Burn's
//! small ops, the autodiff graph) runs while the workers spin. Run on a pool thread, the
//! step's own thread takes part in every split (rayon's work stealing), so the process uses
//! exactly `RAYON_NUM_THREADS` (default: one per core) threads and nothing is handed off.

/// Run `f` on a thread of a fresh rayon pool (one thread per core, or `RAYON_NUM_THREADS`;
/// 64 MiB stacks, like a main thread's headroom) so that the parallel work inside `f` runs on
/// that pool with `f`'s thread taking part (module docs). Falls back to calling `f` on this
/// thread if the pool cannot be built. The `ember` CLI runs every command this way.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match rayon::ThreadPoolBuilder::new().stack_size(64 << 20).thread_name(|i| format!("ember-{i}")).build() {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}
