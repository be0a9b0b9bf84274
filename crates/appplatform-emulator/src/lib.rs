//! DigitalOcean App Platform on localhost: the REST API doctl uses, the exec WebSocket and
//! logs, served over any [`Platform`](doctl_driver::Platform) (in practice
//! `sandbox_local::LocalPlatform`), with faults on demand, plus a doctl stand-in binary
//! (`doctl-standin`) for tests.
//!
//! What is served: `POST/GET/PUT/DELETE /v2/apps` (pagination, `links`, `meta`), deployments
//! that walk `PENDING_BUILD` → `BUILDING` → `PENDING_DEPLOY` → `DEPLOYING` → `ACTIVE` at a
//! configurable pace (ACTIVE only once the backend says the app is active; ERROR with the
//! backend's reason otherwise), instances, the exec URL and console WebSocket, live and
//! historic logs, Bearer-token auth, App Platform's 400/401/404/409 answers and
//! `ratelimit-*` headers. See `docs/emulator.md`.
//!
//! # Features
//!
//! | feature | adds |
//! | --- | --- |
//! | `bin` (default) | the `appplatform-emulator` and `doctl-standin` binaries (with `sandbox-local`, clap, reqwest, tokio-tungstenite) |
//! | `test-support` | for other crates' tests: `standin_path` (finds the stand-in, or builds it with cargo), `EmulatorHandle::doctl_config` and `doapi_config` |
//!
//! A library user (`default-features = false`) gets the server alone: axum over the
//! [`Platform`](doctl_driver::Platform) seam, with none of the drivers' crates.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use appplatform_emulator::Emulator;
//! # use appplatform_emulator::doc_support::NoApps;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let backend = Arc::new(NoApps);
//! // `backend` is any `Arc<dyn doctl_driver::Platform>`, e.g. a `LocalPlatform`.
//! let emulator = Emulator::builder()
//!     .backend(backend)
//!     .token("test-token")
//!     .pace(Duration::ZERO)
//!     .start()
//!     .await?;
//! let answer = reqwest::Client::new()
//!     .get(format!("{}/v2/apps", emulator.url()))
//!     .bearer_auth(emulator.token())
//!     .send()
//!     .await?;
//! assert_eq!(answer.status(), 200);
//! assert_eq!(answer.text().await?, r#"{"apps":[],"links":{},"meta":{"total":0}}"#);
//! # Ok(())
//! # }
//! ```

pub use error::StartError;
pub use faults::{ConsoleFault, FaultRequest, Faults, HttpFault};
pub use server::{Emulator, EmulatorBuilder, EmulatorHandle, RecordedRequest};
#[cfg(feature = "test-support")]
pub use standin::standin_path;

#[doc(hidden)]
pub mod doc_support;
pub mod godo;

mod error;
mod faults;
mod handlers;
mod model;
mod server;
#[cfg(feature = "test-support")]
mod standin;
