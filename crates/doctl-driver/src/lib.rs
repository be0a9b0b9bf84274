//! The one place that knows how to reach DigitalOcean App Platform.
//!
//! [`Platform`] is the seam every upper layer (`sandbox-core`, the CLI) talks to: create, get,
//! list and delete apps, read deployments and instances, open a [`Console`] on a component, read
//! logs. Below it sits `appspec` (the App Spec model); above it `sandbox-core`. This crate
//! implements the seam twice: [`Doctl`] drives the `doctl` binary, `DoApi` calls the REST API
//! and the exec WebSocket directly. `sandbox-local` implements it a third time, on this machine.
//!
//! # Overview
//!
//! - [`Platform`] and [`Console`]: the seam, object-safe (`Arc<dyn Platform>`).
//! - [`App`], [`Deployment`], [`AppStatus`], [`Instance`]: what App Platform reports;
//!   [`App::status`] derives readiness from the in-progress deployment as well as the active one.
//! - [`Doctl`] with [`DoctlConfig`]: the doctl driver. Every call runs `doctl apps ... -o json`
//!   with a deadline, the token in `DIGITALOCEAN_ACCESS_TOKEN` (never in argv), and the child
//!   killed on timeout or drop; consoles run doctl inside a pseudo-terminal.
//! - [`Error`]: one error type for every driver, with [`Error::is_not_found`],
//!   [`Error::is_retryable`] and [`Error::retry_after`].
//! - [`wire`]: serde models of App Platform's JSON, shared by the drivers (and by servers that
//!   emulate the API).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use doctl_driver::{ConsoleTarget, Doctl, DoctlConfig, Platform};
//!
//! # async fn run() -> Result<(), doctl_driver::Error> {
//! // doctl from $DOCTL or PATH, token from $DIGITALOCEAN_TOKEN.
//! let doctl = Doctl::new(DoctlConfig::new().with_command_timeout(Duration::from_secs(30)));
//! if let Some(app) = doctl.find_app("sandbox-7f3a").await? {
//!     println!("{} is {}", app.name(), app.status());
//!     let console = doctl.open_console(&ConsoleTarget::new(&app.id, "sandbox")).await?;
//!     console.send(b"echo hi\r").await?;
//!     if let Some(output) = console.recv().await? {
//!         print!("{}", String::from_utf8_lossy(&output));
//!     }
//!     console.close().await?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Cancellation and drop
//!
//! Dropping a future of a [`Doctl`] call kills its doctl process group. Dropping a console or a
//! log stream kills the doctl behind it. [`Console::recv`] is cancel-safe.
//!
//! # Features
//!
//! | feature | adds | pulls in |
//! | --- | --- | --- |
//! | `doctl` (default) | `Doctl`, `DoctlConfig` | tokio, rustix, pty-process, regex |
//! | `api` (default) | `DoApi`, `DoApiConfig` | tokio, reqwest, rustls, tokio-tungstenite |
//!
//! With `default-features = false` the crate is the seam alone: [`Platform`], [`Console`], the
//! types, [`Error`] and [`wire`], on serde, time and async-trait. Crates that only implement
//! the seam (`sandbox-local`, the emulator) depend on it that way.

#[cfg(feature = "api")]
pub use api::{DoApi, DoApiConfig};
#[cfg(feature = "doctl")]
pub use doctl::{DOCTL_ENV, Doctl, DoctlConfig, TOKEN_ENV};
pub use error::{Error, RateLimits, Result};
pub use platform::{Console, ConsoleTarget, LogKind, LogStream, LogsRequest, Platform, TermSize};
pub use token::Token;
pub use types::{App, AppStatus, Deployment, DeploymentPhase, Instance, Progress, ProgressStep};

#[cfg(feature = "api")]
mod api;
#[cfg(feature = "doctl")]
mod doctl;
mod error;
mod platform;
mod token;
mod types;
pub mod wire;
