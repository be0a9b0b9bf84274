//! The sandbox marker: written by every template, read back after an API round trip.

use appspec::{
    AppSpec, ComponentType, EnvVar, ImageKind, ImageSource, InfoSource, MARKER_ENV, SandboxInfo,
    WorkerSpec, detect_sandbox, sandbox_marker,
};

use crate::sandbox;

#[test]
fn every_template_carries_its_marker() {
    for image in [ImageKind::Python, ImageKind::Node] {
        for component in [ComponentType::Service, ComponentType::Worker] {
            let spec = sandbox(image, component);
            let env = spec.env(MARKER_ENV).unwrap();
            assert_eq!(env.value, format!("{image}/{component}"));
            assert_eq!(env.scope.as_deref(), Some("RUN_TIME"));
            assert_eq!(env.kind.as_deref(), Some("GENERAL"));
            let info = sandbox_marker(&spec).unwrap();
            assert_eq!((info.image, info.component), (image, component));
            assert_eq!(info.source, InfoSource::Marker);
        }
    }
}

#[test]
fn marker_survives_an_api_style_round_trip() {
    // The API returns the spec as JSON with app-level GENERAL envs as given; doctl prints it
    // again as JSON.
    let spec = sandbox(ImageKind::Node, ComponentType::Service);
    let request: serde_json::Value =
        serde_json::from_str(&format!("{{\"spec\":{}}}", spec.to_json_compact().unwrap())).unwrap();
    let returned = AppSpec::from_value(request["spec"].clone()).unwrap();
    let info = sandbox_marker(&returned).unwrap();
    assert_eq!(
        (info.image, info.component),
        (ImageKind::Node, ComponentType::Service)
    );
}

#[test]
fn marker_wins_over_the_image_repository() {
    // A sandbox running a custom image is still found through its marker.
    let mut spec = sandbox(ImageKind::Node, ComponentType::Worker);
    spec.workers[0].image = Some(ImageSource::ghcr("someone", "my-custom-image", "v2"));
    let info = detect_sandbox(&spec).unwrap();
    assert_eq!(info.image, ImageKind::Node);
    assert_eq!(info.source, InfoSource::Marker);
}

#[test]
fn legacy_sandboxes_are_detected_by_repository() {
    for (repository, image) in [
        ("sandbox-python", ImageKind::Python),
        ("sandbox-node", ImageKind::Node),
        ("sandbox-python-service", ImageKind::Python),
        ("org/sandbox-node-service", ImageKind::Node),
    ] {
        let mut spec = AppSpec::new("legacy");
        let mut worker = WorkerSpec::new("sandbox");
        worker.image = Some(ImageSource::ghcr("bikramkgupta", repository, "latest"));
        spec.workers.push(worker);
        assert_eq!(sandbox_marker(&spec), None);
        let info = detect_sandbox(&spec).unwrap();
        assert_eq!(info.image, image, "{repository}");
        assert_eq!(info.component, ComponentType::Worker);
        assert_eq!(info.source, InfoSource::ImageRepository);
    }
}

#[test]
fn other_apps_are_not_sandboxes() {
    let mut spec = AppSpec::new("website");
    let mut worker = WorkerSpec::new("queue");
    worker.image = Some(ImageSource::ghcr("acme", "queue-runner", "1.0"));
    spec.workers.push(worker);
    assert_eq!(detect_sandbox(&spec), None);

    // A look-alike variable with a malformed value is not a marker.
    spec.envs.push(EnvVar::run_time(MARKER_ENV, "yes"));
    assert_eq!(sandbox_marker(&spec), None);
    assert_eq!(detect_sandbox(&spec), None);
}

#[test]
fn marker_values_parse() {
    let info = SandboxInfo::parse_marker("python/worker").unwrap();
    assert_eq!(
        (info.image, info.component),
        (ImageKind::Python, ComponentType::Worker)
    );
    // Attributes after ';' are reserved and ignored.
    let info = SandboxInfo::parse_marker("node/service;v=2;pool=warm").unwrap();
    assert_eq!(
        (info.image, info.component),
        (ImageKind::Node, ComponentType::Service)
    );
    assert_eq!(info.marker_value(), "node/service");
    for bad in [
        "",
        "python",
        "python/",
        "/service",
        "ruby/service",
        "python/job",
    ] {
        let err = SandboxInfo::parse_marker(bad).unwrap_err();
        assert_eq!(err.field(), Some("envs.value"), "{bad:?}");
    }
}
