//! `sandbox-local`: App Platform sandboxes on this machine, isolated by runc (user, network,
//! PID, mount, IPC, UTS and cgroup namespaces, cgroup limits, seccomp, no capabilities).
//!
//! [`LocalPlatform`] implements [`doctl_driver::Platform`]: creating an app from a sandbox spec
//! (image `sandbox-python` or `sandbox-node`, one service or worker) starts a sandbox that,
//! from inside, looks like the App Platform sandbox images: user `sandbox` with home
//! `/home/sandbox`, working directory `/home/sandbox/app` with `/app` linked to it, its own
//! hostname shaped like an instance name, its own PID space and `/tmp`, the host's `/usr`
//! read-only, `PORT=8080` and a health server on 9090 for services. Consoles are interactive
//! bash shells on a new pseudo-terminal inside the sandbox.
//!
//! Sandboxes are long-lived: a detached supervisor (PID 1 of the sandbox) keeps each running
//! after its creator exits, and any later `LocalPlatform` on the same state folder finds it.
//! See `docs/local.md` for how isolation works and the state folder's layout.
//!
//! # Example
//!
//! ```no_run
//! use appspec::{ComponentType, ImageKind, SandboxTemplate};
//! use doctl_driver::{ConsoleTarget, Platform};
//! use sandbox_local::{LocalConfig, LocalPlatform};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let platform = LocalPlatform::new(LocalConfig::from_env())?;
//! let spec = SandboxTemplate::new(ImageKind::Python, ComponentType::Worker)
//!     .name("demo-sandbox")
//!     .build()?;
//! let app = platform.create_app(&spec).await?;
//! assert!(app.status().is_active());
//!
//! let console = platform.open_console(&ConsoleTarget::new(&app.id, "sandbox")).await?;
//! console.send(b"python3 -c 'print(6*7)'\r").await?;
//! while let Some(output) = console.recv().await? {
//!     if String::from_utf8_lossy(&output).contains("42") {
//!         break;
//!     }
//! }
//! drop(console);
//! platform.delete_app(&app.id).await?;
//! # Ok(())
//! # }
//! ```

pub use config::{LocalConfig, NetworkMode};
pub use console::LocalConsole;
pub use platform::{INTERRUPTED, LocalPlatform, SUPERVISOR_DEAD};

mod config;
mod console;
mod expiry;
mod launch;
mod limits;
mod logs;
mod platform;
mod runtime;
mod state;
