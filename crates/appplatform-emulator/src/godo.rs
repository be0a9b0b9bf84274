//! What doctl does to JSON: godo's struct layouts, its strict spec parsing and its re-encoding.
//!
//! doctl never prints what the API sent: it decodes responses into godo structs and encodes
//! those again, so unknown fields vanish, keys come out in struct order, empty values are
//! dropped (`omitempty`) and every `time.Time` is printed, even when the API left it out. Spec
//! files go through `DisallowUnknownFields`. The doctl stand-in uses this module to produce
//! the same bytes; the emulator uses [`check_spec`] to reject unknown spec fields.

use serde_json::{Map, Value};

/// The JSON kind of one godo field.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A string.
    Str,
    /// An integer (`int64`).
    Int,
    /// A floating-point number.
    Float,
    /// A boolean.
    Bool,
    /// A `time.Time`: always printed, `0001-01-01T00:00:00Z` when missing.
    Time,
    /// A nested struct (a pointer in godo).
    Struct(&'static Struct),
    /// A list of structs.
    List(&'static Struct),
    /// A list of strings.
    StrList,
    /// A list of integers.
    IntList,
    /// A field whose layout is not modelled: passed through as given.
    Opaque,
}

/// One field of a godo struct.
#[derive(Debug)]
pub struct Field {
    /// JSON name.
    pub name: &'static str,
    /// Kind.
    pub kind: Kind,
    /// Printed even when empty (no `omitempty`).
    pub always: bool,
}

/// A godo struct: its Go name and its fields in declaration order.
#[derive(Debug)]
pub struct Struct {
    /// Go type name, for example `AppSpec`.
    pub go_name: &'static str,
    /// Fields in declaration order.
    pub fields: &'static [Field],
}

const fn f(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        always: false,
    }
}

const fn always(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        always: true,
    }
}

use Kind::{Bool, Float, Int, IntList, List, Opaque, Str, StrList, Time};

/// `godo.AppSpec`.
pub static APP_SPEC: Struct = Struct {
    go_name: "AppSpec",
    fields: &[
        f("name", Str),
        f("services", List(&SERVICE)),
        f("static_sites", Opaque),
        f("workers", List(&WORKER)),
        f("jobs", Opaque),
        f("functions", Opaque),
        f("databases", Opaque),
        f("domains", Opaque),
        f("region", Str),
        f("envs", List(&ENV)),
        f("alerts", List(&ALERT)),
        f("ingress", Kind::Struct(&INGRESS)),
        f("egress", Opaque),
        f("features", StrList),
        f("maintenance", Opaque),
        f("vpc", Opaque),
        f("disable_edge_cache", Bool),
        f("disable_email_obfuscation", Bool),
        f("enhanced_threat_control_enabled", Bool),
    ],
};

/// `godo.AppServiceSpec`.
pub static SERVICE: Struct = Struct {
    go_name: "AppServiceSpec",
    fields: &[
        f("name", Str),
        f("git", Opaque),
        f("github", Opaque),
        f("image", Kind::Struct(&IMAGE)),
        f("gitlab", Opaque),
        f("bitbucket", Opaque),
        f("dockerfile_path", Str),
        f("build_command", Str),
        f("run_command", Str),
        f("source_dir", Str),
        f("environment_slug", Str),
        f("envs", List(&ENV)),
        f("instance_size_slug", Str),
        f("instance_count", Int),
        f("autoscaling", Opaque),
        f("http_port", Int),
        f("protocol", Str),
        f("routes", Opaque),
        f("health_check", Kind::Struct(&HEALTH_CHECK)),
        f("cors", Opaque),
        f("internal_ports", IntList),
        f("alerts", List(&ALERT)),
        f("log_destinations", Opaque),
        f("termination", Opaque),
        f("inactivity_sleep", Opaque),
        f("liveness_health_check", Kind::Struct(&LIVENESS)),
    ],
};

/// `godo.AppWorkerSpec`.
pub static WORKER: Struct = Struct {
    go_name: "AppWorkerSpec",
    fields: &[
        f("name", Str),
        f("git", Opaque),
        f("github", Opaque),
        f("image", Kind::Struct(&IMAGE)),
        f("gitlab", Opaque),
        f("bitbucket", Opaque),
        f("dockerfile_path", Str),
        f("build_command", Str),
        f("run_command", Str),
        f("source_dir", Str),
        f("environment_slug", Str),
        f("envs", List(&ENV)),
        f("instance_size_slug", Str),
        f("instance_count", Int),
        f("autoscaling", Opaque),
        f("alerts", List(&ALERT)),
        f("log_destinations", Opaque),
        f("termination", Opaque),
        f("liveness_health_check", Kind::Struct(&LIVENESS)),
    ],
};

/// `godo.ImageSourceSpec`.
pub static IMAGE: Struct = Struct {
    go_name: "ImageSourceSpec",
    fields: &[
        f("registry_type", Str),
        f("registry", Str),
        f("repository", Str),
        f("tag", Str),
        f("digest", Str),
        f("registry_credentials", Str),
        f("deploy_on_push", Opaque),
    ],
};

/// `godo.AppServiceSpecHealthCheck`.
pub static HEALTH_CHECK: Struct = Struct {
    go_name: "AppServiceSpecHealthCheck",
    fields: &[
        f("path", Str),
        f("initial_delay_seconds", Int),
        f("period_seconds", Int),
        f("timeout_seconds", Int),
        f("success_threshold", Int),
        f("failure_threshold", Int),
        f("http_path", Str),
        f("port", Int),
    ],
};

/// `godo.HealthCheck` (liveness).
pub static LIVENESS: Struct = Struct {
    go_name: "HealthCheck",
    fields: &[
        f("initial_delay_seconds", Int),
        f("period_seconds", Int),
        f("timeout_seconds", Int),
        f("success_threshold", Int),
        f("failure_threshold", Int),
        f("http_path", Str),
        f("port", Int),
    ],
};

/// `godo.AppVariableDefinition`.
pub static ENV: Struct = Struct {
    go_name: "AppVariableDefinition",
    fields: &[
        f("key", Str),
        f("value", Str),
        f("scope", Str),
        f("type", Str),
    ],
};

/// `godo.AppAlertSpec`.
pub static ALERT: Struct = Struct {
    go_name: "AppAlertSpec",
    fields: &[
        f("rule", Str),
        f("disabled", Bool),
        f("operator", Str),
        f("value", Float),
        f("window", Str),
    ],
};

/// `godo.AppIngressSpec`.
pub static INGRESS: Struct = Struct {
    go_name: "AppIngressSpec",
    fields: &[f("rules", List(&INGRESS_RULE))],
};

/// `godo.AppIngressSpecRule`.
pub static INGRESS_RULE: Struct = Struct {
    go_name: "AppIngressSpecRule",
    fields: &[
        f("match", Kind::Struct(&INGRESS_MATCH)),
        f("component", Kind::Struct(&INGRESS_COMPONENT)),
        f("redirect", Opaque),
        f("cors", Opaque),
    ],
};

/// `godo.AppIngressSpecRuleMatch`.
pub static INGRESS_MATCH: Struct = Struct {
    go_name: "AppIngressSpecRuleMatch",
    fields: &[
        f("path", Kind::Struct(&STRING_MATCH)),
        f("authority", Opaque),
    ],
};

/// `godo.AppIngressSpecRuleStringMatch`.
pub static STRING_MATCH: Struct = Struct {
    go_name: "AppIngressSpecRuleStringMatch",
    fields: &[f("prefix", Str), f("exact", Str)],
};

/// `godo.AppIngressSpecRuleRoutingComponent`.
pub static INGRESS_COMPONENT: Struct = Struct {
    go_name: "AppIngressSpecRuleRoutingComponent",
    fields: &[
        f("name", Str),
        f("preserve_path_prefix", Bool),
        f("rewrite", Str),
    ],
};

/// `godo.App`.
pub static APP: Struct = Struct {
    go_name: "App",
    fields: &[
        f("id", Str),
        f("owner_uuid", Str),
        always("spec", Kind::Struct(&APP_SPEC)),
        always("last_deployment_active_at", Time),
        f("default_ingress", Str),
        always("created_at", Time),
        always("updated_at", Time),
        f("active_deployment", Kind::Struct(&DEPLOYMENT)),
        f("in_progress_deployment", Kind::Struct(&DEPLOYMENT)),
        f("pending_deployment", Kind::Struct(&DEPLOYMENT)),
        always("last_deployment_created_at", Time),
        f("live_url", Str),
        f("region", Kind::Struct(&REGION)),
        f("tier_slug", Str),
        f("live_url_base", Str),
        f("live_domain", Str),
        f("domains", Opaque),
        f("pinned_deployment", Opaque),
        f("build_config", Opaque),
        f("project_id", Str),
        f("dedicated_ips", Opaque),
        f("vpc", Opaque),
    ],
};

/// `godo.AppRegion`.
pub static REGION: Struct = Struct {
    go_name: "AppRegion",
    fields: &[
        f("slug", Str),
        f("label", Str),
        f("flag", Str),
        f("continent", Str),
        f("disabled", Bool),
        f("data_centers", StrList),
        f("reason", Str),
        f("default", Bool),
    ],
};

/// `godo.Deployment`.
pub static DEPLOYMENT: Struct = Struct {
    go_name: "Deployment",
    fields: &[
        f("id", Str),
        f("spec", Kind::Struct(&APP_SPEC)),
        f("services", List(&DEPLOYMENT_SERVICE)),
        f("static_sites", Opaque),
        f("workers", List(&DEPLOYMENT_WORKER)),
        f("jobs", Opaque),
        f("functions", Opaque),
        always("phase_last_updated_at", Time),
        always("created_at", Time),
        always("updated_at", Time),
        f("cause", Str),
        f("cloned_from", Str),
        f("progress", Kind::Struct(&PROGRESS)),
        f("phase", Str),
        f("tier_slug", Str),
        f("previous_deployment_id", Str),
        f("cause_details", Kind::Struct(&CAUSE_DETAILS)),
        f("load_balancer_id", Str),
        f("timing", Kind::Struct(&TIMING)),
    ],
};

/// `godo.DeploymentService`.
pub static DEPLOYMENT_SERVICE: Struct = Struct {
    go_name: "DeploymentService",
    fields: &[
        f("name", Str),
        f("source_commit_hash", Str),
        f("buildpacks", Opaque),
    ],
};

/// `godo.DeploymentWorker`.
pub static DEPLOYMENT_WORKER: Struct = Struct {
    go_name: "DeploymentWorker",
    fields: &[f("name", Str), f("source_commit_hash", Str)],
};

/// `godo.DeploymentProgress`.
pub static PROGRESS: Struct = Struct {
    go_name: "DeploymentProgress",
    fields: &[
        f("pending_steps", Int),
        f("running_steps", Int),
        f("success_steps", Int),
        f("error_steps", Int),
        f("total_steps", Int),
        f("steps", List(&STEP)),
        f("summary_steps", List(&STEP)),
    ],
};

/// `godo.DeploymentProgressStep`.
pub static STEP: Struct = Struct {
    go_name: "DeploymentProgressStep",
    fields: &[
        f("name", Str),
        f("status", Str),
        f("steps", List(&STEP)),
        always("started_at", Time),
        always("ended_at", Time),
        f("reason", Kind::Struct(&STEP_REASON)),
        f("component_name", Str),
        f("message_base", Str),
    ],
};

/// `godo.DeploymentProgressStepReason`.
pub static STEP_REASON: Struct = Struct {
    go_name: "DeploymentProgressStepReason",
    fields: &[f("code", Str), f("message", Str)],
};

/// `godo.DeploymentCauseDetails`.
pub static CAUSE_DETAILS: Struct = Struct {
    go_name: "DeploymentCauseDetails",
    fields: &[
        f("digitalocean_user_action", Opaque),
        f("git_push", Opaque),
        f("docr_push", Opaque),
        f("internal", Bool),
        f("autoscaler", Opaque),
        f("type", Str),
    ],
};

/// `godo.DeploymentTiming`.
pub static TIMING: Struct = Struct {
    go_name: "DeploymentTiming",
    fields: &[
        f("pending", Str),
        f("build_total", Str),
        f("build_billable", Str),
        f("components", Opaque),
        f("database_provision", Str),
        f("deploying", Str),
    ],
};

/// `godo.AppInstance`.
pub static INSTANCE: Struct = Struct {
    go_name: "AppInstance",
    fields: &[
        f("component_name", Str),
        f("instance_name", Str),
        f("component_type", Str),
        f("instance_alias", Str),
    ],
};

/// The zero `time.Time` as Go prints it.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn go_type(kind: Kind) -> String {
    match kind {
        Str | Time => "string".to_owned(),
        Int => "int64".to_owned(),
        Float => "float32".to_owned(),
        Bool => "bool".to_owned(),
        Kind::Struct(s) => format!("godo.{}", s.go_name),
        List(s) => format!("[]*godo.{}", s.go_name),
        StrList => "[]string".to_owned(),
        IntList => "[]int64".to_owned(),
        Opaque => "interface {}".to_owned(),
    }
}

/// Decodes `value` into `schema` the way `json.Decoder` with `DisallowUnknownFields` does, keys
/// visited in sorted order (doctl converts YAML to JSON through a Go map first).
///
/// Returns the first error, worded as Go words it (`json: unknown field "x"`).
///
/// # Errors
///
/// The first unknown field or type mismatch.
pub fn strict_decode(value: &Value, schema: &'static Struct) -> Result<(), String> {
    decode_struct(value, schema, schema.go_name, "")
}

fn decode_struct(
    value: &Value,
    schema: &'static Struct,
    root: &str,
    path: &str,
) -> Result<(), String> {
    let Value::Object(map) = value else {
        if value.is_null() {
            return Ok(());
        }
        let field = if path.is_empty() {
            String::new()
        } else {
            format!(" Go struct field {root}.{path} of")
        };
        return Err(format!(
            "json: cannot unmarshal {} into{field} type godo.{}",
            json_kind(value),
            schema.go_name
        ));
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let Some(field) = schema.fields.iter().find(|fl| fl.name == key.as_str()) else {
            return Err(format!("json: unknown field \"{key}\""));
        };
        let child = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        decode_value(&map[key.as_str()], field.kind, root, &child)?;
    }
    Ok(())
}

fn decode_value(value: &Value, kind: Kind, root: &str, path: &str) -> Result<(), String> {
    let mismatch = || {
        Err(format!(
            "json: cannot unmarshal {} into Go struct field {root}.{path} of type {}",
            json_kind(value),
            go_type(kind)
        ))
    };
    if value.is_null() {
        return Ok(());
    }
    match kind {
        Str | Time => {
            if !value.is_string() {
                return mismatch();
            }
        }
        Int => {
            if !(value.is_i64() || value.is_u64()) {
                return mismatch();
            }
        }
        Float => {
            if !value.is_number() {
                return mismatch();
            }
        }
        Bool => {
            if !value.is_boolean() {
                return mismatch();
            }
        }
        Kind::Struct(s) => {
            if !value.is_object() {
                return mismatch();
            }
            decode_struct(value, s, root, path)?;
        }
        List(s) => {
            let Value::Array(items) = value else {
                return mismatch();
            };
            for item in items {
                if !item.is_object() && !item.is_null() {
                    return Err(format!(
                        "json: cannot unmarshal {} into Go struct field {root}.{path} of type godo.{}",
                        json_kind(item),
                        s.go_name
                    ));
                }
                decode_struct(item, s, root, path)?;
            }
        }
        StrList | IntList => {
            let Value::Array(items) = value else {
                return mismatch();
            };
            let want_string = matches!(kind, StrList);
            for item in items {
                let ok = if want_string {
                    item.is_string()
                } else {
                    item.is_i64() || item.is_u64()
                };
                if !ok {
                    return Err(format!(
                        "json: cannot unmarshal {} into Go struct field {root}.{path} of type {}",
                        json_kind(item),
                        if want_string { "string" } else { "int64" }
                    ));
                }
            }
        }
        Opaque => {}
    }
    Ok(())
}

/// Finds the first spec field godo does not know, as a dotted path without list indexes
/// (`workers.http_port`, App Platform's style); `None` when every field is known.
#[must_use]
pub fn check_spec(spec: &Value) -> Option<String> {
    unknown_in(spec, &APP_SPEC, "")
}

fn unknown_in(value: &Value, schema: &'static Struct, path: &str) -> Option<String> {
    let Value::Object(map) = value else {
        return None;
    };
    for (key, child) in map {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let Some(field) = schema.fields.iter().find(|fl| fl.name == key.as_str()) else {
            return Some(here);
        };
        match (field.kind, child) {
            (Kind::Struct(s), _) => {
                if let Some(found) = unknown_in(child, s, &here) {
                    return Some(found);
                }
            }
            (List(s), Value::Array(items)) => {
                for item in items {
                    if let Some(found) = unknown_in(item, s, &here) {
                        return Some(found);
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// Re-encodes `value` as godo would after decoding it into `schema`: struct field order,
/// unknown fields dropped, empty values omitted, times in Go's format.
#[must_use]
pub fn reencode(value: &Value, schema: &'static Struct) -> Value {
    let empty = Map::new();
    let map = value.as_object().unwrap_or(&empty);
    let mut out = Map::new();
    for field in schema.fields {
        let child = map.get(field.name).unwrap_or(&Value::Null);
        let encoded = match field.kind {
            Time => Value::String(go_time(child.as_str().unwrap_or(""))),
            Kind::Struct(s) => {
                if child.is_object() {
                    reencode(child, s)
                } else {
                    Value::Null
                }
            }
            List(s) => match child {
                Value::Array(items) => Value::Array(
                    items
                        .iter()
                        .map(|item| {
                            if item.is_null() {
                                Value::Null
                            } else {
                                reencode(item, s)
                            }
                        })
                        .collect(),
                ),
                _ => Value::Null,
            },
            _ => child.clone(),
        };
        if !field.always && is_empty(&encoded) {
            continue;
        }
        out.insert(field.name.to_owned(), encoded);
    }
    Value::Object(out)
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(_) => false,
    }
}

/// The fraction of a second as Go's time formats print it: empty for a whole second, else a
/// dot and the nanoseconds without trailing zeros (`.5`, `.000123`).
#[must_use]
pub fn go_fraction(nanos: u32) -> String {
    if nanos == 0 {
        String::new()
    } else {
        format!(".{}", format!("{nanos:09}").trim_end_matches('0'))
    }
}

/// A time as Go's `time.Time` marshals it: RFC 3339 with trailing fraction zeros trimmed,
/// `Z` for UTC; the zero time when `text` is empty or does not parse.
#[must_use]
pub fn go_time(text: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) else {
        return ZERO_TIME.to_owned();
    };
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let frac = go_fraction(t.nanosecond());
    let offset = t.offset();
    let zone = if offset.is_utc() {
        "Z".to_owned()
    } else {
        let (h, m, _) = offset.as_hms();
        format!(
            "{}{:02}:{:02}",
            if offset.is_negative() { '-' } else { '+' },
            h.abs(),
            m.abs()
        )
    };
    format!("{base}{frac}{zone}")
}

/// Applies Go's `encoding/json` HTML escaping to already-encoded JSON text: `<`, `>`, `&`,
/// U+2028 and U+2029 become `\u003c`, `\u003e`, `\u0026`, `\u2028`, `\u2029`. Safe on whole
/// documents because these characters only occur inside strings.
#[must_use]
pub fn go_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Encodes like `json.NewEncoder(w).SetIndent("", "  ").Encode(v)`: two-space indent, Go's
/// escaping, a trailing newline.
#[must_use]
pub fn encode_indented(value: &Value) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned());
    let mut out = go_escape(&text);
    out.push('\n');
    out
}

/// Encodes like `json.Marshal`: compact, Go's escaping, no newline.
#[must_use]
pub fn encode_compact(value: &Value) -> String {
    go_escape(&serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strict_decode_names_the_first_unknown_key_in_sorted_order() {
        let spec = json!({"workers": [{"name": "w", "http_port": 8080}], "sandbox_mode": true, "name": "x"});
        assert_eq!(
            strict_decode(&spec, &APP_SPEC).unwrap_err(),
            "json: unknown field \"sandbox_mode\""
        );
        let spec = json!({"workers": [{"name": "w", "http_port": 8080}], "name": "x"});
        assert_eq!(
            strict_decode(&spec, &APP_SPEC).unwrap_err(),
            "json: unknown field \"http_port\""
        );
    }

    #[test]
    fn strict_decode_reports_type_mismatches_like_go() {
        let spec = json!({"name": "x", "services": {"name": "web"}});
        assert_eq!(
            strict_decode(&spec, &APP_SPEC).unwrap_err(),
            "json: cannot unmarshal object into Go struct field AppSpec.services of type []*godo.AppServiceSpec"
        );
    }

    #[test]
    fn reencode_orders_fields_drops_unknown_and_fills_times() {
        let app = json!({"spec": {"region": "atl", "name": "a"}, "id": "1", "x_unknown": 1, "tier_slug": ""});
        let out = reencode(&app, &APP);
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"id":"1","spec":{"name":"a","region":"atl"},"last_deployment_active_at":"0001-01-01T00:00:00Z","created_at":"0001-01-01T00:00:00Z","updated_at":"0001-01-01T00:00:00Z","last_deployment_created_at":"0001-01-01T00:00:00Z"}"#
        );
    }

    #[test]
    fn go_fraction_drops_trailing_zeros() {
        assert_eq!(go_fraction(0), "");
        assert_eq!(go_fraction(500_000_000), ".5");
        assert_eq!(go_fraction(123_000), ".000123");
    }

    #[test]
    fn go_time_trims_fraction_zeros() {
        assert_eq!(
            go_time("2026-08-10T12:00:03.912345670Z"),
            "2026-08-10T12:00:03.91234567Z"
        );
        assert_eq!(
            go_time("2026-08-10T12:00:04.100000000Z"),
            "2026-08-10T12:00:04.1Z"
        );
        assert_eq!(go_time("2026-08-10T12:00:00Z"), "2026-08-10T12:00:00Z");
        assert_eq!(go_time(""), ZERO_TIME);
    }

    #[test]
    fn go_escape_escapes_html_characters() {
        assert_eq!(
            go_escape(r#"{"a":"x<&>y"}"#),
            r#"{"a":"x\u003c\u0026\u003ey"}"#
        );
    }
}
