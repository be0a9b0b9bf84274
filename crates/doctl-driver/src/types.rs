//! What App Platform reports about apps: the types every `Platform` returns.

use std::fmt;

use appspec::AppSpec;
use time::OffsetDateTime;

/// An app as App Platform reports it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct App {
    /// App id (a UUID on App Platform).
    pub id: String,
    /// The app's current spec.
    pub spec: AppSpec,
    /// Public URL of the app; `None` when it has none (workers-only apps never get one).
    pub live_url: Option<String>,
    /// Region slug the app runs in, when known.
    pub region: Option<String>,
    /// The deployment now serving, if any.
    pub active_deployment: Option<Deployment>,
    /// The deployment being rolled out, if any.
    pub in_progress_deployment: Option<Deployment>,
    /// The deployment waiting to start, if any (create and update responses carry it).
    pub pending_deployment: Option<Deployment>,
    /// When the app was created.
    pub created_at: Option<OffsetDateTime>,
    /// When the app last changed.
    pub updated_at: Option<OffsetDateTime>,
}

impl App {
    /// An app with the given id and spec and nothing else known (no URL, region, deployments
    /// or times).
    #[must_use]
    pub fn new(id: impl Into<String>, spec: AppSpec) -> Self {
        App {
            id: id.into(),
            spec,
            live_url: None,
            region: None,
            active_deployment: None,
            in_progress_deployment: None,
            pending_deployment: None,
            created_at: None,
            updated_at: None,
        }
    }

    /// The app's name (`spec.name`).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The app's status, derived from its in-progress deployment as well as its active one.
    ///
    /// A failed or cancelled in-progress deployment wins over an older active one, so a failed
    /// first deployment is seen at once instead of after a readiness timeout.
    #[must_use]
    pub fn status(&self) -> AppStatus {
        let pending = self
            .in_progress_deployment
            .as_ref()
            .or(self.pending_deployment.as_ref());
        if let Some(deployment) = pending {
            match deployment.phase {
                DeploymentPhase::Error | DeploymentPhase::Canceled => {
                    return AppStatus::Failed {
                        phase: deployment.phase,
                        reason: deployment.failure_reason(),
                    };
                }
                DeploymentPhase::Active if self.active_deployment.is_none() => {
                    return AppStatus::Active;
                }
                phase if self.active_deployment.is_none() => {
                    return AppStatus::Deploying {
                        phase,
                        progress: deployment.progress.clone(),
                    };
                }
                _ => {}
            }
        }
        match &self.active_deployment {
            Some(active) if active.phase == DeploymentPhase::Active => AppStatus::Active,
            Some(active) => match active.phase {
                DeploymentPhase::Error | DeploymentPhase::Canceled => AppStatus::Failed {
                    phase: active.phase,
                    reason: active.failure_reason(),
                },
                phase => AppStatus::Deploying {
                    phase,
                    progress: active.progress.clone(),
                },
            },
            None => AppStatus::Unknown,
        }
    }

    /// The names of the app's long-running components (services, then workers).
    pub fn component_names(&self) -> impl Iterator<Item = &str> {
        self.spec
            .services
            .iter()
            .map(|s| s.name.as_str())
            .chain(self.spec.workers.iter().map(|w| w.name.as_str()))
    }
}

/// Where an app stands, in one word and its details.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AppStatus {
    /// A deployment is on its way (no deployment is active yet).
    Deploying {
        /// The phase it is in.
        phase: DeploymentPhase,
        /// Its step counts, when reported.
        progress: Option<Progress>,
    },
    /// The app is serving.
    Active,
    /// The latest deployment failed or was cancelled.
    Failed {
        /// `ERROR` or `CANCELED`.
        phase: DeploymentPhase,
        /// Why, as reported by the deployment's steps, when known.
        reason: Option<String>,
    },
    /// Nothing tells: no deployment at all.
    Unknown,
}

impl AppStatus {
    /// Whether the app is serving.
    #[must_use]
    pub fn is_active(&self) -> bool {
        matches!(self, AppStatus::Active)
    }

    /// Whether the app's deployment ended in failure.
    #[must_use]
    pub fn is_failed(&self) -> bool {
        matches!(self, AppStatus::Failed { .. })
    }
}

impl fmt::Display for AppStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppStatus::Deploying { phase, .. } => write!(f, "{phase}"),
            AppStatus::Active => f.write_str("ACTIVE"),
            AppStatus::Failed { phase, .. } => write!(f, "{phase}"),
            AppStatus::Unknown => f.write_str("UNKNOWN"),
        }
    }
}

/// One deployment of an app.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Deployment {
    /// Deployment id.
    pub id: String,
    /// Its phase.
    pub phase: DeploymentPhase,
    /// Its step counts; App Platform always reports them.
    pub progress: Option<Progress>,
    /// What caused it (for example `initial deployment`).
    pub cause: Option<String>,
    /// When it was created.
    pub created_at: Option<OffsetDateTime>,
    /// When it last changed.
    pub updated_at: Option<OffsetDateTime>,
}

impl Deployment {
    /// A deployment in the given phase with nothing else known.
    #[must_use]
    pub fn new(id: impl Into<String>, phase: DeploymentPhase) -> Self {
        Deployment {
            id: id.into(),
            phase,
            progress: None,
            cause: None,
            created_at: None,
            updated_at: None,
        }
    }

    /// Why the deployment failed: the reason of the first failed step that gives one, else the
    /// name of the last failed step (the innermost, in a flattened step tree).
    #[must_use]
    pub fn failure_reason(&self) -> Option<String> {
        let progress = self.progress.as_ref()?;
        let failed = || progress.steps.iter().filter(|step| step.status == "ERROR");
        failed()
            .find_map(|step| step.reason.clone())
            .or_else(|| failed().next_back().map(|step| step.name.clone()))
    }
}

/// The phase of a deployment, as App Platform names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeploymentPhase {
    /// Not known (also what unknown phase names parse to).
    Unknown,
    /// Waiting to build.
    PendingBuild,
    /// Building.
    Building,
    /// Waiting to deploy.
    PendingDeploy,
    /// Deploying.
    Deploying,
    /// Serving.
    Active,
    /// Replaced by a newer deployment.
    Superseded,
    /// Failed.
    Error,
    /// Cancelled.
    Canceled,
}

impl DeploymentPhase {
    /// Every phase, in App Platform's order.
    pub const ALL: [DeploymentPhase; 9] = [
        DeploymentPhase::Unknown,
        DeploymentPhase::PendingBuild,
        DeploymentPhase::Building,
        DeploymentPhase::PendingDeploy,
        DeploymentPhase::Deploying,
        DeploymentPhase::Active,
        DeploymentPhase::Superseded,
        DeploymentPhase::Error,
        DeploymentPhase::Canceled,
    ];

    /// The phase's API name, for example `PENDING_BUILD`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentPhase::Unknown => "UNKNOWN",
            DeploymentPhase::PendingBuild => "PENDING_BUILD",
            DeploymentPhase::Building => "BUILDING",
            DeploymentPhase::PendingDeploy => "PENDING_DEPLOY",
            DeploymentPhase::Deploying => "DEPLOYING",
            DeploymentPhase::Active => "ACTIVE",
            DeploymentPhase::Superseded => "SUPERSEDED",
            DeploymentPhase::Error => "ERROR",
            DeploymentPhase::Canceled => "CANCELED",
        }
    }

    /// Parses an API name; anything unknown is [`DeploymentPhase::Unknown`].
    #[must_use]
    pub fn parse(name: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .unwrap_or(DeploymentPhase::Unknown)
    }

    /// Whether no further phase follows (`ACTIVE`, `SUPERSEDED`, `ERROR`, `CANCELED`).
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            DeploymentPhase::Active
                | DeploymentPhase::Superseded
                | DeploymentPhase::Error
                | DeploymentPhase::Canceled
        )
    }
}

impl fmt::Display for DeploymentPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Step counts of a deployment (what `doctl apps create --wait` reads).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Steps still pending.
    pub pending_steps: u32,
    /// Steps running.
    pub running_steps: u32,
    /// Steps done.
    pub success_steps: u32,
    /// Steps failed.
    pub error_steps: u32,
    /// All steps.
    pub total_steps: u32,
    /// The steps themselves, flattened, when reported.
    pub steps: Vec<ProgressStep>,
}

/// One step of a deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProgressStep {
    /// Step path in the step tree, for example `build` or `deploy/components/sandbox/deploy`.
    pub name: String,
    /// `PENDING`, `RUNNING`, `SUCCESS` or `ERROR`.
    pub status: String,
    /// Why it is in that state, when reported.
    pub reason: Option<String>,
}

/// One running instance of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Instance {
    /// The component it belongs to.
    pub component_name: String,
    /// Its name (what `apps console` takes as third argument).
    pub instance_name: String,
    /// `SERVICE`, `WORKER` or `JOB`.
    pub component_type: String,
    /// A short alias, when reported.
    pub instance_alias: Option<String>,
}

impl Instance {
    /// An instance of a component, with no alias.
    #[must_use]
    pub fn new(
        component_name: impl Into<String>,
        instance_name: impl Into<String>,
        component_type: impl Into<String>,
    ) -> Self {
        Instance {
            component_name: component_name.into(),
            instance_name: instance_name.into(),
            component_type: component_type.into(),
            instance_alias: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(
        active: Option<Deployment>,
        in_progress: Option<Deployment>,
        pending: Option<Deployment>,
    ) -> App {
        App {
            active_deployment: active,
            in_progress_deployment: in_progress,
            pending_deployment: pending,
            ..App::new("a", AppSpec::default())
        }
    }

    fn dep(phase: DeploymentPhase) -> Option<Deployment> {
        Some(Deployment::new("d", phase))
    }

    fn failed_with_reason(phase: DeploymentPhase) -> Option<Deployment> {
        let mut d = Deployment::new("d", phase);
        d.progress = Some(Progress {
            error_steps: 1,
            total_steps: 3,
            steps: vec![
                ProgressStep {
                    name: "build".into(),
                    status: "SUCCESS".into(),
                    reason: None,
                },
                ProgressStep {
                    name: "deploy".into(),
                    status: "ERROR".into(),
                    reason: None,
                },
                ProgressStep {
                    name: "deploy/components/sandbox".into(),
                    status: "ERROR".into(),
                    reason: Some("container exited 1".into()),
                },
            ],
            ..Progress::default()
        });
        Some(d)
    }

    #[test]
    fn no_deployment_is_unknown() {
        assert_eq!(app(None, None, None).status(), AppStatus::Unknown);
    }

    #[test]
    fn first_deployment_in_progress_is_deploying() {
        let status = app(None, dep(DeploymentPhase::Building), None).status();
        assert!(matches!(
            status,
            AppStatus::Deploying {
                phase: DeploymentPhase::Building,
                ..
            }
        ));
        let status = app(None, None, dep(DeploymentPhase::PendingBuild)).status();
        assert!(matches!(
            status,
            AppStatus::Deploying {
                phase: DeploymentPhase::PendingBuild,
                ..
            }
        ));
        assert_eq!(status.to_string(), "PENDING_BUILD");
    }

    #[test]
    fn failed_first_deployment_is_seen_at_once() {
        let status = app(None, failed_with_reason(DeploymentPhase::Error), None).status();
        assert_eq!(
            status,
            AppStatus::Failed {
                phase: DeploymentPhase::Error,
                reason: Some("container exited 1".into())
            }
        );
        assert!(status.is_failed());
        let status = app(None, dep(DeploymentPhase::Canceled), None).status();
        assert!(matches!(
            status,
            AppStatus::Failed {
                phase: DeploymentPhase::Canceled,
                ..
            }
        ));
    }

    #[test]
    fn failed_redeploy_over_an_active_one_is_failed() {
        let status = app(
            dep(DeploymentPhase::Active),
            dep(DeploymentPhase::Error),
            None,
        )
        .status();
        assert!(status.is_failed());
    }

    #[test]
    fn redeploy_in_progress_over_active_stays_active() {
        let status = app(
            dep(DeploymentPhase::Active),
            dep(DeploymentPhase::Deploying),
            None,
        )
        .status();
        assert!(status.is_active());
    }

    #[test]
    fn active_only_is_active() {
        assert!(
            app(dep(DeploymentPhase::Active), None, None)
                .status()
                .is_active()
        );
        assert!(
            app(None, dep(DeploymentPhase::Active), None)
                .status()
                .is_active()
        );
    }

    #[test]
    fn failure_reason_falls_back_to_innermost_failed_step() {
        let mut d = Deployment::new("d", DeploymentPhase::Error);
        d.progress = Some(Progress {
            steps: vec![
                ProgressStep {
                    name: "deploy".into(),
                    status: "ERROR".into(),
                    reason: None,
                },
                ProgressStep {
                    name: "deploy/wait".into(),
                    status: "ERROR".into(),
                    reason: None,
                },
            ],
            ..Progress::default()
        });
        assert_eq!(d.failure_reason().as_deref(), Some("deploy/wait"));
        assert_eq!(
            Deployment::new("d", DeploymentPhase::Error).failure_reason(),
            None
        );
    }

    #[test]
    fn phases_round_trip_and_unknown_names_parse_to_unknown() {
        for phase in DeploymentPhase::ALL {
            assert_eq!(DeploymentPhase::parse(phase.as_str()), phase);
        }
        assert_eq!(DeploymentPhase::parse("EXPLODED"), DeploymentPhase::Unknown);
        assert!(DeploymentPhase::Superseded.is_terminal());
        assert!(!DeploymentPhase::Deploying.is_terminal());
    }

    #[test]
    fn constructors_know_only_what_they_are_given() {
        let mut spec = AppSpec::default();
        spec.name = "sbx".into();
        let app = App::new("id-1", spec);
        assert_eq!((app.id.as_str(), app.name()), ("id-1", "sbx"));
        assert_eq!(app.status(), AppStatus::Unknown);
        assert!(app.live_url.is_none() && app.region.is_none() && app.created_at.is_none());

        let instance = Instance::new("sandbox", "sandbox-abc", "WORKER");
        assert_eq!(instance.component_name, "sandbox");
        assert_eq!(instance.instance_name, "sandbox-abc");
        assert_eq!(instance.component_type, "WORKER");
        assert_eq!(instance.instance_alias, None);
    }
}
