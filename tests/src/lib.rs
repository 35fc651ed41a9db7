//! Test harness: real wire protocols on ephemeral loopback ports.
//!
//! - [`moto`] starts `moto_server` (from the project's virtualenv) once per test
//!   process and hands each test its own table, secret prefix and queues.

pub mod faulty;
pub mod fixtures;
pub mod moto;
pub mod proxy;
pub mod replay;
pub mod scenario;
pub mod sf;
pub mod stack;

pub use local_stack::repo_root;

/// A name that is unique per call, across the parallel test processes.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{:x}-{}",
        std::process::id(),
        rand_suffix(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}
