//! Hibernate and wake, and creating a sandbox from a snapshot.

use std::time::Duration;

use sandbox_core::{PoolManager, PooledSandbox, Sandbox, SandboxBuilder, Template};

use super::{SandboxTemplateRecord, SnapshotOptions, Snapshots, now};
use crate::error::{Error, Result};

/// What [`Snapshots::hibernate`] returns: enough to [`wake`](Snapshots::wake) the sandbox.
///
/// Files come back; processes do not (a woken sandbox starts fresh and runs nothing of the
/// old one's).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Hibernated {
    /// The snapshot that holds the sandbox's files.
    pub snapshot_id: String,
    /// The sandbox it was: image, component type, name, region.
    pub template: SandboxTemplateRecord,
    /// The deleted sandbox's app id.
    pub sandbox_id: String,
    /// When, in seconds since the Unix epoch.
    pub hibernated_at: u64,
}

impl Snapshots {
    /// Snapshots `sandbox` (the default path and excludes, tag `hibernated=true`), then
    /// deletes it. Files are kept; running processes are not.
    ///
    /// # Errors
    ///
    /// Those of [`create`](Self::create) (the sandbox is not deleted then), and
    /// [`Error::Sandbox`] when deleting fails (the snapshot is kept).
    #[tracing::instrument(name = "snapshot.hibernate", skip_all, fields(sandbox = %sandbox.id()))]
    pub async fn hibernate(&self, sandbox: &Sandbox) -> Result<Hibernated> {
        self.hibernate_with(sandbox, SnapshotOptions::new()).await
    }

    /// [`hibernate`](Self::hibernate) with snapshot options.
    ///
    /// # Errors
    ///
    /// As [`hibernate`](Self::hibernate).
    pub async fn hibernate_with(
        &self,
        sandbox: &Sandbox,
        options: SnapshotOptions,
    ) -> Result<Hibernated> {
        let options = options.tag("hibernated", "true").description(format!(
            "hibernation of {} ({})",
            sandbox.name(),
            sandbox.id()
        ));
        let meta = self.create(sandbox, &options).await?;
        sandbox.delete().await.map_err(|source| Error::Sandbox {
            operation: "delete".into(),
            source,
        })?;
        Ok(Hibernated {
            snapshot_id: meta.id,
            template: meta.template,
            sandbox_id: meta.sandbox_id,
            hibernated_at: now(),
        })
    }

    /// Makes a new sandbox like the hibernated one (`builder`'s platform and settings, with
    /// the recorded image, component type and region) and restores its files. A failed wake
    /// deletes the sandbox it made.
    ///
    /// # Errors
    ///
    /// [`Error::WakeFailed`].
    #[tracing::instrument(name = "snapshot.wake", skip_all, fields(id = %record.snapshot_id))]
    pub async fn wake(&self, builder: SandboxBuilder, record: &Hibernated) -> Result<Sandbox> {
        let builder = apply_template(builder, &record.template);
        builder
            .create_from_snapshot(self, &record.snapshot_id)
            .await
    }

    /// A warm sandbox of `template` from `pool` with snapshot `id` restored into it: the
    /// pool's acquire (a hit costs no deployment), then [`restore`](Self::restore). The chain
    /// is checked before anything is taken; when the restore fails, the acquired sandbox is
    /// deleted (it never goes back to the pool).
    ///
    /// # Errors
    ///
    /// [`Error::WakeFailed`], carrying the acquire's or the restore's error (and the app id
    /// when deleting failed too).
    #[tracing::instrument(name = "snapshot.acquire", skip_all, fields(id = %id, %template))]
    pub async fn acquire_with_snapshot(
        &self,
        pool: &PoolManager,
        template: &Template,
        id: &str,
        timeout: Duration,
    ) -> Result<PooledSandbox> {
        let wrap = |source: Error, app_id: Option<String>| Error::WakeFailed {
            id: id.to_owned(),
            app_id,
            source: Box::new(source),
        };
        self.chain(id).await.map_err(|e| wrap(e, None))?;
        let sandbox = pool.acquire(template, timeout).await.map_err(|source| {
            wrap(
                Error::Sandbox {
                    operation: "acquire".into(),
                    source,
                },
                None,
            )
        })?;
        match self.restore(&sandbox, id).await {
            Ok(_) => Ok(sandbox),
            Err(e) => {
                let app_id = sandbox.id().to_owned();
                match sandbox.delete().await {
                    Ok(()) => Err(wrap(e, None)),
                    Err(delete) => {
                        tracing::warn!(%app_id, error = %delete, "could not delete the sandbox of a failed restore");
                        Err(wrap(e, Some(app_id)))
                    }
                }
            }
        }
    }

    /// The [`Hibernated`] record of a snapshot id (its template is in its metadata).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn hibernated(&self, id: &str) -> Result<Hibernated> {
        let meta = self.get(id).await?;
        Ok(Hibernated {
            snapshot_id: meta.id,
            template: meta.template,
            sandbox_id: meta.sandbox_id,
            hibernated_at: meta.created_at,
        })
    }
}

/// Sets a builder's image, component type and region from a recorded template (the name is
/// left to the builder: the old one may be taken again by then).
pub fn apply_template(
    mut builder: SandboxBuilder,
    template: &SandboxTemplateRecord,
) -> SandboxBuilder {
    if let Some(image) = template.image.as_deref().and_then(|i| i.parse().ok()) {
        builder = builder.image(image);
    }
    if let Some(kind) = template
        .component_type
        .as_deref()
        .and_then(|c| c.parse().ok())
    {
        builder = builder.component_type(kind);
    }
    if let Some(region) = &template.region {
        builder = builder.region(region.clone());
    }
    builder
}

/// Adds [`create_from_snapshot`](SnapshotBuilderExt::create_from_snapshot) to
/// [`SandboxBuilder`].
///
/// A sandbox from a pool takes [`Snapshots::acquire_with_snapshot`] instead.
pub trait SnapshotBuilderExt {
    /// Creates the sandbox, then restores snapshot `id` into it; when the restore fails the
    /// new sandbox is deleted again.
    ///
    /// # Errors
    ///
    /// [`Error::WakeFailed`] (carrying the cause, and the app id when deleting failed too).
    fn create_from_snapshot(
        self,
        snapshots: &Snapshots,
        id: &str,
    ) -> impl std::future::Future<Output = Result<Sandbox>> + Send;
}

impl SnapshotBuilderExt for SandboxBuilder {
    async fn create_from_snapshot(self, snapshots: &Snapshots, id: &str) -> Result<Sandbox> {
        let wrap = |source: Error, app_id: Option<String>| Error::WakeFailed {
            id: id.to_owned(),
            app_id,
            source: Box::new(source),
        };
        // Check the chain before making anything.
        snapshots.chain(id).await.map_err(|e| wrap(e, None))?;
        let sandbox = self.create().await.map_err(|source| {
            wrap(
                Error::Sandbox {
                    operation: "create".into(),
                    source,
                },
                None,
            )
        })?;
        match snapshots.restore(&sandbox, id).await {
            Ok(_) => Ok(sandbox),
            Err(e) => match sandbox.delete().await {
                Ok(()) => Err(wrap(e, None)),
                Err(delete) => {
                    tracing::warn!(app_id = %sandbox.id(), error = %delete, "could not delete the sandbox of a failed wake");
                    Err(wrap(e, Some(sandbox.id().to_owned())))
                }
            },
        }
    }
}
