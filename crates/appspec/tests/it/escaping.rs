//! Env values of every shape survive rendering and parsing. (The Python SDK pasted them into
//! YAML between double quotes, unescaped.)

use appspec::{AppSpec, ComponentType, ImageKind, SandboxTemplate};

const NASTY: &[&str] = &[
    "plain",
    "",
    "say \"hi\"",
    "it's",
    r"C:\path\to\file",
    "back\\\"slash-quote",
    "line one\nline two\n",
    "trailing newline\n",
    "\n\nleading newlines",
    "crlf\r\nline",
    "tab\there",
    "key: value",
    "ends with colon:",
    "# not a comment",
    "value # with hash",
    "  leading spaces",
    "trailing spaces  ",
    " ",
    "- looks like a list item",
    "[1, 2]",
    "{a: 1}",
    "&anchor *alias !tag",
    "| literal > folded",
    "%directive",
    "@at `backtick`",
    "true",
    "no",
    "null",
    "~",
    "1",
    "0x1F",
    "1e3",
    "01.10",
    "---",
    "...",
    "yes",
    "On",
    "y",
    "N",
    "1_000",
    "0123",
    "1:20",
    "2001-12-14",
    "=",
    "<<",
    ".inf",
    "24.04",
    "unicode: é ✓ 中文 🦀",
    "del\u{7f} nel\u{85} ls\u{2028} bom\u{feff}",
    "bell\u{7} and nul-free control",
    "https://example.com/presigned?X-Amz-Signature=abc&X-Amz-Expires=3600",
];

fn spec_with(values: &[&str], component: ComponentType) -> AppSpec {
    let mut template = SandboxTemplate::new(ImageKind::Python, component).name("sandbox-esc");
    for (i, value) in values.iter().enumerate() {
        template = template.env(format!("V{i}"), *value);
    }
    template.build().expect("any value is accepted")
}

#[test]
fn env_values_survive_yaml() {
    for component in [ComponentType::Service, ComponentType::Worker] {
        let spec = spec_with(NASTY, component);
        let yaml = spec.to_yaml().unwrap();
        let back = AppSpec::from_yaml(&yaml).unwrap();
        assert_eq!(back, spec, "YAML round trip changed the spec:\n{yaml}");
    }
}

#[test]
fn env_values_survive_json() {
    let spec = spec_with(NASTY, ComponentType::Worker);
    let back = AppSpec::from_json(&spec.to_json().unwrap()).unwrap();
    assert_eq!(back, spec);
    let back = AppSpec::from_json(&spec.to_json_compact().unwrap()).unwrap();
    assert_eq!(back, spec);
}

#[test]
fn each_value_alone_survives_yaml() {
    // One value per spec, so a failure names the value.
    for value in NASTY {
        let spec = spec_with(&[value], ComponentType::Worker);
        let yaml = spec.to_yaml().unwrap();
        let back = AppSpec::from_yaml(&yaml).unwrap();
        assert_eq!(back.workers[0].envs[0].value, *value, "in:\n{yaml}");
    }
}

#[test]
fn an_escaped_value_cannot_inject_fields() {
    let evil = "x\"\n    http_port: 1\n  - key: INJECTED\n    value: \"y";
    let spec = spec_with(&[evil], ComponentType::Worker);
    let back = AppSpec::from_yaml(&spec.to_yaml().unwrap()).unwrap();
    assert_eq!(back.workers[0].envs.len(), 1);
    assert!(back.workers[0].extra.is_empty());
    back.validate().unwrap();
}

#[test]
fn hand_written_scalars_read_as_strings() {
    // doctl users write `tag: 24.04` or `value: 1`; the model keeps them as text.
    let yaml = "name: hand-written\nworkers:\n  - name: w1\n    image:\n      registry_type: \
                DOCKER_HUB\n      registry: library\n      repository: ubuntu\n      tag: \
                24.04\n    run_command: 42\n    envs:\n      - key: A\n        value: 1\n      \
                - key: B\n        value: true\n      - key: C\n";
    let spec = AppSpec::from_yaml(yaml).unwrap();
    let worker = &spec.workers[0];
    assert_eq!(worker.image.as_ref().unwrap().tag, "24.04");
    assert_eq!(worker.run_command, "42");
    let values: Vec<&str> = worker.envs.iter().map(|e| e.value.as_str()).collect();
    assert_eq!(values, ["1", "true", ""]);
    spec.validate().unwrap();
}

/// doctl parses spec files as YAML 1.1, where bare `no`, `on`, `y`, `1_000` or `0123` are not
/// strings: such values must be quoted in the rendered YAML.
#[test]
fn yaml_1_1_lookalikes_are_quoted() {
    for value in [
        "no", "On", "y", "N", "1_000", "0123", "1:20", "=", "24.04", "true", "~",
    ] {
        let spec = spec_with(&[value], ComponentType::Worker);
        let yaml = spec.to_yaml().unwrap();
        let line = format!("value: \"{value}\"\n");
        assert!(yaml.contains(&line), "{value:?} is not quoted in:\n{yaml}");
    }
}

#[test]
fn debug_output_hides_secrets() {
    let spec = SandboxTemplate::new(ImageKind::Python, ComponentType::Worker)
        .name("sandbox-secret")
        .secret_env("API_TOKEN", "tok-very-secret")
        .env("VISIBLE", "plain-value")
        .build()
        .unwrap();
    let mut spec = spec;
    spec.workers[0]
        .image
        .as_mut()
        .unwrap()
        .extra
        .insert("registry_credentials".into(), "user:ghp_creds".into());
    let debug = format!("{spec:?}");
    assert!(!debug.contains("tok-very-secret"), "{debug}");
    assert!(!debug.contains("ghp_creds"), "{debug}");
    assert!(debug.contains("plain-value"));
    assert!(debug.contains("API_TOKEN"));
    // The rendered spec still carries them: App Platform needs the values.
    assert!(spec.to_yaml().unwrap().contains("tok-very-secret"));
}

#[test]
fn null_and_empty_values_read_as_defaults() {
    let yaml = "name: nulls\nenvs:\nalerts: null\nworkers:\n  - name: w1\n    envs: ~\n    image:\n      \
                registry_type: GHCR\n      registry: o\n      repository: r\n      tag:\n";
    let spec = AppSpec::from_yaml(yaml).unwrap();
    assert!(spec.envs.is_empty() && spec.alerts.is_empty());
    assert!(spec.workers[0].envs.is_empty());
    assert_eq!(spec.workers[0].image.as_ref().unwrap().tag, "");
    spec.validate().unwrap();
    let json = r#"{"name":"nulls","region":null,"services":null,"workers":[{"name":"w1",
        "image":{"registry_type":"GHCR","registry":"o","repository":"r"},"envs":null}]}"#;
    let spec = AppSpec::from_json(json).unwrap();
    assert_eq!(spec.region, None);
    spec.validate().unwrap();
}

/// Thousands of pseudo-random values over an alphabet of YAML's special characters (fixed
/// seed, so the test is deterministic).
#[test]
fn random_values_survive_yaml() {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet: Vec<char> = "ab09 :#-'\"\\\n\r\t?!&*|>%@`,[]{}~=<._/yYnNoO+é✓\u{7}\u{7f}\u{85}\
                               \u{a0}\u{2028}\u{feff}🦀"
        .chars()
        .collect();
    let values: Vec<String> = (0..2000)
        .map(|_| {
            let len = (next() % 12) as usize;
            (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect()
        })
        .collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let spec = spec_with(&refs, ComponentType::Worker);
    let back = AppSpec::from_yaml(&spec.to_yaml().unwrap()).unwrap();
    assert_eq!(back, spec);
}
