#![expect(clippy::unwrap_used, reason = "test code fails loudly on purpose")]

//! The wire models parse every app, deployment and instance JSON in the recorded doctl fixtures:
//! what doctl printed (stdout of `-o json` commands) and what the API answered.

use std::fs;
use std::path::{Path, PathBuf};

use doctl_driver::wire::{
    ApiErrorBody, AppResponse, AppsPage, DeploymentResponse, DeploymentsPage, InstancesResponse,
    WireApp, WireDeployment, WireInstance,
};
use doctl_driver::{App, AppStatus, Deployment, DeploymentPhase, Instance};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

fn read(case: &str, file: &str) -> String {
    fs::read_to_string(fixtures().join(case).join(file)).unwrap()
}

fn doctl_subcommand(case: &Path) -> String {
    let cmd = fs::read_to_string(case.join("cmd.txt")).unwrap();
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let apps = words.iter().position(|w| *w == "apps").unwrap();
    words[apps + 1].to_owned()
}

fn json_output(case: &Path) -> bool {
    let cmd = fs::read_to_string(case.join("cmd.txt")).unwrap();
    cmd.contains("-o json")
}

#[test]
fn every_successful_json_stdout_parses_into_types() {
    let mut apps = 0;
    let mut deployments = 0;
    let mut instances = 0;
    for case in cases() {
        let exit = fs::read_to_string(case.join("exit_code")).unwrap();
        if exit.trim() != "0" || !json_output(&case) {
            continue;
        }
        let stdout = fs::read_to_string(case.join("stdout")).unwrap();
        let name = case.display().to_string();
        match doctl_subcommand(&case).as_str() {
            "get" | "list" | "create" => {
                let wire: Vec<WireApp> = serde_json::from_str(&stdout).expect(&name);
                for w in wire {
                    let app = App::try_from(w).expect(&name);
                    assert!(!app.id.is_empty(), "{name}");
                    assert!(!app.spec.name.is_empty(), "{name}");
                    apps += 1;
                }
            }
            "list-deployments" | "get-deployment" => {
                let wire: Vec<WireDeployment> = serde_json::from_str(&stdout).expect(&name);
                for w in wire {
                    let d = Deployment::from(w);
                    assert_ne!(d.phase, DeploymentPhase::Unknown, "{name}");
                    assert!(d.progress.is_some(), "{name}");
                    deployments += 1;
                }
            }
            "list-instances" => {
                let wire: Option<Vec<WireInstance>> = serde_json::from_str(&stdout).expect(&name);
                for w in wire.unwrap_or_default() {
                    let i = Instance::from(w);
                    assert!(!i.instance_name.is_empty(), "{name}");
                    instances += 1;
                }
            }
            _ => {}
        }
    }
    assert!(apps >= 10, "only {apps} apps parsed");
    assert!(deployments >= 2, "only {deployments} deployments parsed");
    assert_eq!(instances, 1);
}

#[test]
fn every_api_response_body_parses() {
    let mut parsed = 0;
    for case in cases() {
        let Ok(text) = fs::read_to_string(case.join("api_response.json")) else {
            continue;
        };
        let responses: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        for response in responses {
            let status = response["status"].as_u64().unwrap_or(0);
            let body = &response["body"];
            let name = format!("{} ({status})", case.display());
            if !body.is_object() {
                continue;
            }
            if status >= 400 {
                let err: ApiErrorBody = serde_json::from_value(body.clone()).expect(&name);
                assert!(!err.message.is_empty() || !err.id.is_empty(), "{name}");
                parsed += 1;
            } else if body.get("app").is_some() {
                let r: AppResponse = serde_json::from_value(body.clone()).expect(&name);
                App::try_from(r.app).expect(&name);
                parsed += 1;
            } else if body.get("apps").is_some() {
                let r: AppsPage = serde_json::from_value(body.clone()).expect(&name);
                for a in r.apps {
                    App::try_from(a).expect(&name);
                }
                parsed += 1;
            } else if body.get("deployment").is_some() {
                let r: DeploymentResponse = serde_json::from_value(body.clone()).expect(&name);
                assert_ne!(
                    Deployment::from(r.deployment).phase,
                    DeploymentPhase::Unknown
                );
                parsed += 1;
            } else if body.get("deployments").is_some() {
                let _: DeploymentsPage = serde_json::from_value(body.clone()).expect(&name);
                parsed += 1;
            } else if body.get("instances").is_some() {
                let _: InstancesResponse = serde_json::from_value(body.clone()).expect(&name);
                parsed += 1;
            }
        }
    }
    assert!(parsed >= 40, "only {parsed} API bodies parsed");
}

fn app_from_stdout(case: &str) -> App {
    let wire: Vec<WireApp> = serde_json::from_str(&read(case, "stdout")).unwrap();
    assert_eq!(wire.len(), 1);
    App::try_from(wire.into_iter().next().unwrap()).unwrap()
}

#[test]
fn deploying_worker() {
    let app = app_from_stdout("apps-get-deploying-worker");
    assert_eq!(app.name(), "sandbox-7f3a");
    assert_eq!(app.region.as_deref(), Some("atl"));
    assert_eq!(app.live_url, None);
    let dep = app.in_progress_deployment.as_ref().unwrap();
    assert_eq!(dep.phase, DeploymentPhase::Deploying);
    let progress = dep.progress.as_ref().unwrap();
    assert_eq!((progress.success_steps, progress.total_steps), (3, 6));
    assert!(
        progress
            .steps
            .iter()
            .any(|s| s.name == "deploy/components/sandbox/deploy")
    );
    match app.status() {
        AppStatus::Deploying { phase, .. } => assert_eq!(phase, DeploymentPhase::Deploying),
        other => panic!("{other:?}"),
    }
    assert!(app.created_at.is_some());
}

#[test]
fn active_worker_has_no_url() {
    let app = app_from_stdout("apps-get-active-worker");
    assert_eq!(app.live_url, None);
    assert!(app.status().is_active());
    assert_eq!(app.component_names().collect::<Vec<_>>(), ["sandbox"]);
}

#[test]
fn active_service_has_live_url() {
    let app = app_from_stdout("apps-get-active-service");
    assert_eq!(
        app.live_url.as_deref(),
        Some("https://sandbox-svc-2b9e-x7k2q.ondigitalocean.app")
    );
    assert!(app.status().is_active());
    assert_eq!(app.spec.services[0].http_port, Some(8080));
}

#[test]
fn failed_app_status_and_reason() {
    let app = app_from_stdout("apps-get-error");
    match app.status() {
        AppStatus::Failed { phase, reason } => {
            assert_eq!(phase, DeploymentPhase::Error);
            assert_eq!(
                reason.as_deref(),
                Some("Your deploy failed because your container exited with a non-zero exit code.")
            );
        }
        other => panic!("{other:?}"),
    }
    let app = app_from_stdout("apps-get-error-no-deployment");
    assert_eq!(app.status(), AppStatus::Unknown);
}

#[test]
fn created_app_has_pending_deployment() {
    let app = app_from_stdout("apps-create-worker-success");
    let pending = app.pending_deployment.as_ref().unwrap();
    assert_eq!(pending.phase, DeploymentPhase::PendingBuild);
    assert!(matches!(app.status(), AppStatus::Deploying { .. }));
}

#[test]
fn list_instances_null_and_one() {
    let none: Option<Vec<WireInstance>> =
        serde_json::from_str(&read("apps-list-instances-empty", "stdout")).unwrap();
    assert!(none.is_none());
    let one: Vec<WireInstance> =
        serde_json::from_str(&read("apps-list-instances", "stdout")).unwrap();
    let inst = Instance::from(one[0].clone());
    assert_eq!(inst.instance_name, "sandbox-5d9f-x2v9k");
    assert_eq!(inst.component_type, "WORKER");
    assert_eq!(inst.instance_alias.as_deref(), Some("sandbox-0"));
}
