//! Every recorded doctl case (`tests/fixtures/`, real doctl against a mock API) fed to the
//! output parser: its stdout, stderr and exit code must give the expected typed result or error.

use std::fs;
use std::path::{Path, PathBuf};

use super::parse::{self, RawOutput, Subject};
use crate::error::Error;
use crate::types::DeploymentPhase;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

struct Case {
    name: String,
    cmd: String,
    output: RawOutput,
}

impl Case {
    fn load(dir: &Path) -> Case {
        let read = |file: &str| fs::read_to_string(dir.join(file)).unwrap_or_default();
        let exit = read("exit_code");
        Case {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            cmd: read("cmd.txt"),
            output: RawOutput {
                // `killed(...)` and `signal N`: no exit code.
                code: exit.trim().parse().ok(),
                stdout: read("stdout"),
                stderr: read("stderr"),
            },
        }
    }

    fn subcommand(&self) -> &str {
        let mut words = self.cmd.split_whitespace().skip_while(|w| *w != "apps");
        words.next();
        words.next().unwrap_or("")
    }

    fn json(&self) -> bool {
        self.cmd.contains("-o json")
    }

    fn subject(&self) -> Subject {
        let subject = Subject::new(format!("doctl apps {}", self.subcommand()), "app `X`");
        if self.subcommand() == "create" {
            subject.with_name("sandbox-7f3a")
        } else {
            subject
        }
    }

    fn error(&self) -> Error {
        assert!(!self.output.success(), "{}: expected a failure", self.name);
        parse::classify_failure(&self.output, &self.subject())
    }
}

/// What a case must give.
enum Expect {
    /// Success; `-o json` output that parses (apps, deployments or instances).
    Parsed(usize),
    /// Success of a command whose output is not JSON (text tables, logs, delete).
    Ok,
    NotFound,
    NotAuthenticated,
    NameTaken,
    InvalidSpec(&'static str),
    RateLimited,
    Network,
    ConsoleLost,
    /// [`Error::Other`] whose message contains the text.
    Other(&'static str),
}

fn expectation(name: &str) -> Expect {
    use Expect::*;
    match name {
        "apps-console-exec-404" => NotFound,
        "apps-console-instance-and-deployment-not-tty"
        | "apps-console-stdin-not-tty"
        | "apps-console-stdin-pipe" => Other("raw mode"),
        "apps-console-pty-24x80-close-1000"
        | "apps-console-pty-close-1000-stderr-separate"
        | "apps-console-pty-keepalive"
        | "apps-console-pty-nosize"
        | "apps-console-pty-special-input" => Ok,
        "apps-console-pty-50x200-resize-close-1011" | "apps-console-pty-tcp-drop" => ConsoleLost,
        // The console module turns this one into ConsoleLost (the session had begun).
        "apps-console-pty-non-json-frame" => Other("invalid character"),
        "apps-console-pty-dial-refused"
        | "apps-console-pty-upgrade-refused"
        | "apps-console-pty-upgrade-refused-signals" => Other("killed by a signal"),
        "apps-create-conflict-409" => NameTaken,
        "apps-create-invalid-spec-400" | "apps-create-invalid-spec-400-text" => {
            InvalidSpec("services.health_check.port")
        }
        "apps-create-unknown-field" | "apps-create-unknown-field-text" => {
            InvalidSpec("sandbox_mode")
        }
        "apps-create-worker-http-port" => InvalidSpec("http_port"),
        "apps-create-no-spec-flag" => Other("missing required arguments"),
        "apps-create-spec-missing-file" => Other("does not exist"),
        "apps-create-unauthenticated-401" => NotAuthenticated,
        "apps-create-wait-deploy-error" | "apps-create-wait-deploy-error-text" => {
            Other("couldn't enter `running` state")
        }
        "apps-create-service-success"
        | "apps-create-spec-stdin"
        | "apps-create-upsert-409"
        | "apps-create-wait-success"
        | "apps-create-worker-success" => Parsed(1),
        "apps-delete-by-name"
        | "apps-delete-force-not-found-404"
        | "apps-delete-force-not-found-404-json" => NotFound,
        "apps-delete-force-success" => Ok,
        "apps-delete-no-force-noninteractive" => Other("Operation aborted"),
        "apps-get-active-service"
        | "apps-get-active-worker"
        | "apps-get-deploying-worker"
        | "apps-get-error"
        | "apps-get-error-no-deployment"
        | "server-error-500-then-success-default-retry"
        | "apps-get-deployment-active"
        | "apps-get-deployment-error" => Parsed(1),
        "apps-get-by-name" | "apps-get-not-found-404" | "apps-get-not-found-404-text" => NotFound,
        "apps-list-deployments-active-worker" | "apps-list-deployments-error" => Parsed(1),
        "apps-list-deployments-empty" | "apps-list-empty" | "apps-list-instances-empty" => {
            Parsed(0)
        }
        "apps-list-instances" | "rate-limit-429-then-success-default-retry" => Parsed(1),
        "apps-list-paginated" | "apps-list-two" => Parsed(2),
        "auth-bad-token-401"
        | "auth-bad-token-401-json"
        | "auth-no-token"
        | "auth-no-token-json" => NotAuthenticated,
        "missing-arg-get" => Other("missing required arguments"),
        "rate-limit-429-exhausted-default-retry" | "rate-limit-429-no-retry" => RateLimited,
        "server-down-connection-refused"
        | "server-down-connection-refused-json"
        | "server-down-connection-refused-retry1"
        | "server-error-502-html-body" => Network,
        "server-error-500" | "server-error-500-json" | "server-error-500-empty-body" => {
            Other("answered 500")
        }
        "unknown-flag" => Other("unknown flag: --bogus"),
        // Text tables and logs: exit 0, nothing to parse as JSON.
        name if name.ends_with("-text") || name.starts_with("apps-logs-") => Ok,
        "apps-get-format-noheader-deploying" | "apps-list-format-noheader" => Ok,
        other => panic!("no expectation for fixture `{other}`"),
    }
}

fn parsed_count(case: &Case) -> usize {
    let stdout = &case.output.stdout;
    match case.subcommand() {
        "get" | "create" => {
            parse::parse_app(stdout, &case.name).unwrap_or_else(|e| panic!("{}: {e}", case.name));
            1
        }
        "list" => parse::parse_apps(stdout, &case.name).unwrap().len(),
        "list-deployments" | "get-deployment" => {
            parse::parse_deployments(stdout, &case.name).unwrap().len()
        }
        "list-instances" => parse::parse_instances(stdout, &case.name).unwrap().len(),
        other => panic!("{}: no parser for `{other}`", case.name),
    }
}

#[test]
fn every_fixture_gives_its_typed_result() {
    let mut dirs: Vec<PathBuf> = fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 90, "fixtures missing: {}", dirs.len());
    for dir in dirs {
        let case = Case::load(&dir);
        let name = case.name.as_str();
        match expectation(name) {
            Expect::Parsed(count) => {
                assert!(case.output.success(), "{name}");
                assert!(case.json(), "{name}");
                assert_eq!(parsed_count(&case), count, "{name}");
            }
            Expect::Ok => assert!(case.output.success(), "{name}: {:?}", case.output),
            Expect::NotFound => {
                let err = case.error();
                assert!(err.is_not_found(), "{name}: {err:?}");
                assert_eq!(err.to_string(), "app `X` not found");
            }
            Expect::NotAuthenticated => {
                let err = case.error();
                assert!(
                    matches!(err, Error::NotAuthenticated { .. }),
                    "{name}: {err:?}"
                );
            }
            Expect::NameTaken => {
                let err = case.error();
                assert!(
                    matches!(&err, Error::NameTaken { name } if name == "sandbox-7f3a"),
                    "{name}: {err:?}"
                );
            }
            Expect::InvalidSpec(field) => match case.error() {
                Error::InvalidSpec { field: Some(f), .. } => assert_eq!(f, field, "{name}"),
                err => panic!("{name}: {err:?}"),
            },
            Expect::RateLimited => {
                let err = case.error();
                assert!(matches!(err, Error::RateLimited { .. }), "{name}: {err:?}");
                assert!(err.is_retryable());
            }
            Expect::Network => {
                let err = case.error();
                assert!(matches!(err, Error::Network { .. }), "{name}: {err:?}");
                assert!(
                    !err.is_not_found(),
                    "{name}: a network error is never `not found`"
                );
            }
            Expect::ConsoleLost => {
                let err = case.error();
                assert!(matches!(err, Error::ConsoleLost { .. }), "{name}: {err:?}");
            }
            Expect::Other(text) => {
                let err = case.error();
                assert!(matches!(err, Error::Other { .. }), "{name}: {err:?}");
                assert!(err.to_string().contains(text), "{name}: {err}");
            }
        }
    }
}

#[test]
fn text_output_is_not_mistaken_for_json() {
    let stdout = fs::read_to_string(fixtures().join("apps-get-active-worker-text/stdout")).unwrap();
    let err = parse::parse_apps(&stdout, "doctl apps get").unwrap_err();
    assert!(
        err.to_string().contains("could not parse the JSON output"),
        "{err}"
    );
}

#[test]
fn wait_error_keeps_the_app_document_first() {
    // `create --wait -o json` failing prints the app array, then an error document.
    let stdout =
        fs::read_to_string(fixtures().join("apps-create-wait-deploy-error/stdout")).unwrap();
    let app = parse::parse_app(&stdout, "doctl apps create").unwrap();
    assert_eq!(app.name(), "sandbox-7f3a");
}

#[test]
fn failed_deployment_from_list_deployments() {
    let stdout = fs::read_to_string(fixtures().join("apps-list-deployments-error/stdout")).unwrap();
    let deployments = parse::parse_deployments(&stdout, "doctl apps list-deployments").unwrap();
    assert_eq!(deployments[0].phase, DeploymentPhase::Error);
    assert!(
        deployments[0]
            .failure_reason()
            .unwrap()
            .contains("non-zero exit code")
    );
}

#[test]
fn invalid_spec_message_names_the_field() {
    let out = RawOutput {
        code: Some(1),
        stdout: String::new(),
        stderr: fs::read_to_string(fixtures().join("apps-create-invalid-spec-400-text/stderr"))
            .unwrap(),
    };
    let err = parse::classify_failure(
        &out,
        &Subject::new("doctl apps create", "app").with_name("n"),
    );
    assert_eq!(
        err.to_string(),
        "invalid app spec field `services.health_check.port`: error validating app spec field \
         \"services.health_check.port\": health check port \"9090\" not found in internal_ports"
    );
}
