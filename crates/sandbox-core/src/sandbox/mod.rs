//! [`Sandbox`]: lifecycle through a [`Platform`], commands through one reused console.
//!
//! The handle itself (attaching, listing, status, URL, delete, the console) lives here; its
//! jobs live in sub-modules: `builder` creates sandboxes, `progress` waits for them to be ready
//! and reports how it goes, `find` finds them by name or id, `collect` and `stream` run commands (whole output or streamed),
//! `session` keeps state between commands.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use appspec::{ComponentType, ImageKind};
use doctl_driver::{App, AppStatus, ConsoleTarget, Platform};
use time::OffsetDateTime;
use tracing::Instrument as _;

use crate::channel::{Channel, ChannelOptions};
use crate::error::{Error, Result};

mod builder;
mod collect;
mod find;
mod progress;
mod session;
mod stream;

pub use builder::{DEFAULT_READY_TIMEOUT, SandboxBuilder, with_sandbox};
#[cfg(test)]
pub(crate) use collect::collect;
pub use find::{Candidate, Found, MIN_ID_PREFIX, Scope};
pub use progress::{Progress, ReadyOptions};
pub use session::Session;

/// How long opening a console and starting the exec agent may take.
pub const DEFAULT_CONSOLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a console may stay silent while commands are in flight: no output, no answer to
/// the heartbeat sent after a third of it, no send completing. Then every command in flight
/// fails with [`Error::ConsoleLost`].
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(15);

/// The console deadlines a sandbox handle uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConsoleSettings {
    pub(crate) open_timeout: Duration,
    pub(crate) heartbeat_timeout: Duration,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            open_timeout: DEFAULT_CONSOLE_TIMEOUT,
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
        }
    }
}

/// A sandbox: an App Platform app (or a local one) you can run commands in.
///
/// Cheap to clone; clones share one console, opened on first use and reopened after a drop.
/// Many commands may run at once; each gets exactly its own output.
#[derive(Clone)]
pub struct Sandbox {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    platform: Arc<dyn Platform>,
    app_id: String,
    name: String,
    component: String,
    component_type: Option<ComponentType>,
    console: ConsoleSettings,
    expires_at: Option<OffsetDateTime>,
    channel: tokio::sync::Mutex<Option<Arc<Channel>>>,
}

impl SandboxInfo {
    /// What a listed app is as a sandbox; `None` without the sandbox marker.
    pub(crate) fn from_app(app: App) -> Option<SandboxInfo> {
        let marker = appspec::sandbox_marker(&app.spec)?;
        Some(SandboxInfo {
            id: app.id.clone(),
            name: app.name().to_owned(),
            image: marker.image,
            component_type: marker.component,
            status: app.status(),
            url: app.live_url.clone(),
            region: app.region.clone().or_else(|| app.spec.region.clone()),
            expires_at: crate::expiry::expires_at(&app.spec),
            app,
        })
    }
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("id", &self.inner.app_id)
            .field("name", &self.inner.name)
            .field("component", &self.inner.component)
            .field("platform", &self.inner.platform.kind())
            .finish()
    }
}

/// What [`Sandbox::list`] reports about each sandbox.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SandboxInfo {
    /// App id.
    pub id: String,
    /// App name.
    pub name: String,
    /// Its image kind.
    pub image: ImageKind,
    /// Service or worker.
    pub component_type: ComponentType,
    /// Its status when listed.
    pub status: AppStatus,
    /// Its public URL (services only).
    pub url: Option<String>,
    /// Its region, when known.
    pub region: Option<String>,
    /// When it expires, if it carries an expiry (see [`SandboxBuilder::ttl`]).
    pub expires_at: Option<OffsetDateTime>,
    /// The app as the platform reported it.
    pub app: App,
}

impl Sandbox {
    pub(crate) fn from_app(
        platform: Arc<dyn Platform>,
        app: &App,
        component: String,
        console: ConsoleSettings,
    ) -> Sandbox {
        let component_type = if app.spec.services.iter().any(|s| s.name == component) {
            Some(ComponentType::Service)
        } else if app.spec.workers.iter().any(|w| w.name == component) {
            Some(ComponentType::Worker)
        } else {
            None
        };
        Sandbox {
            inner: Arc::new(Inner {
                platform,
                app_id: app.id.clone(),
                name: app.name().to_owned(),
                component,
                component_type,
                console,
                expires_at: crate::expiry::expires_at(&app.spec),
                channel: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Attaches to an existing app by id: its `sandbox` component, or its first component when
    /// it has none by that name (any app works, not only sandboxes this tool created).
    ///
    /// # Errors
    ///
    /// The platform's [`NotFound`](doctl_driver::Error::NotFound) for an unknown app;
    /// [`Error::NotFound`] when the app has no component.
    pub async fn connect(platform: Arc<dyn Platform>, app_id: &str) -> Result<Sandbox> {
        let app = platform.get_app(app_id).await?;
        Self::attach_app(platform, &app)
    }

    /// [`Sandbox::connect`] on an app already read.
    fn attach_app(platform: Arc<dyn Platform>, app: &App) -> Result<Sandbox> {
        let app_id = &app.id;
        let component = if app
            .component_names()
            .any(|c| c == appspec::SANDBOX_COMPONENT)
        {
            appspec::SANDBOX_COMPONENT.to_owned()
        } else {
            app.component_names()
                .next()
                .ok_or_else(|| Error::NotFound {
                    what: format!("a service or worker component in app `{app_id}`"),
                })?
                .to_owned()
        };
        Ok(Sandbox::from_app(
            platform,
            app,
            component,
            ConsoleSettings::default(),
        ))
    }

    /// Attaches to one component of an existing app (for example `web`, to troubleshoot).
    ///
    /// # Errors
    ///
    /// Not found errors for an unknown app or component.
    pub async fn connect_component(
        platform: Arc<dyn Platform>,
        app_id: &str,
        component: &str,
    ) -> Result<Sandbox> {
        let app = platform.get_app(app_id).await?;
        if !app.component_names().any(|c| c == component) {
            let known: Vec<&str> = app.component_names().collect();
            return Err(Error::NotFound {
                what: format!(
                    "component `{component}` in app `{app_id}` (it has: {})",
                    known.join(", ")
                ),
            });
        }
        Ok(Sandbox::from_app(
            platform,
            &app,
            component.to_owned(),
            ConsoleSettings::default(),
        ))
    }

    /// Lists the sandboxes this tool created (apps carrying the sandbox marker).
    ///
    /// # Errors
    ///
    /// The platform's error.
    pub async fn list(platform: &dyn Platform) -> Result<Vec<SandboxInfo>> {
        let apps = platform.list_apps().await?;
        Ok(apps.into_iter().filter_map(SandboxInfo::from_app).collect())
    }

    /// The app id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.inner.app_id
    }

    /// The app name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The component commands run in.
    #[must_use]
    pub fn component(&self) -> &str {
        &self.inner.component
    }

    /// When this sandbox expires, as recorded on its app when it was created (see
    /// [`SandboxBuilder::ttl`]); `None` when it carries no expiry.
    #[must_use]
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.inner.expires_at
    }

    /// The platform this sandbox lives on.
    #[must_use]
    pub fn platform(&self) -> &Arc<dyn Platform> {
        &self.inner.platform
    }

    /// The app's status, read fresh from the platform.
    ///
    /// # Errors
    ///
    /// The platform's error (not found once deleted).
    pub async fn status(&self) -> Result<AppStatus> {
        Ok(self
            .inner
            .platform
            .get_app(&self.inner.app_id)
            .await?
            .status())
    }

    /// The public URL; `None` for workers (and for apps without one).
    ///
    /// # Errors
    ///
    /// The platform's error.
    pub async fn url(&self) -> Result<Option<String>> {
        if self.inner.component_type == Some(ComponentType::Worker) {
            return Ok(None);
        }
        Ok(self
            .inner
            .platform
            .get_app(&self.inner.app_id)
            .await?
            .live_url)
    }

    /// Closes the console and deletes the app.
    ///
    /// # Errors
    ///
    /// The platform's error.
    pub async fn delete(&self) -> Result<()> {
        let span = tracing::info_span!("sandbox.delete", app_id = %self.inner.app_id);
        async {
            self.close_console().await;
            self.inner.platform.delete_app(&self.inner.app_id).await?;
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Closes the console now (it is reopened by the next command).
    pub async fn close_console(&self) {
        let channel = self.inner.channel.lock().await.take();
        drop(channel);
    }

    pub(crate) async fn channel(&self) -> Result<Arc<Channel>> {
        let mut slot = self.inner.channel.lock().await;
        if let Some(channel) = slot.as_ref() {
            if !channel.is_closed() {
                return Ok(Arc::clone(channel));
            }
            tracing::debug!("console dropped; reopening");
        }
        *slot = None;
        let timeout = self.inner.console.open_timeout;
        let options = ChannelOptions {
            open_timeout: timeout,
            heartbeat_timeout: self.inner.console.heartbeat_timeout,
        };
        let target = ConsoleTarget::new(&self.inner.app_id, &self.inner.component);
        let open = async {
            let console = self.inner.platform.open_console(&target).await?;
            Channel::open(console, options).await
        };
        let channel = match tokio::time::timeout(timeout, open).await {
            Ok(result) => Arc::new(result?),
            Err(_) => {
                return Err(Error::timeout(
                    format!(
                        "opening a console on `{}` of app `{}`",
                        self.inner.component, self.inner.app_id
                    ),
                    timeout,
                ));
            }
        };
        *slot = Some(Arc::clone(&channel));
        Ok(channel)
    }
}

/// The remote side's own deadline: a backstop a little after the client's.
fn remote_timeout(timeout: Option<Duration>) -> u64 {
    timeout.map_or(0, |t| t.as_secs() + 2)
}
