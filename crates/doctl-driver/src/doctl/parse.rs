//! What doctl prints, read into typed results and typed errors. Pure functions, no I/O.
//!
//! Success: `-o json` prints a JSON array even for `get` and `create` (`null` for
//! `list-instances` with no instances). Failure: exit 1 (255 for a command-line error) with
//! `{"errors":[{"detail":"..."}]}` on stdout under `-o json`, or `Error: <message>` on stderr
//! (red when stdout is a terminal). API failures read
//! `<METHOD> <url>: <status> (request "<id>") <message>`; transport failures read
//! `<Method> "<url>": <cause>`.

use std::sync::LazyLock;

use regex::Regex;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::types::{App, Deployment, Instance};
use crate::wire::{WireApp, WireDeployment, WireInstance};

/// How a doctl process ended, and what it printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RawOutput {
    /// Exit code; `None` when a signal ended it.
    pub(crate) code: Option<i32>,
    /// Everything on stdout.
    pub(crate) stdout: String,
    /// Everything on stderr.
    pub(crate) stderr: String,
}

impl RawOutput {
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// What a call was about, so errors can name it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Subject {
    /// The command, for messages (`doctl apps get 6b3c...`). Never holds a secret.
    pub(crate) command: String,
    /// What a 404 means, for example "app `6b3c...`".
    pub(crate) what: String,
    /// The app name, for a 409.
    pub(crate) name: Option<String>,
}

impl Subject {
    pub(crate) fn new(command: impl Into<String>, what: impl Into<String>) -> Self {
        Subject {
            command: command.into(),
            what: what.into(),
            name: None,
        }
    }

    pub(crate) fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

static ANSI: LazyLock<Regex> = LazyLock::new(|| {
    #[expect(clippy::unwrap_used, reason = "a constant pattern that compiles")]
    Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]").unwrap()
});

static API_ERROR: LazyLock<Regex> = LazyLock::new(|| {
    #[expect(clippy::unwrap_used, reason = "a constant pattern that compiles")]
    Regex::new(
        r#"(?s)^(GET|POST|PUT|PATCH|DELETE|HEAD) (\S+): (\d{3}) ?(?:\(request "([^"]*)"\) )?(.*)$"#,
    )
    .unwrap()
});

static TRANSPORT_ERROR: LazyLock<Regex> = LazyLock::new(|| {
    #[expect(clippy::unwrap_used, reason = "a constant pattern that compiles")]
    Regex::new(r#"(?s)^(Get|Post|Put|Patch|Delete|Head) "[^"]*": (.*)$"#).unwrap()
});

static SPEC_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    #[expect(clippy::unwrap_used, reason = "a constant pattern that compiles")]
    Regex::new(r#"field "([^"]+)""#).unwrap()
});

/// Removes terminal colour escapes (doctl paints `Error` red when stdout is a terminal).
pub(crate) fn strip_ansi(text: &str) -> String {
    ANSI.replace_all(text, "").into_owned()
}

/// The error doctl reported, from its JSON error document on stdout or its `Error:` line(s)
/// on stderr; `None` when it said nothing recognisable.
pub(crate) fn error_detail(output: &RawOutput) -> Option<String> {
    // Under -o json stdout may hold the app array first, then the error document.
    let documents =
        serde_json::Deserializer::from_str(&output.stdout).into_iter::<serde_json::Value>();
    for document in documents {
        let Ok(document) = document else { break };
        if let Some(errors) = document.get("errors").and_then(|e| e.as_array()) {
            let details: Vec<&str> = errors
                .iter()
                .filter_map(|e| e.get("detail").and_then(|d| d.as_str()))
                .collect();
            if !details.is_empty() {
                return Some(details.join("; "));
            }
        }
    }
    error_line(&output.stderr).or_else(|| {
        let stdout = output.stdout.trim();
        (!stdout.is_empty() && !stdout.starts_with(['[', '{'])).then(|| stdout.to_owned())
    })
}

/// The text after the last `Error: ` at the start of a line, to the end (API messages may span
/// lines), trimmed; colour escapes removed.
pub(crate) fn error_line(text: &str) -> Option<String> {
    let text = strip_ansi(text);
    let start = if text.starts_with("Error: ") {
        Some(0)
    } else {
        None
    };
    let start = text.rfind("\nError: ").map(|i| i + 1).or(start)?;
    let rest = &text[start + "Error: ".len()..];
    // Keep the first paragraph: usage text follows a blank line on command-line errors.
    let message = match rest.find("\nUsage:") {
        Some(end) => &rest[..end],
        None => rest,
    };
    Some(message.trim().to_owned())
}

/// doctl's last `Error: ` message in a terminal stream, where it may follow the remote prompt on
/// the same line (doctl's stderr is the console's terminal too). Only meaningful once doctl has
/// exited non-zero.
pub(crate) fn last_error_in_terminal(text: &str) -> Option<String> {
    let text = strip_ansi(text);
    let start = text.rfind("Error: ")?;
    let message = text[start + "Error: ".len()..].trim();
    (!message.is_empty()).then(|| message.to_owned())
}

/// Maps a failed run of doctl to a typed error.
pub(crate) fn classify_failure(output: &RawOutput, subject: &Subject) -> Error {
    match error_detail(output) {
        Some(detail) => classify(&detail, output.code, subject),
        None => Error::other(format!(
            "`{}` failed ({}) without saying why{}",
            subject.command,
            describe_exit(output.code),
            if output.stderr.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", strip_ansi(output.stderr.trim()))
            }
        )),
    }
}

pub(crate) fn describe_exit(code: Option<i32>) -> String {
    match code {
        Some(code) => format!("exit {code}"),
        None => "killed by a signal".to_owned(),
    }
}

/// Maps one doctl error message to a typed error.
pub(crate) fn classify(detail: &str, code: Option<i32>, subject: &Subject) -> Error {
    if let Some(captures) = API_ERROR.captures(detail) {
        let status: u16 = captures[3].parse().unwrap_or(0);
        let request_id = captures.get(4).map(|m| m.as_str().to_owned());
        let message = captures[5].trim().to_owned();
        return classify_status(status, message, request_id, subject);
    }
    if let Some(captures) = TRANSPORT_ERROR.captures(detail) {
        let cause = captures[2].trim();
        if cause.contains("Client.Timeout") || cause.contains("deadline exceeded") {
            return Error::Network {
                message: format!("request timed out: {detail}"),
            };
        }
        return Error::Network {
            message: detail.to_owned(),
        };
    }
    if detail.contains("access token is required") || detail.contains("Unable to authenticate") {
        return Error::NotAuthenticated {
            message: detail.to_owned(),
        };
    }
    if let Some(rest) = detail.strip_prefix("parsing app spec: ") {
        let field = rest
            .strip_prefix("json: unknown field ")
            .map(|f| f.trim_matches('"').to_owned());
        return Error::InvalidSpec {
            field,
            message: detail.to_owned(),
        };
    }
    if detail.contains("error reading from websocket") || detail.contains("websocket: close") {
        return Error::ConsoleLost {
            reason: detail.to_owned(),
        };
    }
    if code == Some(255)
        || detail.starts_with("unknown flag")
        || detail.starts_with("unknown command")
        || detail.contains("command is missing required arguments")
    {
        return Error::other(format!(
            "doctl rejected the command line of `{}` (is this doctl too old?): {detail}",
            subject.command
        ));
    }
    Error::other(format!("`{}` failed: {detail}", subject.command))
}

fn classify_status(
    status: u16,
    message: String,
    request_id: Option<String>,
    subject: &Subject,
) -> Error {
    match status {
        401 | 403 => Error::NotAuthenticated {
            message: if message.is_empty() {
                format!("HTTP {status}")
            } else {
                message
            },
        },
        404 => Error::not_found(if subject.what.is_empty() {
            "the resource".to_owned()
        } else {
            subject.what.clone()
        }),
        409 => match &subject.name {
            Some(name) => Error::NameTaken { name: name.clone() },
            None => Error::other(format!("`{}` conflicts: {message}", subject.command)),
        },
        400 | 422 => {
            let field = SPEC_FIELD.captures(&message).map(|c| c[1].to_owned());
            if field.is_some() || subject.name.is_some() {
                Error::InvalidSpec { field, message }
            } else {
                Error::InvalidArgument {
                    name: subject.command.clone(),
                    reason: message,
                }
            }
        }
        429 => Error::RateLimited {
            retry_after: None,
            limits: None,
        },
        502..=504 => Error::Network {
            message: format!("the API gateway answered {status}: {}", one_line(&message)),
        },
        _ => Error::other(format!(
            "`{}` failed: the API answered {status}{}{}",
            subject.command,
            if message.is_empty() {
                String::new()
            } else {
                format!(": {}", one_line(&message))
            },
            request_id
                .map(|id| format!(" (request {id})"))
                .unwrap_or_default()
        )),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses the first JSON document on stdout (doctl may print a second one, an error).
fn first_document<T: DeserializeOwned>(stdout: &str, command: &str) -> Result<T, Error> {
    let mut documents = serde_json::Deserializer::from_str(stdout).into_iter::<T>();
    match documents.next() {
        Some(Ok(value)) => Ok(value),
        Some(Err(source)) => Err(Error::other_with(
            format!(
                "could not parse the JSON output of `{command}`: {}",
                excerpt(stdout)
            ),
            source,
        )),
        None => Err(Error::other(format!(
            "`{command}` printed nothing on stdout"
        ))),
    }
}

fn excerpt(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(120) {
        Some((i, _)) => format!("`{}...`", &text[..i]),
        None => format!("`{text}`"),
    }
}

/// Apps from `apps list|get|create -o json`.
pub(crate) fn parse_apps(stdout: &str, command: &str) -> Result<Vec<App>, Error> {
    let wire: Option<Vec<WireApp>> = first_document(stdout, command)?;
    wire.unwrap_or_default()
        .into_iter()
        .map(App::try_from)
        .collect()
}

/// The one app from `apps get|create -o json`.
pub(crate) fn parse_app(stdout: &str, command: &str) -> Result<App, Error> {
    let mut apps = parse_apps(stdout, command)?;
    if apps.len() != 1 {
        return Err(Error::other(format!(
            "`{command}` printed {} apps where one was expected",
            apps.len()
        )));
    }
    apps.pop()
        .ok_or_else(|| Error::other(format!("`{command}` printed no app")))
}

/// Deployments from `apps list-deployments -o json`.
pub(crate) fn parse_deployments(stdout: &str, command: &str) -> Result<Vec<Deployment>, Error> {
    let wire: Option<Vec<WireDeployment>> = first_document(stdout, command)?;
    Ok(wire
        .unwrap_or_default()
        .into_iter()
        .map(Deployment::from)
        .collect())
}

/// Instances from `apps list-instances -o json` (`null` when there are none).
pub(crate) fn parse_instances(stdout: &str, command: &str) -> Result<Vec<Instance>, Error> {
    let wire: Option<Vec<WireInstance>> = first_document(stdout, command)?;
    Ok(wire
        .unwrap_or_default()
        .into_iter()
        .map(Instance::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(stdout: &str, stderr: &str, code: i32) -> RawOutput {
        RawOutput {
            code: Some(code),
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }

    fn subject() -> Subject {
        Subject::new("doctl apps get abc", "app `abc`")
    }

    #[test]
    fn red_error_line_is_read() {
        let out = failed(
            "",
            "\x1b[31mError\x1b[0m: error reading from websocket: websocket: close 1006 (abnormal closure): unexpected EOF\n",
            1,
        );
        assert!(matches!(
            classify_failure(&out, &subject()),
            Error::ConsoleLost { .. }
        ));
    }

    #[test]
    fn api_error_without_request_id_or_body() {
        let out = failed("", "Error: GET http://h/v2/apps/abc: 500 \n", 1);
        let err = classify_failure(&out, &subject());
        assert!(matches!(err, Error::Other { .. }), "{err:?}");
        assert!(err.to_string().contains("500"), "{err}");
    }

    #[test]
    fn garbage_stdout_is_a_parse_error() {
        let err = parse_apps("<html>oops</html>", "doctl apps list").unwrap_err();
        assert!(err.to_string().contains("could not parse"), "{err}");
    }

    #[test]
    fn error_after_the_prompt_on_the_terminal() {
        let tail = "sandbox@x:~/app$ \x1b[31mError\x1b[0m: error reading from websocket: websocket: close 1006 (abnormal closure): unexpected EOF\r\n";
        assert_eq!(
            last_error_in_terminal(tail).as_deref(),
            Some(
                "error reading from websocket: websocket: close 1006 (abnormal closure): unexpected EOF"
            )
        );
        assert_eq!(last_error_in_terminal("sandbox$ exit\r\n"), None);
    }

    #[test]
    fn failure_without_message() {
        let out = RawOutput {
            code: None,
            ..Default::default()
        };
        let err = classify_failure(&out, &subject());
        assert!(err.to_string().contains("killed by a signal"), "{err}");
    }

    #[test]
    fn two_documents_error_second() {
        let out = failed("[]\n{\"errors\":[{\"detail\":\"boom\"}]}\n", "", 1);
        assert_eq!(error_detail(&out).as_deref(), Some("boom"));
    }
}
