//! The one place that knows how to reach DigitalOcean App Platform.
//!
//! [`Platform`] is the seam every upper layer (`sandbox-core`, the CLI) talks to: create, get,
//! list and delete apps, read deployments and instances, open a [`Console`] on a component, read
//! logs. This crate implements it twice: `Doctl` drives the `doctl` binary, `DoApi` calls the
//! REST API and the exec WebSocket directly. `sandbox-local` implements it a third time, on this
//! machine.

pub use doctl::{DOCTL_ENV, Doctl, DoctlConfig, TOKEN_ENV};
pub use error::{Error, RateLimits, Result};
pub use platform::{Console, ConsoleTarget, LogKind, LogStream, LogsRequest, Platform, TermSize};
pub use token::Token;
pub use types::{App, AppStatus, Deployment, DeploymentPhase, Instance, Progress, ProgressStep};

mod doctl;
mod error;
mod platform;
mod token;
mod types;
pub mod wire;
