//! Specs captured from real doctl runs (copied from the shared doctl fixtures).

use appspec::{AppSpec, ComponentType, ImageKind, InfoSource, detect_sandbox, sandbox_marker};
use serde_json::Value;

use crate::{data, sandbox};

/// The template with the fixture's name and region and without the marker: what the Python
/// SDK rendered for the fixture.
fn python_sdk_equivalent(component: ComponentType, name: &str) -> AppSpec {
    let mut spec = sandbox(ImageKind::Python, component);
    spec.name = name.into();
    spec.region = Some("atl".into());
    spec.envs.clear();
    spec
}

#[test]
fn worker_spec_file_parses_to_the_worker_template() {
    let spec = AppSpec::from_yaml(&data("apps-create-worker-success.yaml")).unwrap();
    spec.validate().unwrap();
    assert_eq!(
        spec,
        python_sdk_equivalent(ComponentType::Worker, "sandbox-7f3a")
    );
}

#[test]
fn service_spec_file_parses_to_the_service_template() {
    let spec = AppSpec::from_json(&data("apps-create-service-success.json")).unwrap();
    spec.validate().unwrap();
    assert_eq!(
        spec,
        python_sdk_equivalent(ComponentType::Service, "sandbox-svc-2b9e")
    );
}

/// doctl re-encodes the spec in godo's field order; the model renders the same bytes.
#[test]
fn compact_json_matches_the_doctl_request_body_byte_for_byte() {
    for (case, component, name) in [
        (
            "apps-create-service-success",
            ComponentType::Service,
            "sandbox-svc-2b9e",
        ),
        (
            "apps-create-worker-success",
            ComponentType::Worker,
            "sandbox-7f3a",
        ),
    ] {
        let spec = python_sdk_equivalent(component, name);
        let body = format!("{{\"spec\":{}}}\n", spec.to_json_compact().unwrap());
        assert_eq!(body, data(&format!("{case}.request-body.json")), "{case}");
    }
}

#[test]
fn health_check_port_outside_internal_ports_is_rejected() {
    let spec = AppSpec::from_yaml(&data("apps-create-invalid-spec-400.yaml")).unwrap();
    let err = spec.validate().unwrap_err();
    assert_eq!(err.field(), Some("services.health_check.port"));
}

#[test]
fn unknown_fields_are_kept_and_worker_ports_rejected() {
    let spec = AppSpec::from_yaml(&data("apps-create-unknown-field.yaml")).unwrap();
    assert_eq!(spec.extra.get("sandbox_mode"), Some(&Value::Bool(true)));
    assert_eq!(
        spec.workers[0].extra.get("http_port"),
        Some(&Value::from(8080))
    );
    let err = spec.validate().unwrap_err();
    assert_eq!(err.field(), Some("workers.http_port"));

    let spec = AppSpec::from_yaml(&data("apps-create-worker-http-port.yaml")).unwrap();
    let err = spec.validate().unwrap_err();
    assert_eq!(err.field(), Some("workers.http_port"));
    assert_eq!(
        err.to_string(),
        "field \"workers.http_port\": worker \"sandbox\" has http_port; workers have no ports \
         (only services take http_port, internal_ports and health_check)"
    );
}

#[test]
fn spec_inside_doctl_apps_get_output_parses() {
    let apps: Value = serde_json::from_str(&data("apps-get-active-service.json")).unwrap();
    let app = &apps[0];
    for spec in [&app["spec"], &app["active_deployment"]["spec"]] {
        let spec = AppSpec::from_value(spec.clone()).unwrap();
        spec.validate().unwrap();
        assert_eq!(spec.name, "sandbox-svc-2b9e");
        let rule = &spec.ingress.as_ref().unwrap().rules[0];
        assert_eq!(rule.component.as_ref().unwrap().name, "sandbox");
        let prefix = rule
            .matcher
            .as_ref()
            .unwrap()
            .path
            .as_ref()
            .unwrap()
            .prefix
            .as_deref();
        assert_eq!(prefix, Some("/"));
        // No marker (the Python SDK made it), but the image repository gives it away.
        assert_eq!(sandbox_marker(&spec), None);
        let info = detect_sandbox(&spec).unwrap();
        assert_eq!(info.image, ImageKind::Python);
        assert_eq!(info.component, ComponentType::Service);
        assert_eq!(info.source, InfoSource::ImageRepository);
        // What the API returned renders back to the same JSON.
        let again: Value = serde_json::from_str(&spec.to_json().unwrap()).unwrap();
        assert_eq!(&again, &app["spec"]);
    }
}

#[test]
fn every_spec_of_doctl_apps_list_parses() {
    let apps: Value = serde_json::from_str(&data("apps-list-two.json")).unwrap();
    let kinds: Vec<_> = apps
        .as_array()
        .unwrap()
        .iter()
        .map(|app| {
            let spec = AppSpec::from_value(app["spec"].clone()).unwrap();
            spec.validate().unwrap();
            detect_sandbox(&spec).map(|i| (i.image, i.component))
        })
        .collect();
    assert_eq!(
        kinds,
        [
            Some((ImageKind::Python, ComponentType::Worker)),
            Some((ImageKind::Python, ComponentType::Service))
        ]
    );
}

#[test]
fn fields_unknown_to_the_model_round_trip() {
    let text = r#"{
      "name": "full-app",
      "services": [{
        "name": "web",
        "image": {"registry_type": "DOCR", "repository": "web", "digest": "sha256:795e",
                  "deploy_on_push": {"enabled": true}},
        "instance_size_slug": "apps-d-1vcpu-1gb",
        "autoscaling": {"min_instance_count": 1, "max_instance_count": 3,
                        "metrics": {"cpu": {"percent": 80}}},
        "http_port": 8080,
        "protocol": "HTTP2",
        "health_check": {"path": "/old", "http_path": "/healthz", "port": 8080},
        "liveness_health_check": {"http_path": "/live", "port": 8080},
        "termination": {"drain_seconds": 15}
      }],
      "static_sites": [{"name": "docs", "github": {"repo": "o/docs", "branch": "main"}}],
      "workers": [{"name": "sandbox", "git": {"repo_clone_url": "https://example.com/r.git"},
                   "termination": {"grace_period_seconds": 60}}],
      "region": "fra",
      "ingress": {"rules": [
        {"match": {"path": {"prefix": "/docs"}, "authority": {"exact": "example.com"}},
         "component": {"name": "docs", "preserve_path_prefix": true}},
        {"match": {"path": {"exact": "/"}}, "component": {"name": "web", "rewrite": "/app"},
         "cors": {"allow_origins": [{"exact": "https://example.com"}]}}
      ]},
      "features": ["buildpack-stack=ubuntu-22"],
      "maintenance": {"enabled": false}
    }"#;
    let spec = AppSpec::from_json(text).unwrap();
    spec.validate().unwrap();
    let original: Value = serde_json::from_str(text).unwrap();
    let json: Value = serde_json::from_str(&spec.to_json().unwrap()).unwrap();
    assert_eq!(json, original);
    let from_yaml = AppSpec::from_yaml(&spec.to_yaml().unwrap()).unwrap();
    assert_eq!(from_yaml, spec);
}

#[test]
fn parse_errors_name_the_format_and_the_problem() {
    let err = AppSpec::from_yaml("name: [unclosed").unwrap_err();
    assert_eq!(err.field(), None);
    assert!(err.to_string().contains("YAML"), "{err}");
    assert!(!err.reason().is_empty());

    let err =
        AppSpec::from_json(r#"{"name": "x", "services": [{"http_port": "eighty"}]}"#).unwrap_err();
    assert!(err.to_string().contains("JSON"), "{err}");
    assert!(err.reason().contains("http_port") || err.reason().contains("invalid type"));
    assert!(std::error::Error::source(&err).is_some());
}
