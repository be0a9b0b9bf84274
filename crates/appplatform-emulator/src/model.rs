//! The emulator's own records of apps and deployments, and the JSON App Platform answers with.
//!
//! The JSON is built by hand, key by key, in the shapes and key order of the recorded API
//! answers (`/work/shared/fixtures/doctl/*/api_response.json`), independently of the models
//! `doctl-driver` parses with.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The owner every emulated app belongs to.
pub(crate) const OWNER_UUID: &str = "a4e16f25-cdd1-4483-b246-d77f283c9209";
/// The project every emulated app is in.
pub(crate) const PROJECT_ID: &str = "88b72d1a-b78a-4d9f-9090-b53c4399073f";
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// An RFC 3339 UTC time with `Z`.
/// Whole seconds, as App Platform reports app and deployment times.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_else(|_| ZERO_TIME.to_owned())
}

/// One app the emulator knows.
#[derive(Debug, Clone)]
pub(crate) struct AppRecord {
    pub id: String,
    pub name: String,
    /// The spec as stored (the client's JSON, plus what the API adds).
    pub spec: Value,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Newest first.
    pub deployments: Vec<DeploymentRecord>,
    /// A URL the backend reported, used for services.
    pub backend_live_url: Option<String>,
}

/// How a deployment ended, once known.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Active { at: OffsetDateTime },
    Error { at: OffsetDateTime, reason: String },
}

/// One deployment the emulator keeps, with its timeline.
#[derive(Debug, Clone)]
pub(crate) struct DeploymentRecord {
    pub id: String,
    pub spec: Value,
    pub cause: String,
    pub created_at: OffsetDateTime,
    /// Time from creation to the end of the walk.
    pub pace: time::Duration,
    /// Set by a fault: the deployment ends in ERROR with this reason.
    pub doomed: Option<String>,
    pub outcome: Option<Outcome>,
}

/// Where a deployment stands when looked at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum View {
    PendingBuild,
    Building,
    PendingDeploy,
    Deploying,
    Active { at: OffsetDateTime },
    Superseded { at: OffsetDateTime },
    Error { at: OffsetDateTime, reason: String },
}

impl View {
    pub(crate) fn phase(&self) -> &'static str {
        match self {
            View::PendingBuild => "PENDING_BUILD",
            View::Building => "BUILDING",
            View::PendingDeploy => "PENDING_DEPLOY",
            View::Deploying => "DEPLOYING",
            View::Active { .. } => "ACTIVE",
            View::Superseded { .. } => "SUPERSEDED",
            View::Error { .. } => "ERROR",
        }
    }
}

impl DeploymentRecord {
    /// The point in the walk where each phase starts (fractions of the pace).
    fn at_fraction(&self, num: i64, den: i64) -> OffsetDateTime {
        self.created_at + self.pace * (num as f64 / den as f64)
    }

    /// The phase the timeline alone gives at `now`; `None` once the walk is over (then the
    /// backend decides).
    pub(crate) fn timeline_view(&self, now: OffsetDateTime) -> Option<View> {
        let elapsed = now - self.created_at;
        if elapsed >= self.pace {
            return None;
        }
        let quarter = self.pace / 4;
        Some(if elapsed < quarter {
            View::PendingBuild
        } else if elapsed < quarter * 2 {
            View::Building
        } else if elapsed < quarter * 3 {
            View::PendingDeploy
        } else {
            View::Deploying
        })
    }

    /// The components of the deployment's spec: (name, kind) with kind `service` or `worker`.
    pub(crate) fn components(&self) -> Vec<(String, &'static str)> {
        components_of(&self.spec)
    }

    /// The deployment as App Platform shows it, in `view`.
    pub(crate) fn to_json(&self, view: &View) -> Value {
        let mut d = Map::new();
        d.insert("id".into(), json!(self.id));
        d.insert("spec".into(), self.spec.clone());
        let comps = self.components();
        let services: Vec<Value> = comps
            .iter()
            .filter(|(_, k)| *k == "service")
            .map(|(n, _)| json!({"name": n}))
            .collect();
        let workers: Vec<Value> = comps
            .iter()
            .filter(|(_, k)| *k == "worker")
            .map(|(n, _)| json!({"name": n}))
            .collect();
        if !services.is_empty() {
            d.insert("services".into(), Value::Array(services));
        }
        if !workers.is_empty() {
            d.insert("workers".into(), Value::Array(workers));
        }
        let updated = match view {
            View::PendingBuild => self.created_at,
            View::Building => self.at_fraction(1, 4),
            View::PendingDeploy => self.at_fraction(2, 4),
            View::Deploying => self.at_fraction(3, 4),
            View::Active { at } | View::Superseded { at } | View::Error { at, .. } => *at,
        };
        d.insert("phase_last_updated_at".into(), json!(rfc3339(updated)));
        d.insert("created_at".into(), json!(rfc3339(self.created_at)));
        d.insert("updated_at".into(), json!(rfc3339(updated)));
        d.insert("cause".into(), json!(self.cause));
        d.insert("progress".into(), self.progress(view, &comps));
        d.insert("phase".into(), json!(view.phase()));
        d.insert("tier_slug".into(), json!("basic"));
        d.insert(
            "cause_details".into(),
            json!({
                "digitalocean_user_action": {
                    "user": {
                        "uuid": OWNER_UUID,
                        "email": "sandbox-owner@example.com",
                        "full_name": "Sandbox Owner"
                    },
                    "name": "CREATE_DEPLOYMENT"
                },
                "type": "MANUAL"
            }),
        );
        if let View::Active { at } | View::Superseded { at } | View::Error { at, .. } = view {
            let secs = |from: OffsetDateTime, to: OffsetDateTime| {
                format!("{}s", ((to - from).as_seconds_f64() * 10.0).round() / 10.0)
            };
            d.insert(
                "timing".into(),
                json!({
                    "pending": secs(self.created_at, self.at_fraction(1, 4)),
                    "build_total": secs(self.at_fraction(1, 4), self.at_fraction(2, 4)),
                    "build_billable": "0s",
                    "deploying": secs(self.at_fraction(3, 4), *at),
                }),
            );
        }
        Value::Object(d)
    }

    /// The `progress` object: 3 + 3n leaf steps for n components.
    fn progress(&self, view: &View, comps: &[(String, &'static str)]) -> Value {
        let total = 3 + 3 * comps.len();
        if *view == View::PendingBuild {
            return json!({
                "pending_steps": total,
                "total_steps": total,
                "steps": [
                    {"name": "build", "status": "PENDING", "started_at": ZERO_TIME, "ended_at": ZERO_TIME},
                    {"name": "deploy", "status": "PENDING", "started_at": ZERO_TIME, "ended_at": ZERO_TIME}
                ]
            });
        }
        // Leaves in order: build.initialize, build.<comp>..., deploy.initialize,
        // deploy.<comp>.deploy, deploy.<comp>.wait ..., deploy.finalize.
        let t = |n, d| rfc3339(self.at_fraction(n, d));
        let (done_at, error) = match view {
            View::Active { at } | View::Superseded { at } => (Some(*at), None),
            View::Error { at, reason } => (Some(*at), Some(reason.clone())),
            _ => (None, None),
        };
        let building = *view == View::Building;
        let build_done = !building;
        let deploy_started = matches!(view, View::Deploying) || done_at.is_some();
        let deploy_ok = done_at.is_some() && error.is_none();

        let mut counts = [0usize; 4]; // pending, running, success, error
        let mut leaf = |status: &'static str| {
            let i = match status {
                "PENDING" => 0,
                "RUNNING" => 1,
                "SUCCESS" => 2,
                _ => 3,
            };
            counts[i] += 1;
            status
        };
        let done_str = done_at.map(rfc3339).unwrap_or_else(|| ZERO_TIME.to_owned());
        let kind_word = |k: &str| if k == "service" { "service" } else { "worker" };

        // Build.
        let init_status = leaf("SUCCESS");
        let mut build_components = Vec::new();
        for (name, kind) in comps {
            let status = leaf(if build_done { "SUCCESS" } else { "RUNNING" });
            build_components.push(json!({
                "name": name, "status": status,
                "started_at": ZERO_TIME, "ended_at": ZERO_TIME,
                "reason": {"code": "PreBuiltImage", "message": "Your build job was skipped because you specified a pre-built image."},
                "component_name": name, "message_base": format!("Building {}", kind_word(kind)),
            }));
        }
        let build_status = if build_done { "SUCCESS" } else { "RUNNING" };
        let build_end = if build_done {
            t(2, 4)
        } else {
            ZERO_TIME.to_owned()
        };
        let build = json!({
            "name": "build", "status": build_status,
            "steps": [
                {"name": "initialize", "status": init_status, "started_at": t(1, 4), "ended_at": t(1, 4)},
                {"name": "components", "status": build_status, "steps": build_components, "started_at": t(1, 4), "ended_at": build_end}
            ],
            "started_at": t(1, 4), "ended_at": build_end,
        });

        // Deploy.
        let deploy = if !deploy_started {
            for _ in 0..(2 + 2 * comps.len()) {
                leaf("PENDING");
            }
            json!({"name": "deploy", "status": "PENDING", "started_at": ZERO_TIME, "ended_at": ZERO_TIME})
        } else {
            let dinit = leaf("SUCCESS");
            let mut deploy_components = Vec::new();
            let mut error_left = error.clone();
            for (name, kind) in comps {
                let (deploy_status, wait_status) = if deploy_ok {
                    ("SUCCESS", "SUCCESS")
                } else if error_left.is_some() {
                    ("ERROR", "PENDING")
                } else if error.is_some() {
                    ("SUCCESS", "SUCCESS")
                } else {
                    ("RUNNING", "PENDING")
                };
                let d_status = leaf(deploy_status);
                let w_status = leaf(wait_status);
                let mut deploy_step = json!({
                    "name": "deploy", "status": d_status, "component_name": name,
                    "message_base": format!("Deploying {}", kind_word(kind)),
                    "started_at": t(3, 4),
                    "ended_at": if d_status == "SUCCESS" || d_status == "ERROR" { done_str.clone() } else { ZERO_TIME.to_owned() },
                });
                if d_status == "ERROR" {
                    if let (Some(reason), Value::Object(m)) = (error_left.take(), &mut deploy_step)
                    {
                        m.insert(
                            "reason".into(),
                            json!({"code": "DeployContainerExitNonZero", "message": reason}),
                        );
                    }
                }
                let comp_status = if d_status == "ERROR" {
                    "ERROR"
                } else if w_status == "SUCCESS" {
                    "SUCCESS"
                } else {
                    "RUNNING"
                };
                deploy_components.push(json!({
                    "name": name, "status": comp_status,
                    "steps": [
                        deploy_step,
                        {"name": "wait", "status": w_status, "component_name": name,
                         "message_base": format!("Waiting for {}", kind_word(kind)),
                         "started_at": if w_status == "PENDING" { ZERO_TIME.to_owned() } else { done_str.clone() },
                         "ended_at": if w_status == "SUCCESS" { done_str.clone() } else { ZERO_TIME.to_owned() }}
                    ],
                    "component_name": name,
                    "started_at": t(3, 4),
                    "ended_at": if comp_status == "SUCCESS" { done_str.clone() } else { ZERO_TIME.to_owned() },
                }));
            }
            let fin = leaf(if deploy_ok { "SUCCESS" } else { "PENDING" });
            let overall = if deploy_ok {
                "SUCCESS"
            } else if error.is_some() {
                "ERROR"
            } else {
                "RUNNING"
            };
            let end = if deploy_ok {
                done_str.clone()
            } else {
                ZERO_TIME.to_owned()
            };
            json!({
                "name": "deploy", "status": overall,
                "steps": [
                    {"name": "initialize", "status": dinit, "started_at": t(3, 4), "ended_at": t(3, 4)},
                    {"name": "components", "status": overall, "steps": deploy_components, "started_at": t(3, 4), "ended_at": end},
                    {"name": "finalize", "status": fin,
                     "started_at": if deploy_ok { done_str.clone() } else { ZERO_TIME.to_owned() },
                     "ended_at": if deploy_ok { done_str.clone() } else { ZERO_TIME.to_owned() }}
                ],
                "started_at": t(3, 4), "ended_at": end,
            })
        };
        let mut p = Map::new();
        for (i, key) in [
            "pending_steps",
            "running_steps",
            "success_steps",
            "error_steps",
        ]
        .iter()
        .enumerate()
        {
            if counts[i] > 0 {
                p.insert((*key).into(), json!(counts[i]));
            }
        }
        p.insert("total_steps".into(), json!(total));
        p.insert("steps".into(), json!([build, deploy]));
        Value::Object(p)
    }
}

/// The long-running components of a spec, services first: (name, `service`|`worker`).
pub(crate) fn components_of(spec: &Value) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for (key, kind) in [("services", "service"), ("workers", "worker")] {
        if let Some(Value::Array(items)) = spec.get(key) {
            for item in items {
                if let Some(name) = item.get("name").and_then(Value::as_str) {
                    out.push((name.to_owned(), kind));
                }
            }
        }
    }
    out
}

/// The region object for a spec's region slug (a data-centre slug maps to its region).
pub(crate) fn region_json(slug: Option<&str>) -> Value {
    const REGIONS: &[(&str, &str, &str, &str, &[&str])] = &[
        ("atl", "Atlanta", "usa", "North America", &["atl1"]),
        ("nyc", "New York", "usa", "North America", &["nyc1", "nyc3"]),
        ("sfo", "San Francisco", "usa", "North America", &["sfo3"]),
        ("tor", "Toronto", "canada", "North America", &["tor1"]),
        ("ams", "Amsterdam", "netherlands", "Europe", &["ams3"]),
        ("fra", "Frankfurt", "germany", "Europe", &["fra1"]),
        ("lon", "London", "uk", "Europe", &["lon1"]),
        ("blr", "Bangalore", "india", "Asia", &["blr1"]),
        ("sgp", "Singapore", "singapore", "Asia", &["sgp1"]),
        ("syd", "Sydney", "australia", "Australia", &["syd1"]),
    ];
    let wanted = slug.unwrap_or("nyc");
    let found = REGIONS
        .iter()
        .find(|(s, ..)| *s == wanted)
        .or_else(|| REGIONS.iter().find(|(.., dcs)| dcs.contains(&wanted)))
        .unwrap_or(&REGIONS[1]);
    let (s, label, flag, continent, dcs) = found;
    let mut region = json!({"slug": s, "label": label, "flag": flag, "continent": continent, "data_centers": dcs});
    if *s == "nyc" {
        if let Value::Object(m) = &mut region {
            m.insert("default".into(), json!(true));
        }
    }
    region
}

impl AppRecord {
    /// The URL the app is served at, when it has a service.
    pub(crate) fn live_url(&self) -> Option<String> {
        if !components_of(&self.spec)
            .iter()
            .any(|(_, k)| *k == "service")
        {
            return None;
        }
        Some(self.backend_live_url.clone().unwrap_or_else(|| {
            format!(
                "https://{}-{}.ondigitalocean.app",
                self.name,
                &self.id[..5.min(self.id.len())]
            )
        }))
    }

    /// The app as App Platform shows it, given a view of each deployment (same order as
    /// `deployments`). `pending` adds `pending_deployment` (create and update answers).
    pub(crate) fn to_json(&self, views: &[View], pending: bool) -> Value {
        let mut a = Map::new();
        a.insert("id".into(), json!(self.id));
        a.insert("owner_uuid".into(), json!(OWNER_UUID));
        a.insert("spec".into(), self.spec.clone());
        a.insert("created_at".into(), json!(rfc3339(self.created_at)));
        let active = self
            .deployments
            .iter()
            .zip(views)
            .find(|(_, v)| matches!(v, View::Active { .. }));
        let updated = match active {
            Some((_, View::Active { at })) if *at > self.updated_at => *at,
            _ => self.updated_at,
        };
        a.insert("updated_at".into(), json!(rfc3339(updated)));
        if let Some(newest) = self.deployments.first() {
            a.insert(
                "last_deployment_created_at".into(),
                json!(rfc3339(newest.created_at)),
            );
        }
        a.insert(
            "region".into(),
            region_json(self.spec.get("region").and_then(Value::as_str)),
        );
        a.insert("tier_slug".into(), json!("basic"));
        a.insert("project_id".into(), json!(PROJECT_ID));
        if pending {
            if let Some(newest) = self.deployments.first() {
                a.insert(
                    "pending_deployment".into(),
                    newest.to_json(&View::PendingBuild),
                );
            }
            return Value::Object(a);
        }
        let live = self.live_url();
        if let Some((dep, view)) = active {
            if let View::Active { at } = view {
                a.insert("last_deployment_active_at".into(), json!(rfc3339(*at)));
            }
            if let Some(url) = &live {
                a.insert("default_ingress".into(), json!(url));
            }
            a.insert("active_deployment".into(), dep.to_json(view));
        }
        // The newest deployment that is newer than the active one and not superseded.
        if let Some((dep, view)) = self.deployments.iter().zip(views).next() {
            let is_active = matches!(view, View::Active { .. });
            if !is_active && !matches!(view, View::Superseded { .. }) {
                a.insert("in_progress_deployment".into(), dep.to_json(view));
            }
        }
        if active.is_some() {
            if let Some(url) = &live {
                a.insert("live_url".into(), json!(url));
                a.insert("live_url_base".into(), json!(url));
                let domain = url
                    .trim_start_matches("https://")
                    .trim_start_matches("http://");
                a.insert("live_domain".into(), json!(domain));
            }
        }
        Value::Object(a)
    }
}
