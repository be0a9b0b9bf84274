//! App Platform's spec rules, checked before a spec leaves this machine (and by the emulator
//! before it accepts one).
//!
//! Each error names the field in App Platform's dotted style without indices and states the
//! rule with the offending value. The first broken rule is reported, fields in spec order.

use crate::error::SpecError;
use crate::marker;
use crate::model::{AlertSpec, AppSpec, EnvVar, Extra, HealthCheck, ImageSource, ServiceSpec};

/// Instance size slugs App Platform accepts: the current `apps-s-*` (shared CPU) and
/// `apps-d-*` (dedicated CPU) sizes, then the deprecated `basic-*` and `professional-*` ones.
pub const INSTANCE_SIZES: &[&str] = &[
    "apps-s-1vcpu-0.5gb",
    "apps-s-1vcpu-1gb-fixed",
    "apps-s-1vcpu-1gb",
    "apps-s-1vcpu-2gb",
    "apps-s-2vcpu-4gb",
    "apps-d-1vcpu-0.5gb",
    "apps-d-1vcpu-1gb",
    "apps-d-1vcpu-2gb",
    "apps-d-1vcpu-4gb",
    "apps-d-2vcpu-4gb",
    "apps-d-2vcpu-8gb",
    "apps-d-4vcpu-8gb",
    "apps-d-4vcpu-16gb",
    "apps-d-8vcpu-32gb",
    "basic-xxs",
    "basic-xs",
    "basic-s",
    "basic-m",
    "professional-xs",
    "professional-s",
    "professional-m",
    "professional-1l",
    "professional-l",
    "professional-xl",
];

/// What an instance size gives a container: its memory and its virtual CPUs (App Platform's
/// published figures). Local sandboxes enforce these as cgroup limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstanceSize {
    /// The slug, as in [`INSTANCE_SIZES`].
    pub slug: &'static str,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Virtual CPUs (shared or dedicated).
    pub vcpus: u32,
}

const fn size(slug: &'static str, memory_mib: u32, vcpus: u32) -> InstanceSize {
    InstanceSize {
        slug,
        memory_mib,
        vcpus,
    }
}

/// Memory and CPUs of every slug in [`INSTANCE_SIZES`], in the same order.
pub const INSTANCE_SIZE_RESOURCES: &[InstanceSize] = &[
    size("apps-s-1vcpu-0.5gb", 512, 1),
    size("apps-s-1vcpu-1gb-fixed", 1024, 1),
    size("apps-s-1vcpu-1gb", 1024, 1),
    size("apps-s-1vcpu-2gb", 2048, 1),
    size("apps-s-2vcpu-4gb", 4096, 2),
    size("apps-d-1vcpu-0.5gb", 512, 1),
    size("apps-d-1vcpu-1gb", 1024, 1),
    size("apps-d-1vcpu-2gb", 2048, 1),
    size("apps-d-1vcpu-4gb", 4096, 1),
    size("apps-d-2vcpu-4gb", 4096, 2),
    size("apps-d-2vcpu-8gb", 8192, 2),
    size("apps-d-4vcpu-8gb", 8192, 4),
    size("apps-d-4vcpu-16gb", 16384, 4),
    size("apps-d-8vcpu-32gb", 32768, 8),
    size("basic-xxs", 512, 1),
    size("basic-xs", 1024, 1),
    size("basic-s", 2048, 1),
    size("basic-m", 4096, 2),
    size("professional-xs", 1024, 1),
    size("professional-s", 2048, 1),
    size("professional-m", 4096, 2),
    size("professional-1l", 4096, 1),
    size("professional-l", 8192, 2),
    size("professional-xl", 16384, 4),
];

/// The memory and CPUs of an instance size slug; `None` for a slug not in [`INSTANCE_SIZES`].
#[must_use]
pub fn instance_size(slug: &str) -> Option<InstanceSize> {
    INSTANCE_SIZE_RESOURCES
        .iter()
        .find(|s| s.slug == slug)
        .copied()
}

/// Instance sizes that run a single instance only (`instance_count` must be 1).
pub const SINGLE_INSTANCE_SIZES: &[&str] = &["apps-s-1vcpu-0.5gb", "apps-s-1vcpu-1gb-fixed"];

/// Region slugs accepted in `spec.region`: App Platform's regions, then the data-centre slugs
/// that stand for them (the Python SDK writes `atl1`).
pub const REGIONS: &[&str] = &[
    "atl", "nyc", "sfo", "tor", "ams", "fra", "lon", "blr", "sgp", "syd", "atl1", "nyc1", "nyc3",
    "sfo3", "ams3", "fra1", "lon1", "blr1", "sgp1", "syd1", "tor1",
];

/// The largest `instance_count` App Platform accepts.
pub const MAX_INSTANCE_COUNT: u32 = 250;

/// The App Platform region a region or data-centre slug belongs to (`atl1` -> `atl`,
/// `nyc` -> `nyc`); `None` for a slug not in [`REGIONS`].
pub fn region_of(slug: &str) -> Option<&'static str> {
    let found = REGIONS.iter().find(|r| **r == slug)?;
    Some(found.trim_end_matches(|c: char| c.is_ascii_digit()))
}

/// Checks an app or component name: 2 to 32 characters of `[a-z0-9-]`, starting with a
/// letter and not ending with `-` (`^[a-z][a-z0-9-]{0,30}[a-z0-9]$`).
///
/// # Errors
///
/// [`SpecError::Invalid`] on `field`, naming the rule.
pub fn check_name(field: &str, name: &str) -> Result<(), SpecError> {
    let bytes = name.as_bytes();
    let rule = "must be 2 to 32 characters of lowercase letters, digits and '-', start with a \
                letter and end with a letter or digit (^[a-z][a-z0-9-]{0,30}[a-z0-9]$)";
    let ok = (2..=32).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.last() != Some(&b'-');
    if ok {
        Ok(())
    } else {
        Err(SpecError::invalid(field, format!("name {name:?} {rule}")))
    }
}

/// Checks an environment variable key (`^[_A-Za-z][_A-Za-z0-9]*$`).
///
/// # Errors
///
/// [`SpecError::Invalid`] on `field`, naming the rule.
pub fn check_env_key(field: &str, key: &str) -> Result<(), SpecError> {
    let mut chars = key.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(SpecError::invalid(
            field,
            format!(
                "env key {key:?} must start with a letter or '_' and hold only letters, digits \
                 and '_' (^[_A-Za-z][_A-Za-z0-9]*$)"
            ),
        ))
    }
}

/// Checks an instance size slug against [`INSTANCE_SIZES`].
///
/// # Errors
///
/// [`SpecError::Invalid`] on `field`, naming the rule.
pub fn check_instance_size(field: &str, slug: &str) -> Result<(), SpecError> {
    if INSTANCE_SIZES.contains(&slug) {
        Ok(())
    } else {
        Err(SpecError::invalid(
            field,
            format!(
                "unknown instance size {slug:?}; known sizes: {}",
                INSTANCE_SIZES.join(", ")
            ),
        ))
    }
}

/// Checks a region slug against [`REGIONS`].
///
/// # Errors
///
/// [`SpecError::Invalid`] on `field`, naming the rule.
pub fn check_region(field: &str, slug: &str) -> Result<(), SpecError> {
    if REGIONS.contains(&slug) {
        Ok(())
    } else {
        Err(SpecError::invalid(
            field,
            format!(
                "unknown region {slug:?}; known regions: {}",
                REGIONS.join(", ")
            ),
        ))
    }
}

const ENV_SCOPES: &[&str] = &["UNSET", "RUN_TIME", "BUILD_TIME", "RUN_AND_BUILD_TIME"];
const ENV_TYPES: &[&str] = &["GENERAL", "SECRET"];
const REGISTRY_TYPES: &[&str] = &["DOCKER_HUB", "DOCR", "GHCR"];
const ALERT_RULES: &[&str] = &[
    "CPU_UTILIZATION",
    "MEM_UTILIZATION",
    "RESTART_COUNT",
    "DEPLOYMENT_FAILED",
    "DEPLOYMENT_LIVE",
    "DEPLOYMENT_STARTED",
    "DEPLOYMENT_CANCELED",
    "DOMAIN_FAILED",
    "DOMAIN_LIVE",
    "AUTOSCALE_FAILED",
    "AUTOSCALE_SUCCEEDED",
    "JOB_INVOCATION_FAILED",
    "REQUESTS_PER_SECOND",
    "REQUEST_DURATION_P95_MS",
];
const ALERT_OPERATORS: &[&str] = &["GREATER_THAN", "LESS_THAN"];
const ALERT_WINDOWS: &[&str] = &["FIVE_MINUTES", "TEN_MINUTES", "THIRTY_MINUTES", "ONE_HOUR"];
/// Source fields other than `image` that give a component something to run.
const OTHER_SOURCES: &[&str] = &["git", "github", "gitlab", "bitbucket"];
/// Spec lists, outside `services` and `workers`, whose entries are components.
const OTHER_COMPONENT_LISTS: &[&str] = &["static_sites", "jobs", "functions"];
/// Spec lists whose components may receive HTTP traffic through ingress, besides services.
const HTTP_COMPONENT_LISTS: &[&str] = &["static_sites", "functions"];
/// App Platform's `http_port` when a service leaves it out.
const DEFAULT_HTTP_PORT: u16 = 8080;

fn one_of(field: &str, what: &str, value: &str, allowed: &[&str]) -> Result<(), SpecError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(SpecError::invalid(
            field,
            format!("{what} {value:?} is not one of {}", allowed.join(", ")),
        ))
    }
}

impl AppSpec {
    /// Checks the spec against App Platform's rules and this project's.
    ///
    /// Usable on any spec, whether built here, parsed from a file or received by the emulator.
    /// Rules: app and component names (2 to 32 characters, `^[a-z][a-z0-9-]{0,30}[a-z0-9]$`,
    /// component names unique), env keys (`^[_A-Za-z][_A-Za-z0-9]*$`, unique per list), env
    /// scopes and types, region and instance size against [`REGIONS`] and [`INSTANCE_SIZES`],
    /// instance counts (1 to 250; 1 on single-instance sizes), images (registry type, owner,
    /// repository, tag or digest), ports (1 to 65535), a service's health-check port (its
    /// `http_port` or one of its `internal_ports`) and timings, workers without ports, ingress
    /// rules naming an HTTP component, alerts, and the sandbox marker's value.
    ///
    /// # Errors
    ///
    /// The first broken rule, as [`SpecError::Invalid`] naming the field.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_name("name", &self.name)?;
        let other_components = OTHER_COMPONENT_LISTS.iter().any(|list| {
            self.extra
                .get(*list)
                .and_then(|v| v.as_array())
                .is_some_and(|a| !a.is_empty())
        });
        if self.services.is_empty() && self.workers.is_empty() && !other_components {
            return Err(SpecError::invalid(
                "services",
                "the app has no components: give at least one service or worker",
            ));
        }
        if let Some(region) = &self.region {
            check_region("region", region)?;
        }
        check_envs("envs", &self.envs)?;
        check_alerts("alerts", &self.alerts)?;

        let mut seen: Vec<&str> = Vec::new();
        for service in &self.services {
            check_component_name("services", &service.name, &mut seen)?;
            check_service(service)?;
        }
        for worker in &self.workers {
            check_component_name("workers", &worker.name, &mut seen)?;
            check_source("workers", worker.image.as_ref(), &worker.extra)?;
            check_envs("workers.envs", &worker.envs)?;
            check_size_and_count("workers", &worker.instance_size_slug, worker.instance_count)?;
            for port_field in ["http_port", "internal_ports", "health_check"] {
                if worker.extra.contains_key(port_field) {
                    return Err(SpecError::invalid(
                        format!("workers.{port_field}"),
                        format!(
                            "worker {:?} has {port_field}; workers have no ports (only \
                             services take http_port, internal_ports and health_check)",
                            worker.name
                        ),
                    ));
                }
            }
            check_alerts("workers.alerts", &worker.alerts)?;
        }
        self.check_ingress()?;
        marker::check_marker(self)?;
        Ok(())
    }

    fn check_ingress(&self) -> Result<(), SpecError> {
        let Some(ingress) = &self.ingress else {
            return Ok(());
        };
        for rule in &ingress.rules {
            let Some(component) = &rule.component else {
                continue;
            };
            let name = component.name.as_str();
            let field = "ingress.rules.component.name";
            if self.services.iter().any(|s| s.name == name) || self.http_component_in_extra(name) {
                continue;
            }
            let reason = if self.workers.iter().any(|w| w.name == name) {
                format!(
                    "ingress routes to worker {name:?}; only services, static sites and \
                     functions receive HTTP traffic"
                )
            } else {
                format!("ingress routes to {name:?}, which is not a component of the app")
            };
            return Err(SpecError::invalid(field, reason));
        }
        Ok(())
    }

    fn http_component_in_extra(&self, name: &str) -> bool {
        HTTP_COMPONENT_LISTS.iter().any(|list| {
            self.extra
                .get(*list)
                .and_then(|v| v.as_array())
                .is_some_and(|items| {
                    items
                        .iter()
                        .any(|item| item.get("name").and_then(|n| n.as_str()) == Some(name))
                })
        })
    }
}

fn check_component_name<'a>(
    list: &str,
    name: &'a str,
    seen: &mut Vec<&'a str>,
) -> Result<(), SpecError> {
    let field = format!("{list}.name");
    check_name(&field, name)?;
    if seen.contains(&name) {
        return Err(SpecError::invalid(
            field,
            format!(
                "component name {name:?} is used twice; component names are unique within an app"
            ),
        ));
    }
    seen.push(name);
    Ok(())
}

fn check_service(service: &ServiceSpec) -> Result<(), SpecError> {
    check_source("services", service.image.as_ref(), &service.extra)?;
    check_envs("services.envs", &service.envs)?;
    check_size_and_count(
        "services",
        &service.instance_size_slug,
        service.instance_count,
    )?;
    if service.http_port == Some(0) {
        return Err(SpecError::invalid(
            "services.http_port",
            "http_port 0 is not a port (1 to 65535)",
        ));
    }
    if service.internal_ports.contains(&0) {
        return Err(SpecError::invalid(
            "services.internal_ports",
            "internal port 0 is not a port (1 to 65535)",
        ));
    }
    if let Some(check) = &service.health_check {
        check_health_check(service, check)?;
    }
    check_alerts("services.alerts", &service.alerts)
}

fn check_health_check(service: &ServiceSpec, check: &HealthCheck) -> Result<(), SpecError> {
    let http_port = service.http_port.unwrap_or(DEFAULT_HTTP_PORT);
    if let Some(port) = check.port
        && port != http_port
        && !service.internal_ports.contains(&port)
    {
        let internal = service
            .internal_ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        return Err(SpecError::invalid(
            "services.health_check.port",
            format!(
                "health check port {port} is not http_port ({http_port}) or one of \
                 internal_ports ([{internal}])"
            ),
        ));
    }
    let ranges: [(&str, Option<u32>, u32, u32); 5] = [
        (
            "initial_delay_seconds",
            check.initial_delay_seconds,
            0,
            3600,
        ),
        ("period_seconds", check.period_seconds, 1, 300),
        ("timeout_seconds", check.timeout_seconds, 1, 120),
        ("success_threshold", check.success_threshold, 1, 50),
        ("failure_threshold", check.failure_threshold, 1, 50),
    ];
    for (name, value, min, max) in ranges {
        if let Some(value) = value
            && !(min..=max).contains(&value)
        {
            return Err(SpecError::invalid(
                format!("services.health_check.{name}"),
                format!("{name} {value} is outside {min} to {max}"),
            ));
        }
    }
    if let Some(path) = &check.http_path
        && !path.starts_with('/')
    {
        return Err(SpecError::invalid(
            "services.health_check.http_path",
            format!("http_path {path:?} must start with '/'"),
        ));
    }
    Ok(())
}

fn check_source(list: &str, image: Option<&ImageSource>, extra: &Extra) -> Result<(), SpecError> {
    let Some(image) = image else {
        if OTHER_SOURCES.iter().any(|s| extra.contains_key(*s)) {
            return Ok(());
        }
        return Err(SpecError::invalid(
            format!("{list}.image"),
            "the component has no source: give an image (or a git, github, gitlab or \
             bitbucket source)",
        ));
    };
    let field = |name: &str| format!("{list}.image.{name}");
    one_of(
        &field("registry_type"),
        "registry type",
        &image.registry_type,
        REGISTRY_TYPES,
    )?;
    match image.registry_type.as_str() {
        "DOCR" if !image.registry.is_empty() => {
            return Err(SpecError::invalid(
                field("registry"),
                format!(
                    "registry {:?} must be empty for DOCR images (the account's own registry)",
                    image.registry
                ),
            ));
        }
        "DOCKER_HUB" | "GHCR" if image.registry.is_empty() => {
            return Err(SpecError::invalid(
                field("registry"),
                format!(
                    "{} images need a registry (the owning user or organisation)",
                    image.registry_type
                ),
            ));
        }
        _ => {}
    }
    if image.repository.is_empty() {
        return Err(SpecError::invalid(
            field("repository"),
            "the image repository is empty",
        ));
    }
    if !image.tag.is_empty() && !image.digest.is_empty() {
        return Err(SpecError::invalid(
            field("tag"),
            "an image takes a tag or a digest, not both",
        ));
    }
    Ok(())
}

fn check_size_and_count(list: &str, size: &str, count: Option<u32>) -> Result<(), SpecError> {
    if !size.is_empty() {
        check_instance_size(&format!("{list}.instance_size_slug"), size)?;
    }
    let Some(count) = count else {
        return Ok(());
    };
    let field = format!("{list}.instance_count");
    if !(1..=MAX_INSTANCE_COUNT).contains(&count) {
        return Err(SpecError::invalid(
            field,
            format!("instance_count {count} is outside 1 to {MAX_INSTANCE_COUNT}"),
        ));
    }
    if count > 1 && SINGLE_INSTANCE_SIZES.contains(&size) {
        return Err(SpecError::invalid(
            field,
            format!(
                "instance size {size:?} runs a single instance; instance_count {count} must be 1"
            ),
        ));
    }
    Ok(())
}

fn check_envs(list: &str, envs: &[EnvVar]) -> Result<(), SpecError> {
    for (i, env) in envs.iter().enumerate() {
        check_env_key(&format!("{list}.key"), &env.key)?;
        if envs[..i].iter().any(|e| e.key == env.key) {
            return Err(SpecError::invalid(
                format!("{list}.key"),
                format!("env key {:?} is set twice", env.key),
            ));
        }
        if let Some(scope) = &env.scope {
            one_of(&format!("{list}.scope"), "env scope", scope, ENV_SCOPES)?;
        }
        if let Some(kind) = &env.kind {
            one_of(&format!("{list}.type"), "env type", kind, ENV_TYPES)?;
        }
    }
    Ok(())
}

fn check_alerts(list: &str, alerts: &[AlertSpec]) -> Result<(), SpecError> {
    for alert in alerts {
        if !alert.rule.starts_with("FUNCTIONS_") {
            one_of(
                &format!("{list}.rule"),
                "alert rule",
                &alert.rule,
                ALERT_RULES,
            )?;
        }
        if let Some(operator) = &alert.operator {
            one_of(
                &format!("{list}.operator"),
                "alert operator",
                operator,
                ALERT_OPERATORS,
            )?;
        }
        if let Some(window) = &alert.window {
            one_of(
                &format!("{list}.window"),
                "alert window",
                window,
                ALERT_WINDOWS,
            )?;
        }
        if let Some(value) = alert.value
            && !value.is_finite()
        {
            return Err(SpecError::invalid(
                format!("{list}.value"),
                format!("alert value {value} is not a finite number"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_instance_size_has_resources() {
        let slugs: Vec<&str> = INSTANCE_SIZE_RESOURCES.iter().map(|s| s.slug).collect();
        assert_eq!(slugs, INSTANCE_SIZES);
        let small = instance_size("apps-s-1vcpu-0.5gb").expect("known");
        assert_eq!((small.memory_mib, small.vcpus), (512, 1));
        assert_eq!(instance_size("apps-d-4vcpu-16gb").map(|s| s.vcpus), Some(4));
        assert!(instance_size("huge").is_none());
    }

    #[test]
    fn region_of_maps_data_centres_to_regions() {
        assert_eq!(region_of("atl1"), Some("atl"));
        assert_eq!(region_of("nyc3"), Some("nyc"));
        assert_eq!(region_of("fra"), Some("fra"));
        assert_eq!(region_of("mars1"), None);
        for slug in REGIONS {
            assert!(
                region_of(slug).is_some_and(|r| REGIONS.contains(&r)),
                "{slug}"
            );
        }
    }

    #[test]
    fn name_rule_edges() {
        assert!(check_name("name", "ab").is_ok());
        assert!(check_name("name", &format!("a{}", "0".repeat(31))).is_ok());
        assert!(check_name("name", &format!("a{}", "0".repeat(32))).is_err());
        assert!(check_name("name", "a--b").is_ok());
        assert!(check_name("name", "a-").is_err());
        assert!(check_name("name", "-a").is_err());
        assert!(check_name("name", "aB").is_err());
    }

    #[test]
    fn env_key_rule_edges() {
        for good in ["A", "_", "_1", "a_B_9", "PATH"] {
            assert!(check_env_key("envs.key", good).is_ok(), "{good}");
        }
        for bad in ["", "1A", "A-B", "A B", "É", "A.B"] {
            let err = check_env_key("envs.key", bad).unwrap_err();
            assert_eq!(err.field(), Some("envs.key"));
        }
    }

    #[test]
    fn every_single_instance_size_is_a_known_size() {
        for size in SINGLE_INSTANCE_SIZES {
            assert!(INSTANCE_SIZES.contains(size));
        }
    }
}
