//! End-to-end tests of `sandbox-fs`: on the local provider, through the App Platform emulator
//! (doctl stand-in and DoApi), and with an S3-compatible server on loopback.

mod common;
mod folders;
mod hostile;
mod mock_store;
mod snapshots;
mod spaces;
mod suite;

/// Skips the test (with the reason printed by `common::sandbox`) when local sandboxes cannot
/// run on this machine.
#[macro_export]
macro_rules! target {
    ($via:expr) => {
        match $crate::common::sandbox($via).await {
            Some(target) => target,
            None => return,
        }
    };
}
