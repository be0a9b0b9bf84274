//! The four sandbox templates: exact fields (snapshots) and where their defaults come from.

use appspec::{AppSpec, ComponentType, ImageKind, SandboxTemplate, TemplateDefaults, random_name};

use crate::sandbox;

const KINDS: [(ImageKind, ComponentType, &str); 4] = [
    (ImageKind::Python, ComponentType::Service, "python_service"),
    (ImageKind::Python, ComponentType::Worker, "python_worker"),
    (ImageKind::Node, ComponentType::Service, "node_service"),
    (ImageKind::Node, ComponentType::Worker, "node_worker"),
];

#[test]
fn rendered_yaml() {
    for (image, component, label) in KINDS {
        let yaml = sandbox(image, component).to_yaml().unwrap();
        insta::assert_snapshot!(format!("{label}_yaml"), yaml);
    }
}

#[test]
fn rendered_json() {
    for (image, component, label) in KINDS {
        let json = sandbox(image, component).to_json().unwrap();
        insta::assert_snapshot!(format!("{label}_json"), json);
    }
}

#[test]
fn rendered_specs_parse_back() {
    for (image, component, _) in KINDS {
        let spec = sandbox(image, component);
        assert_eq!(AppSpec::from_yaml(&spec.to_yaml().unwrap()).unwrap(), spec);
        assert_eq!(AppSpec::from_json(&spec.to_json().unwrap()).unwrap(), spec);
    }
}

fn lookup(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |key| {
        vars.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| (*v).to_owned())
    }
}

#[test]
fn defaults_without_environment() {
    let defaults = TemplateDefaults::from_lookup(|_| None);
    assert_eq!(defaults, TemplateDefaults::default());
    assert_eq!(defaults.owner, "bikramkgupta");
    assert_eq!(defaults.python_tag, "latest");
    assert_eq!(defaults.node_tag, "latest");
    assert_eq!(defaults.region, "atl1");
    assert_eq!(defaults.instance_size, "apps-s-1vcpu-1gb");
}

#[test]
fn defaults_from_environment() {
    let defaults = TemplateDefaults::from_lookup(lookup(&[
        ("GHCR_OWNER", "ghcr-owner"),
        ("APP_SANDBOX_PYTHON_TAG", "python3.13"),
        ("APP_SANDBOX_NODE_TAG", "node22"),
        ("APP_SANDBOX_REGION", "SFO3"),
    ]));
    assert_eq!(defaults.owner, "ghcr-owner");
    assert_eq!(defaults.tag(ImageKind::Python), "python3.13");
    assert_eq!(defaults.tag(ImageKind::Node), "node22");
    assert_eq!(defaults.region, "sfo3");

    let spec = SandboxTemplate::new(ImageKind::Node, ComponentType::Worker)
        .defaults(defaults)
        .build()
        .unwrap();
    let image = spec.workers[0].image.as_ref().unwrap();
    assert_eq!(
        (
            image.registry.as_str(),
            image.repository.as_str(),
            image.tag.as_str()
        ),
        ("ghcr-owner", "sandbox-node", "node22")
    );
    assert_eq!(spec.region.as_deref(), Some("sfo3"));
}

#[test]
fn app_sandbox_registry_overrides_ghcr_owner_and_empty_means_unset() {
    let defaults = TemplateDefaults::from_lookup(lookup(&[
        ("GHCR_OWNER", "ghcr-owner"),
        ("APP_SANDBOX_REGISTRY", "override"),
    ]));
    assert_eq!(defaults.owner, "override");
    let defaults = TemplateDefaults::from_lookup(lookup(&[
        ("GHCR_OWNER", "ghcr-owner"),
        ("APP_SANDBOX_REGISTRY", ""),
        ("APP_SANDBOX_REGION", "  "),
    ]));
    assert_eq!(defaults.owner, "ghcr-owner");
    assert_eq!(defaults.region, "atl1");
}

#[test]
fn explicit_settings_beat_defaults() {
    let defaults = TemplateDefaults::from_lookup(lookup(&[
        ("APP_SANDBOX_REGISTRY", "env-owner"),
        ("APP_SANDBOX_PYTHON_TAG", "env-tag"),
        ("APP_SANDBOX_REGION", "nyc"),
    ]));
    let spec = SandboxTemplate::new(ImageKind::Python, ComponentType::Service)
        .defaults(defaults)
        .name("explicit")
        .registry_owner("my-owner")
        .tag("v1")
        .region("AMS")
        .instance_size("apps-s-2vcpu-4gb")
        .build()
        .unwrap();
    let service = &spec.services[0];
    let image = service.image.as_ref().unwrap();
    assert_eq!(spec.name, "explicit");
    assert_eq!(
        (image.registry.as_str(), image.tag.as_str()),
        ("my-owner", "v1")
    );
    assert_eq!(spec.region.as_deref(), Some("ams"));
    assert_eq!(service.instance_size_slug, "apps-s-2vcpu-4gb");
}

#[test]
fn default_name_is_sandbox_and_eight_hex_digits() {
    let spec = SandboxTemplate::new(ImageKind::Python, ComponentType::Worker)
        .build()
        .unwrap();
    let suffix = spec.name.strip_prefix("sandbox-").expect(&spec.name);
    assert_eq!(suffix.len(), 8);
    assert!(
        suffix
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_ne!(random_name(), random_name());
}

#[test]
fn build_validates() {
    let err = SandboxTemplate::new(ImageKind::Python, ComponentType::Worker)
        .name("Bad_Name")
        .build()
        .unwrap_err();
    assert_eq!(err.field(), Some("name"));

    let err = SandboxTemplate::new(ImageKind::Python, ComponentType::Worker)
        .region("mars")
        .build()
        .unwrap_err();
    assert_eq!(err.field(), Some("region"));

    let err = SandboxTemplate::new(ImageKind::Python, ComponentType::Worker)
        .instance_size("huge")
        .build()
        .unwrap_err();
    assert_eq!(err.field(), Some("workers.instance_size_slug"));

    let err = SandboxTemplate::new(ImageKind::Node, ComponentType::Service)
        .env("NOT-A-KEY", "x")
        .build()
        .unwrap_err();
    assert_eq!(err.field(), Some("services.envs.key"));
}

#[test]
fn extra_envs_go_to_the_component() {
    let spec = SandboxTemplate::new(ImageKind::Python, ComponentType::Service)
        .env(
            "SANDBOX_SNAPSHOT_URL",
            "https://example.com/s.tgz?sig=a&b=c",
        )
        .secret_env("API_TOKEN", "s3cr3t")
        .build()
        .unwrap();
    let envs = &spec.services[0].envs;
    assert_eq!(envs.len(), 2);
    assert_eq!(envs[0].scope.as_deref(), Some("RUN_TIME"));
    assert!(!envs[0].is_secret());
    assert!(envs[1].is_secret());
    // Only the marker is app-level.
    assert_eq!(spec.envs.len(), 1);
}

#[test]
fn image_kind_and_component_type_parse() {
    assert_eq!("python".parse::<ImageKind>().unwrap(), ImageKind::Python);
    assert_eq!(" Node ".parse::<ImageKind>().unwrap(), ImageKind::Node);
    let err = "ruby".parse::<ImageKind>().unwrap_err();
    assert_eq!(err.field(), Some("image"));
    assert_eq!(
        err.to_string(),
        "field \"image\": unknown image kind \"ruby\"; supported kinds: python, node"
    );

    assert_eq!(
        "service".parse::<ComponentType>().unwrap(),
        ComponentType::Service
    );
    assert_eq!(
        "WORKER".parse::<ComponentType>().unwrap(),
        ComponentType::Worker
    );
    let err = "job".parse::<ComponentType>().unwrap_err();
    assert!(err.reason().contains("service, worker"), "{err}");

    for kind in ImageKind::ALL {
        assert_eq!(kind.to_string().parse::<ImageKind>().unwrap(), *kind);
    }
}

#[test]
fn rendered_yaml_with_extra_envs() {
    let spec = SandboxTemplate::new(ImageKind::Python, ComponentType::Worker)
        .name("sandbox-0a1b2c3d")
        .env("QUOTED", "say \"hi\" \\ bye")
        .env("MULTILINE", "line one\nline two")
        .env("COLON_HASH", "key: value # not a comment")
        .env("LEADING_SPACES", "  indented")
        .env("LOOKS_LIKE_BOOL", "true")
        .secret_env("TOKEN", "s3cr3t")
        .build()
        .unwrap();
    insta::assert_snapshot!(spec.to_yaml().unwrap());
}
