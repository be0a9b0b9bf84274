//! What a pool holds ([`Template`]) and how it behaves ([`PoolConfig`], [`OnEmpty`]).

use std::fmt;
use std::time::Duration;

use appspec::{ComponentType, ImageKind};

use crate::error::{Error, Result};
use crate::sandbox::SandboxBuilder;

/// What the sandboxes of one pool look like; pools are keyed by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[must_use]
pub struct Template {
    image: ImageKind,
    component_type: ComponentType,
    instance_size: Option<String>,
    region: Option<String>,
    env: Vec<(String, String)>,
}

impl Template {
    /// Sandboxes of this image and component type, default size and region, no extra env.
    pub fn new(image: ImageKind, component_type: ComponentType) -> Self {
        Template {
            image,
            component_type,
            instance_size: None,
            region: None,
            env: Vec::new(),
        }
    }

    /// The instance size slug (default `apps-s-1vcpu-1gb`).
    pub fn instance_size(mut self, slug: impl Into<String>) -> Self {
        self.instance_size = Some(slug.into());
        self
    }

    /// The region (default as [`SandboxBuilder::region`]).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// A run-time environment variable of the sandboxes.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The image.
    #[must_use]
    pub fn image_kind(&self) -> ImageKind {
        self.image
    }

    /// Service or worker.
    #[must_use]
    pub fn component(&self) -> ComponentType {
        self.component_type
    }

    /// A builder for one sandbox of this template.
    pub(crate) fn builder(&self) -> SandboxBuilder {
        let mut builder = SandboxBuilder::default()
            .image(self.image)
            .component_type(self.component_type);
        if let Some(size) = &self.instance_size {
            builder = builder.instance_size(size);
        }
        if let Some(region) = &self.region {
            builder = builder.region(region);
        }
        for (key, value) in &self.env {
            builder = builder.env(key, value);
        }
        builder
    }
}

/// `python/worker`, then `@size`, `@region` when set.
impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.image, self.component_type)?;
        if let Some(size) = &self.instance_size {
            write!(f, "@{size}")?;
        }
        if let Some(region) = &self.region {
            write!(f, "@{region}")?;
        }
        Ok(())
    }
}

/// What [`PoolManager::acquire`](crate::PoolManager::acquire) does when a pool has no ready
/// sandbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OnEmpty {
    /// Wait for one (the pool creates one when none is on its way), until the deadline.
    #[default]
    Create,
    /// Fail at once with [`Error::PoolExhausted`].
    Fail,
}

/// How one pool behaves.
///
/// A pool keeps `min_ready` sandboxes ready **or being created**. By Little's law, under a
/// steady rate of acquires `acquire rate x create time` of them are being created at any
/// moment, so `min_ready = rate x create time + the headroom to keep ready`. While acquires
/// come, the pool raises its target to what the rate it sees needs (up to `max_ready`); after
/// `idle_delay` with no acquire started or served it deletes ready sandboxes down to
/// `min_ready`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct PoolConfig {
    /// Sandboxes kept ready or on their way (default 1).
    pub min_ready: usize,
    /// At most this many ready or on their way, beyond waiting acquires (default 10).
    pub max_ready: usize,
    /// A ready sandbox older than this is deleted and replaced (default 30 min).
    pub max_age: Duration,
    /// How long with no acquire started or served before extra ready sandboxes go (default
    /// 60 s).
    pub idle_delay: Duration,
    /// What an acquire on an empty pool does (default [`OnEmpty::Create`]).
    pub on_empty: OnEmpty,
    /// How many times a failed creation is tried again (default 3).
    pub create_retries: u32,
    /// The pause before the first retry, doubling each time (default 5 s).
    pub retry_backoff: Duration,
    /// How long an acquired sandbox lives at least: each pooled sandbox expires `max_age +
    /// ttl` after its creation, and is acquired before `max_age` (default 1 h).
    pub ttl: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            min_ready: 1,
            max_ready: 10,
            max_age: Duration::from_secs(30 * 60),
            idle_delay: Duration::from_secs(60),
            on_empty: OnEmpty::Create,
            create_retries: 3,
            retry_backoff: Duration::from_secs(5),
            ttl: Duration::from_secs(60 * 60),
        }
    }
}

impl PoolConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// See [`PoolConfig::min_ready`].
    pub fn min_ready(mut self, n: usize) -> Self {
        self.min_ready = n;
        self
    }

    /// See [`PoolConfig::max_ready`].
    pub fn max_ready(mut self, n: usize) -> Self {
        self.max_ready = n;
        self
    }

    /// See [`PoolConfig::max_age`].
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// See [`PoolConfig::idle_delay`].
    pub fn idle_delay(mut self, delay: Duration) -> Self {
        self.idle_delay = delay;
        self
    }

    /// See [`PoolConfig::on_empty`].
    pub fn on_empty(mut self, on_empty: OnEmpty) -> Self {
        self.on_empty = on_empty;
        self
    }

    /// See [`PoolConfig::create_retries`] and [`PoolConfig::retry_backoff`].
    pub fn create_retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.create_retries = retries;
        self.retry_backoff = backoff;
        self
    }

    /// See [`PoolConfig::ttl`].
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the field: `max_ready` of zero, `min_ready` above
    /// `max_ready`, a zero `max_age` or `ttl`.
    pub fn validate(&self) -> Result<()> {
        if self.max_ready == 0 {
            return Err(Error::invalid(
                "max_ready",
                "a pool holds at least one sandbox",
            ));
        }
        if self.min_ready > self.max_ready {
            return Err(Error::invalid(
                "min_ready",
                format!(
                    "{} is more than max_ready ({})",
                    self.min_ready, self.max_ready
                ),
            ));
        }
        if self.max_age.is_zero() {
            return Err(Error::invalid("max_age", "must be more than zero"));
        }
        if self.ttl.is_zero() {
            return Err(Error::invalid("ttl", "must be more than zero"));
        }
        Ok(())
    }
}
