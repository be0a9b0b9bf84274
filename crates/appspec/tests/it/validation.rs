//! Every validation rule: the error names the field and the rule.

use appspec::{
    AlertSpec, AppSpec, ComponentType, EnvVar, ImageKind, IngressRule, IngressSpec, SpecError,
    WorkerSpec,
};
use serde_json::json;

use crate::sandbox;

fn service() -> AppSpec {
    sandbox(ImageKind::Python, ComponentType::Service)
}

fn worker() -> AppSpec {
    sandbox(ImageKind::Node, ComponentType::Worker)
}

/// Asserts that validation fails on `field` with a reason containing `needle`.
#[track_caller]
fn fails(spec: &AppSpec, field: &str, needle: &str) -> SpecError {
    let err = spec.validate().expect_err("the spec must be rejected");
    assert_eq!(err.field(), Some(field), "wrong field in {err}");
    assert!(
        err.reason().contains(needle),
        "reason {:?} lacks {needle:?}",
        err.reason()
    );
    assert!(err.is_invalid());
    err
}

#[test]
fn templates_are_valid() {
    for image in [ImageKind::Python, ImageKind::Node] {
        for component in [ComponentType::Service, ComponentType::Worker] {
            sandbox(image, component)
                .validate()
                .expect("valid template");
        }
    }
}

#[test]
fn app_name_rule() {
    for bad in [
        "a",
        "",
        "Sandbox",
        "1sandbox",
        "sandbox-",
        "sand_box",
        "sändbox",
        &"a".repeat(33),
    ] {
        let mut spec = worker();
        spec.name = bad.to_owned();
        fails(&spec, "name", "^[a-z][a-z0-9-]{0,30}[a-z0-9]$");
    }
    for good in ["ab", "a1", "sandbox-0a1b2c3d", &"a".repeat(32), "a-b"] {
        let mut spec = worker();
        spec.name = good.to_owned();
        spec.validate().expect(good);
    }
}

#[test]
fn component_name_rule() {
    let mut spec = service();
    spec.services[0].name = "Web".into();
    fails(&spec, "services.name", "\"Web\"");
    let mut spec = worker();
    spec.workers[0].name = "x".into();
    fails(&spec, "workers.name", "2 to 32");
}

#[test]
fn component_names_are_unique() {
    let mut spec = service();
    let mut twin = WorkerSpec::new("sandbox");
    twin.image = spec.services[0].image.clone();
    spec.workers.push(twin);
    fails(&spec, "workers.name", "used twice");
}

#[test]
fn env_key_rule_at_every_level() {
    let mut spec = worker();
    spec.envs.push(EnvVar::new("1BAD", "x"));
    fails(&spec, "envs.key", "^[_A-Za-z][_A-Za-z0-9]*$");

    let mut spec = worker();
    spec.workers[0].envs.push(EnvVar::new("BAD-KEY", "x"));
    fails(&spec, "workers.envs.key", "\"BAD-KEY\"");

    let mut spec = service();
    spec.services[0].envs.push(EnvVar::new("", "x"));
    fails(&spec, "services.envs.key", "must start with a letter");

    let mut spec = service();
    spec.services[0].envs.push(EnvVar::new("_ok_Key9", "x"));
    spec.validate().expect("underscore and digits are fine");
}

#[test]
fn env_keys_are_unique_per_list() {
    let mut spec = worker();
    spec.workers[0].envs.push(EnvVar::new("A", "1"));
    spec.workers[0].envs.push(EnvVar::new("A", "2"));
    fails(&spec, "workers.envs.key", "set twice");
}

#[test]
fn env_scope_and_type() {
    let mut spec = worker();
    let mut env = EnvVar::new("A", "1");
    env.scope = Some("ALWAYS".into());
    spec.envs.push(env);
    fails(&spec, "envs.scope", "RUN_AND_BUILD_TIME");

    let mut spec = service();
    let mut env = EnvVar::new("A", "1");
    env.kind = Some("PLAIN".into());
    spec.services[0].envs.push(env);
    fails(&spec, "services.envs.type", "GENERAL, SECRET");
}

#[test]
fn health_check_port_must_be_a_service_port() {
    let mut spec = service();
    spec.services[0].internal_ports.clear();
    let err = fails(&spec, "services.health_check.port", "9090");
    assert_eq!(
        err.to_string(),
        "field \"services.health_check.port\": health check port 9090 is not http_port (8080) \
         or one of internal_ports ([])"
    );
    assert_eq!(
        err.api_message(),
        "error validating app spec field \"services.health_check.port\": health check port 9090 \
         is not http_port (8080) or one of internal_ports ([])"
    );

    // The http_port itself is fine, and an unset http_port means 8080.
    let mut spec = service();
    spec.services[0].internal_ports.clear();
    spec.services[0].health_check.as_mut().unwrap().port = Some(8080);
    spec.validate()
        .expect("http_port is a valid health-check port");
    spec.services[0].http_port = None;
    spec.validate().expect("the default http_port is 8080");
}

#[test]
fn health_check_timings() {
    type Edit = fn(&mut appspec::HealthCheck);
    let cases: [(Edit, &str); 5] = [
        (
            |h| h.initial_delay_seconds = Some(3601),
            "services.health_check.initial_delay_seconds",
        ),
        (
            |h| h.period_seconds = Some(0),
            "services.health_check.period_seconds",
        ),
        (
            |h| h.timeout_seconds = Some(121),
            "services.health_check.timeout_seconds",
        ),
        (
            |h| h.success_threshold = Some(0),
            "services.health_check.success_threshold",
        ),
        (
            |h| h.failure_threshold = Some(51),
            "services.health_check.failure_threshold",
        ),
    ];
    for (edit, field) in cases {
        let mut spec = service();
        edit(spec.services[0].health_check.as_mut().unwrap());
        fails(&spec, field, "is outside");
    }
    let mut spec = service();
    spec.services[0].health_check.as_mut().unwrap().http_path = Some("health".into());
    fails(&spec, "services.health_check.http_path", "start with '/'");
}

#[test]
fn ports_are_nonzero() {
    let mut spec = service();
    spec.services[0].http_port = Some(0);
    fails(&spec, "services.http_port", "1 to 65535");
    let mut spec = service();
    spec.services[0].internal_ports.push(0);
    fails(&spec, "services.internal_ports", "1 to 65535");
}

#[test]
fn worker_with_ports() {
    for field in ["http_port", "internal_ports", "health_check"] {
        let mut spec = worker();
        spec.workers[0].extra.insert(field.into(), json!(8080));
        fails(&spec, &format!("workers.{field}"), "workers have no ports");
    }
}

#[test]
fn instance_size_against_known_list() {
    let mut spec = service();
    spec.services[0].instance_size_slug = "apps-s-9vcpu-1tb".into();
    fails(
        &spec,
        "services.instance_size_slug",
        "unknown instance size \"apps-s-9vcpu-1tb\"",
    );
    for deprecated in ["basic-xxs", "professional-xl"] {
        let mut spec = worker();
        spec.workers[0].instance_size_slug = deprecated.into();
        spec.validate().expect("deprecated sizes are accepted");
    }
}

#[test]
fn instance_count_limits() {
    let mut spec = worker();
    spec.workers[0].instance_count = Some(0);
    fails(&spec, "workers.instance_count", "outside 1 to 250");
    let mut spec = worker();
    spec.workers[0].instance_count = Some(251);
    fails(&spec, "workers.instance_count", "outside 1 to 250");
    let mut spec = service();
    spec.services[0].instance_size_slug = "apps-s-1vcpu-0.5gb".into();
    spec.services[0].instance_count = Some(2);
    fails(&spec, "services.instance_count", "single instance");
}

#[test]
fn region_against_known_list() {
    let mut spec = worker();
    spec.region = Some("mars1".into());
    fails(&spec, "region", "unknown region \"mars1\"");
    for good in ["atl", "atl1", "nyc3", "syd1", "ams"] {
        spec.region = Some(good.into());
        spec.validate().expect(good);
    }
    spec.region = None;
    spec.validate().expect("no region means the nearest one");
}

#[test]
fn image_rules() {
    let mut spec = worker();
    spec.workers[0].image.as_mut().unwrap().registry_type = "QUAY".into();
    fails(
        &spec,
        "workers.image.registry_type",
        "DOCKER_HUB, DOCR, GHCR",
    );

    let mut spec = worker();
    spec.workers[0].image.as_mut().unwrap().registry.clear();
    fails(&spec, "workers.image.registry", "need a registry");

    let mut spec = worker();
    spec.workers[0].image.as_mut().unwrap().registry_type = "DOCR".into();
    fails(&spec, "workers.image.registry", "must be empty for DOCR");

    let mut spec = service();
    spec.services[0].image.as_mut().unwrap().repository.clear();
    fails(&spec, "services.image.repository", "empty");

    let mut spec = service();
    spec.services[0].image.as_mut().unwrap().digest = "sha256:00".into();
    fails(&spec, "services.image.tag", "not both");

    let mut spec = service();
    spec.services[0].image = None;
    fails(&spec, "services.image", "no source");
    spec.services[0]
        .extra
        .insert("github".into(), json!({"repo": "o/r", "branch": "main"}));
    spec.validate().expect("a github source is a source");
}

#[test]
fn an_app_needs_a_component() {
    let spec = AppSpec::new("empty-app");
    fails(&spec, "services", "no components");
}

#[test]
fn ingress_must_route_to_an_http_component() {
    let mut spec = worker();
    spec.ingress = Some(IngressSpec::new(vec![IngressRule::prefix("/", "sandbox")]));
    fails(&spec, "ingress.rules.component.name", "worker \"sandbox\"");

    let mut spec = service();
    spec.ingress = Some(IngressSpec::new(vec![IngressRule::prefix("/", "web")]));
    fails(&spec, "ingress.rules.component.name", "not a component");

    spec.ingress.as_mut().unwrap().rules = vec![IngressRule::prefix("/", "sandbox")];
    spec.validate().expect("routing to the service is fine");
}

#[test]
fn alert_rules() {
    let mut spec = service();
    let mut alert = AlertSpec::new("CPU_UTILIZATION");
    alert.operator = Some("GREATER_THAN".into());
    alert.value = Some(80.0);
    alert.window = Some("FIVE_MINUTES".into());
    spec.services[0].alerts.push(alert.clone());
    spec.validate().expect("a well-formed alert");

    let mut bad = spec.clone();
    bad.services[0].alerts[0].window = Some("ONE_DAY".into());
    fails(&bad, "services.alerts.window", "\"ONE_DAY\"");

    let mut bad = spec.clone();
    bad.services[0].alerts[0].operator = Some("EQUALS".into());
    fails(&bad, "services.alerts.operator", "GREATER_THAN, LESS_THAN");

    let mut bad = spec.clone();
    bad.alerts.push(AlertSpec::new("SOMETHING"));
    fails(&bad, "alerts.rule", "\"SOMETHING\"");
}

#[test]
fn marker_value_is_checked() {
    let mut spec = worker();
    spec.envs[0].value = "ruby/worker".into();
    fails(&spec, "envs.value", "supported kinds: python, node");

    let mut spec = worker();
    spec.envs[0].value = "python".into();
    fails(&spec, "envs.value", "<image kind>/<component type>");

    let mut spec = worker();
    spec.envs[0].kind = Some("SECRET".into());
    fails(&spec, "envs.type", "must be GENERAL");
}
