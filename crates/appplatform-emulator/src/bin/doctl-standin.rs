//! `doctl-standin`: the subset of doctl that the `Doctl` driver uses, byte for byte.
//!
//! `doctl [global flags] apps create|get|list|delete|list-deployments|get-deployment|
//! list-instances|logs|console …`, talking to an App Platform API (the emulator, usually) with
//! doctl's requests, output, error messages, retries and exit codes. Global flags:
//! `-t/--access-token` (or `DIGITALOCEAN_ACCESS_TOKEN`), `-u/--api-url` (or
//! `DIGITALOCEAN_API_URL`), `--context`, `-c/--config`, `--http-retry-max`, `-o/--output`.
//!
//! Differences from doctl: usage texts of commands other than `apps get` are shorter; the
//! poll interval of `apps create --wait` (10 s in doctl) can be shortened with
//! `DOCTL_STANDIN_POLL_MS` for tests; where doctl hangs for ever (a console whose WebSocket
//! dial fails) the stand-in hangs for `DOCTL_STANDIN_HANG_SECS` (default 300), then exits 1.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use appplatform_emulator::godo::{self, encode_compact, encode_indented, reencode, strict_decode};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

const USER_AGENT: &str = "doctl/0.0.0-standin (linux amd64) godo/1.202.0";

/// How a command failed.
enum Failure {
    /// `Error: <msg>` (or the JSON error document), exit 1.
    Error(String),
    /// A usage error: message on stdout and stderr, exit 255.
    Usage(String),
}

type CmdResult = Result<(), Failure>;

fn err<T>(msg: impl Into<String>) -> Result<T, Failure> {
    Err(Failure::Error(msg.into()))
}

#[derive(Default)]
struct Args {
    positional: Vec<String>,
    flags: HashMap<String, String>,
}

impl Args {
    fn flag(&self, name: &str) -> Option<&str> {
        self.flags.get(name).map(String::as_str)
    }

    fn has(&self, name: &str) -> bool {
        self.flags.get(name).is_some_and(|v| v != "false")
    }
}

const VALUE_FLAGS: &[&str] = &[
    "access-token",
    "api-url",
    "context",
    "config",
    "http-retry-max",
    "http-retry-wait-max",
    "http-retry-wait-min",
    "output",
    "spec",
    "type",
    "tail",
    "deployment",
    "project-id",
    "format",
    "instance-name",
];
const BOOL_FLAGS: &[&str] = &[
    "wait",
    "upsert",
    "update-sources",
    "force",
    "follow",
    "no-prefix",
    "no-header",
    "interactive",
    "trace",
    "verbose",
    "help",
    "with-projects",
];

/// The word after `apps` (skipping flags and their values): the subcommand.
fn subcommand(argv: &[String]) -> String {
    let mut words = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        i += 1;
        if let Some(long) = arg.strip_prefix("--") {
            if !long.contains('=') && VALUE_FLAGS.contains(&long) {
                i += 1;
            }
        } else if arg.len() == 2 && arg.starts_with('-') {
            if ["-t", "-u", "-o", "-c"].contains(&arg.as_str()) {
                i += 1;
            }
        } else if !arg.starts_with('-') {
            words.push(arg.clone());
        }
    }
    words.get(1).cloned().unwrap_or_default()
}

/// One flag of a usage text: shorthand, name, value type, description.
type FlagRow<'a> = (&'a str, &'a str, &'a str, &'a str);

/// Cobra's flag table: `  -s, --name type   description`, descriptions aligned.
fn flag_table(flags: &[FlagRow<'_>]) -> String {
    let lefts: Vec<String> = flags
        .iter()
        .map(|(short, name, kind, _)| {
            let mut left = if short.is_empty() {
                "      ".to_owned()
            } else {
                format!("  -{short}, ")
            };
            left.push_str("--");
            left.push_str(name);
            if !kind.is_empty() {
                left.push(' ');
                left.push_str(kind);
            }
            left
        })
        .collect();
    let width = lefts.iter().map(String::len).max().unwrap_or(0) + 3;
    let mut out = String::new();
    for (left, (_, _, _, desc)) in lefts.iter().zip(flags) {
        out.push_str(&format!("{left:<width$}{desc}\n"));
    }
    out
}

/// The usage block cobra prints after a usage error (verbatim for `apps get`; the other
/// commands' flag descriptions are shorter than doctl's).
fn usage_text(sub: &str) -> String {
    let (usage, aliases, flags): (&str, &str, Vec<FlagRow<'_>>) = match sub {
        "create" | "c" => (
            "create [flags]",
            "create, c",
            vec![
                (
                    "",
                    "project-id",
                    "string",
                    "The ID of the project to assign the created app to",
                ),
                (
                    "",
                    "spec",
                    "path",
                    "Path to an app spec in JSON or YAML format. Set to \"-\" to read from stdin.",
                ),
                (
                    "",
                    "update-sources",
                    "",
                    "With --upsert, update the sources of an existing app",
                ),
                ("", "upsert", "", "Update the app if it already exists"),
                ("", "wait", "", "Wait for the app's deployment to finish"),
            ],
        ),
        "list" | "ls" => (
            "list [flags]",
            "list, ls",
            vec![("", "with-projects", "", "List apps with their project ids")],
        ),
        "delete" | "d" | "rm" => (
            "delete <app id> [flags]",
            "delete, d, rm",
            vec![(
                "f",
                "force",
                "",
                "Delete the app without a confirmation prompt",
            )],
        ),
        "list-deployments" | "lsd" => (
            "list-deployments <app id> [flags]",
            "list-deployments, lsd",
            vec![],
        ),
        "get-deployment" | "gd" => (
            "get-deployment <app id> <deployment id> [flags]",
            "get-deployment, gd",
            vec![],
        ),
        "list-instances" => ("list-instances <app id> [flags]", "list-instances", vec![]),
        "logs" | "l" => (
            "logs <app name or id> <component name (defaults to all components)> [flags]",
            "logs, l",
            vec![
                ("", "deployment", "string", "The deployment ID"),
                ("f", "follow", "", "Stream logs as they are emitted"),
                (
                    "",
                    "no-prefix",
                    "",
                    "Omit the component name and timestamp from each line",
                ),
                (
                    "",
                    "tail",
                    "int",
                    "The number of lines to show from the end of the logs (default -1)",
                ),
                (
                    "",
                    "type",
                    "string",
                    "The type of logs: build, deploy, run or run_restarted (default \"run\")",
                ),
            ],
        ),
        "console" | "cs" => (
            "console <app id> <component name> [flags]",
            "console, cs",
            vec![("", "deployment", "string", "The deployment ID")],
        ),
        _ => (
            "get <app id> [flags]",
            "get, g",
            vec![(
                "",
                "format",
                "ID",
                "Columns for output in a comma-separated list. Possible values: ID, `Spec.Name`, `DefaultIngress`, `ActiveDeployment.ID`, `InProgressDeployment.ID`, `Created`, `Updated`.",
            )],
        ),
    };
    let name = aliases.split(',').next().unwrap_or(sub);
    let mut flags = flags;
    let help = format!("help for {name}");
    flags.push(("h", "help", "", &help));
    if matches!(
        name,
        "get" | "list" | "list-deployments" | "get-deployment" | "list-instances"
    ) {
        flags.push(("", "no-header", "", "Return raw data with no headers"));
    }
    flags.sort_by_key(|f| f.1);
    let home = std::env::var("HOME").unwrap_or_default();
    let config =
        format!("Specify a custom config file (default \"{home}/.config/doctl/config.yaml\")");
    let globals = flag_table(&[
        ("t", "access-token", "string", "API V2 access token"),
        ("u", "api-url", "string", "Override default API endpoint"),
        ("c", "config", "string", &config),
        (
            "",
            "context",
            "string",
            "Specify a custom authentication context name",
        ),
        (
            "",
            "http-retry-max",
            "int",
            "Set maximum number of retries for requests that fail with a 429 or 500-level error (default 5)",
        ),
        (
            "",
            "interactive",
            "",
            "Enable interactive behavior. Defaults to true if the terminal supports it (default false)",
        ),
        (
            "o",
            "output",
            "string",
            "Desired output format [text|json] (default \"text\")",
        ),
        (
            "",
            "trace",
            "",
            "Show a log of network activity while performing a command",
        ),
        ("v", "verbose", "", "Enable verbose output"),
    ]);
    format!(
        "Usage:\n  doctl apps {usage}\n\nAliases:\n  {aliases}\n\nFlags:\n{}\nGlobal Flags:\n{globals}\n",
        flag_table(&flags)
    )
}

fn parse_args(argv: &[String]) -> Result<Args, Failure> {
    let mut args = Args::default();
    let mut i = 0;
    // `-f` means --force for delete and --follow for logs.
    let sub = subcommand(argv);
    while i < argv.len() {
        let arg = &argv[i];
        i += 1;
        if arg == "--" {
            args.positional.extend(argv[i..].iter().cloned());
            break;
        }
        let (name, inline) = if let Some(long) = arg.strip_prefix("--") {
            match long.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (long.to_owned(), None),
            }
        } else if arg.len() > 1 && arg.starts_with('-') {
            let short = &arg[1..2];
            let rest = &arg[2..];
            let long = match short {
                "t" => "access-token",
                "u" => "api-url",
                "o" => "output",
                "c" => "config",
                "v" => "verbose",
                "h" => "help",
                "f" if sub == "logs" || sub == "l" => "follow",
                "f" => "force",
                _ => {
                    return Err(Failure::Usage(format!(
                        "unknown shorthand flag: '{short}' in {arg}"
                    )));
                }
            };
            (
                long.to_owned(),
                if rest.is_empty() {
                    None
                } else {
                    Some(rest.trim_start_matches('=').to_owned())
                },
            )
        } else {
            args.positional.push(arg.clone());
            continue;
        };
        if VALUE_FLAGS.contains(&name.as_str()) {
            let value = match inline {
                Some(v) => v,
                None => {
                    if i >= argv.len() {
                        return Err(Failure::Usage(format!("flag needs an argument: --{name}")));
                    }
                    i += 1;
                    argv[i - 1].clone()
                }
            };
            args.flags.insert(name, value);
        } else if BOOL_FLAGS.contains(&name.as_str()) {
            args.flags
                .insert(name, inline.unwrap_or_else(|| "true".to_owned()));
        } else {
            return Err(Failure::Usage(format!("unknown flag: --{name}")));
        }
    }
    Ok(args)
}

struct Ctx {
    args: Args,
    json: bool,
    client: Client,
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let json_errors_env = std::env::var("DIGITALOCEAN_OUTPUT").is_ok_and(|v| v == "json");
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(failure) => return report(failure, json_errors_env),
    };
    let json_out = args.flag("output") == Some("json");
    let json_errors = json_out || (args.flag("output").is_none() && json_errors_env);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(Failure::Error(format!("cannot start: {e}")), json_errors),
    };
    let result = runtime.block_on(run(args, json_out));
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(failure, json_errors),
    };
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

fn report(failure: Failure, json_errors: bool) -> ExitCode {
    match failure {
        Failure::Error(msg) => {
            if json_errors {
                let doc = json!({"errors": [{"detail": msg}]});
                println!("{}", encode_compact(&doc));
            } else {
                let label =
                    if std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
                        "\x1b[31mError\x1b[0m"
                    } else {
                        "Error"
                    };
                eprintln!("{label}: {msg}");
            }
            ExitCode::from(1)
        }
        Failure::Usage(msg) => {
            println!("{msg}");
            let argv: Vec<String> = std::env::args().skip(1).collect();
            eprint!("Error: {msg}\n{}", usage_text(&subcommand(&argv)));
            ExitCode::from(255)
        }
    }
}

async fn run(args: Args, json_out: bool) -> CmdResult {
    let pos = args.positional.clone();
    if pos.first().map(String::as_str) != Some("apps") {
        return Err(Failure::Usage(format!(
            "unknown command {:?} for \"doctl\" (this stand-in implements `doctl apps …` only)",
            pos.first().cloned().unwrap_or_default()
        )));
    }
    let sub = pos.get(1).cloned().unwrap_or_default();
    let rest: Vec<String> = pos.iter().skip(2).cloned().collect();
    let canonical = match sub.as_str() {
        "create" | "c" => "create",
        "get" | "g" => "get",
        "list" | "ls" => "list",
        "delete" | "d" | "rm" => "delete",
        "list-deployments" | "lsd" => "list-deployments",
        "get-deployment" | "gd" => "get-deployment",
        "list-instances" => "list-instances",
        "logs" | "l" => "logs",
        "console" | "cs" => "console",
        other => {
            return Err(Failure::Usage(format!(
                "unknown command \"{other}\" for \"doctl apps\""
            )));
        }
    };
    let need = |n: usize| -> CmdResult {
        if rest.len() < n {
            return err(format!(
                "(apps.{canonical}) command is missing required arguments"
            ));
        }
        Ok(())
    };
    // Local checks that come before the token is needed.
    match canonical {
        "get" | "delete" | "list-deployments" | "list-instances" | "logs" => need(1)?,
        "get-deployment" | "console" => need(2)?,
        "create" if args.flag("spec").is_none() => {
            return err("(apps.create.spec) command is missing required arguments");
        }
        _ => {}
    }
    if canonical == "delete" && !args.has("force") {
        eprintln!(
            "Warning: Requires confirmation. Use the `--force` flag to continue without confirmation."
        );
        return err("Operation aborted.");
    }
    let spec = if canonical == "create" {
        Some(read_spec(args.flag("spec").unwrap_or("-"))?)
    } else {
        None
    };
    let client = Client::from_args(&args)?;
    let ctx = Ctx {
        args,
        json: json_out,
        client,
    };
    match canonical {
        "create" => create(&ctx, spec.unwrap_or(Value::Null)).await,
        "get" => {
            let app = ctx
                .client
                .call("GET", &format!("/v2/apps/{}", rest[0]), None)
                .await?;
            display_apps(&ctx, &[app["app"].clone()])
        }
        "list" => {
            let apps = ctx.client.list_all("/v2/apps", "apps").await?;
            display_apps(&ctx, &apps)
        }
        "delete" => {
            ctx.client
                .call("DELETE", &format!("/v2/apps/{}", rest[0]), None)
                .await?;
            eprintln!("Notice: App deleted");
            Ok(())
        }
        "list-deployments" => {
            let deps = ctx
                .client
                .list_all(&format!("/v2/apps/{}/deployments", rest[0]), "deployments")
                .await?;
            display_deployments(&ctx, &deps)
        }
        "get-deployment" => {
            let dep = ctx
                .client
                .call(
                    "GET",
                    &format!("/v2/apps/{}/deployments/{}", rest[0], rest[1]),
                    None,
                )
                .await?;
            display_deployments(&ctx, &[dep["deployment"].clone()])
        }
        "list-instances" => {
            let answer = ctx
                .client
                .call("GET", &format!("/v2/apps/{}/instances", rest[0]), None)
                .await?;
            display_instances(&ctx, answer.get("instances"))
        }
        "logs" => logs(&ctx, &rest).await,
        "console" => console(&ctx, &rest).await,
        _ => err("unreachable command"),
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP: godo's requests, errors and retries.

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    retry_max: u32,
    wait_min: u64,
    wait_max: u64,
}

fn config_file(args: &Args) -> Option<Value> {
    let path = args
        .flag("config")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("DIGITALOCEAN_CONFIG").map(Into::into))
        .or_else(|| {
            std::env::var_os("XDG_CONFIG_HOME")
                .map(|x| std::path::PathBuf::from(x).join("doctl/config.yaml"))
                .or_else(|| {
                    std::env::var_os("HOME")
                        .map(|h| std::path::PathBuf::from(h).join(".config/doctl/config.yaml"))
                })
        })?;
    let text = std::fs::read_to_string(path).ok()?;
    serde_yaml::from_str(&text).ok()
}

impl Client {
    fn from_args(args: &Args) -> Result<Client, Failure> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let config = config_file(args);
        let context = args
            .flag("context")
            .map(str::to_owned)
            .or_else(|| env("DIGITALOCEAN_CONTEXT"));
        let token = match context.as_deref() {
            Some(ctx) if ctx != "default" => config
                .as_ref()
                .and_then(|c| c.get("auth-contexts"))
                .and_then(|m| m.get(ctx))
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => args
                .flag("access-token")
                .map(str::to_owned)
                .or_else(|| env("DIGITALOCEAN_ACCESS_TOKEN"))
                .or_else(|| {
                    config
                        .as_ref()
                        .and_then(|c| c.get("access-token"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                }),
        };
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return err(
                "Unable to initialize DigitalOcean API client: access token is required. (hint: run 'doctl auth init')",
            );
        };
        let api_url = args
            .flag("api-url")
            .map(str::to_owned)
            .or_else(|| env("DIGITALOCEAN_API_URL"))
            .unwrap_or_else(|| "https://api.digitalocean.com/".to_owned());
        let parsed = url::Url::parse(&api_url)
            .map_err(|e| Failure::Error(format!("parse \"{api_url}\": {e}")))?;
        let base = format!(
            "{}://{}{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or_default(),
            parsed.port().map(|p| format!(":{p}")).unwrap_or_default()
        );
        let num = |flag: &str, env_key: &str, default: u64| -> u64 {
            args.flag(flag)
                .map(str::to_owned)
                .or_else(|| env(env_key))
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| Failure::Error(format!("cannot build HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            token,
            retry_max: u32::try_from(num("http-retry-max", "DIGITALOCEAN_HTTP_RETRY_MAX", 5))
                .unwrap_or(5),
            wait_min: num("http-retry-wait-min", "DIGITALOCEAN_HTTP_RETRY_WAIT_MIN", 1),
            wait_max: num(
                "http-retry-wait-max",
                "DIGITALOCEAN_HTTP_RETRY_WAIT_MAX",
                30,
            ),
        })
    }

    /// One API call with godo's retries; the parsed JSON body on 2xx.
    async fn call(&self, method: &str, path: &str, body: Option<String>) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.base);
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut attempt: u32 = 0;
        loop {
            let mut request = self
                .http
                .request(m.clone(), &url)
                .header("Accept", "application/json")
                .bearer_auth(&self.token);
            if method != "GET" {
                request = request.header("Content-Type", "application/json");
            }
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            let retries_left = attempt < self.retry_max;
            match request.send().await {
                Err(e) => {
                    if retries_left {
                        tokio::time::sleep(self.backoff(attempt, None)).await;
                        attempt += 1;
                        continue;
                    }
                    let go_method = format!("{}{}", &method[..1], method[1..].to_ascii_lowercase());
                    let cause = if e.is_connect() {
                        let host = url::Url::parse(&url)
                            .ok()
                            .map(|u| {
                                format!(
                                    "{}:{}",
                                    u.host_str().unwrap_or_default(),
                                    u.port_or_known_default().unwrap_or(0)
                                )
                            })
                            .unwrap_or_default();
                        format!("dial tcp {host}: connect: connection refused")
                    } else {
                        e.to_string()
                    };
                    return err(format!("{go_method} \"{url}\": {cause}"));
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let header_id = response
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    let text = response.text().await.unwrap_or_default();
                    if (200..300).contains(&status) {
                        return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
                    }
                    let retryable = status == 429 || (status >= 500 && status != 501);
                    if retryable && retries_left {
                        let hint = if status == 429 || status == 503 {
                            retry_after
                        } else {
                            None
                        };
                        tokio::time::sleep(self.backoff(attempt, hint)).await;
                        attempt += 1;
                        continue;
                    }
                    let parsed: Option<Value> =
                        serde_json::from_str(&text).ok().filter(Value::is_object);
                    let (message, body_id) = match &parsed {
                        Some(v) => (
                            v.get("message")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_owned(),
                            v.get("request_id")
                                .and_then(Value::as_str)
                                .filter(|s| !s.is_empty())
                                .map(str::to_owned),
                        ),
                        None => (text.clone(), None),
                    };
                    let id = body_id.or(header_id.filter(|s| !s.is_empty()));
                    let mut msg = match id {
                        Some(id) => {
                            format!("{method} {url}: {status} (request \"{id}\") {message}")
                        }
                        None => format!("{method} {url}: {status} {message}"),
                    };
                    if retryable && self.retry_max > 0 {
                        msg.push_str(&format!("; giving up after {} attempt(s)", attempt + 1));
                    }
                    return err(msg);
                }
            }
        }
    }

    fn backoff(&self, attempt: u32, retry_after: Option<u64>) -> Duration {
        if let Some(secs) = retry_after {
            return Duration::from_secs(secs);
        }
        let secs = self
            .wait_min
            .saturating_mul(1u64 << attempt.min(20))
            .min(self.wait_max);
        Duration::from_secs(secs)
    }

    /// Every page of a list, as doctl gets them (later pages' errors are dropped).
    async fn list_all(&self, path: &str, key: &str) -> Result<Vec<Value>, Failure> {
        let first = self
            .call("GET", &format!("{path}?page=1&per_page=200"), None)
            .await?;
        let mut items: Vec<Value> = first
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let last = first
            .pointer("/links/pages/last")
            .and_then(Value::as_str)
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "page")
                    .and_then(|(_, v)| v.parse::<u32>().ok())
            })
            .unwrap_or(1);
        for page in 2..=last {
            if let Ok(more) = self
                .call("GET", &format!("{path}?page={page}&per_page=200"), None)
                .await
            {
                items.extend(
                    more.get(key)
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                );
            }
        }
        Ok(items)
    }
}

// ---------------------------------------------------------------------------------------------
// Output.

fn display_json(items: &[Value], schema: &'static godo::Struct) {
    let list: Vec<Value> = items.iter().map(|v| reencode(v, schema)).collect();
    print!("{}", encode_indented(&Value::Array(list)));
}

fn go_display_time(value: Option<&Value>) -> String {
    use time::format_description::well_known::Rfc3339;
    let text = value.and_then(Value::as_str).unwrap_or(godo::ZERO_TIME);
    let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) else {
        return "0001-01-01 00:00:00 +0000 UTC".to_owned();
    };
    let t = t.to_offset(time::UtcOffset::UTC);
    let frac = godo::go_fraction(t.nanosecond());
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}{frac} +0000 UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Go's `text/tabwriter` with padding 4: every cell but the last of a row padded. `columns`
/// are (`--format` key, header); `--format` picks and orders them, `--no-header` drops the
/// header line.
fn table(ctx: &Ctx, columns: &[(&str, &str)], rows: Vec<Vec<String>>) {
    let picked: Vec<usize> = match ctx.args.flag("format") {
        Some(format) => format
            .split(',')
            .filter_map(|key| {
                columns
                    .iter()
                    .position(|(k, _)| k.eq_ignore_ascii_case(key.trim()))
            })
            .collect(),
        None => (0..columns.len()).collect(),
    };
    let mut all: Vec<Vec<String>> = Vec::new();
    if !ctx.args.has("no-header") {
        all.push(picked.iter().map(|&i| columns[i].1.to_owned()).collect());
    }
    all.extend(rows.into_iter().map(|row| {
        picked
            .iter()
            .map(|&i| row.get(i).cloned().unwrap_or_default())
            .collect()
    }));
    let cols = picked.len();
    let mut widths = vec![0usize; cols];
    for row in &all {
        for (i, cell) in row.iter().enumerate().take(cols.saturating_sub(1)) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &all {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < cols {
                out.push_str(&format!("{cell:<width$}", width = widths[i] + 4));
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    print!("{out}");
}

fn s(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

fn display_apps(ctx: &Ctx, apps: &[Value]) -> CmdResult {
    if ctx.json {
        display_json(apps, &godo::APP);
        return Ok(());
    }
    let rows = apps
        .iter()
        .map(|a| {
            vec![
                s(a, "/id"),
                s(a, "/spec/name"),
                s(a, "/default_ingress"),
                s(a, "/active_deployment/id"),
                s(a, "/in_progress_deployment/id"),
                go_display_time(a.get("created_at")),
                go_display_time(a.get("updated_at")),
            ]
        })
        .collect();
    table(
        ctx,
        &[
            ("ID", "ID"),
            ("Spec.Name", "Spec Name"),
            ("DefaultIngress", "Default Ingress"),
            ("ActiveDeployment.ID", "Active Deployment ID"),
            ("InProgressDeployment.ID", "In Progress Deployment ID"),
            ("Created", "Created At"),
            ("Updated", "Updated At"),
        ],
        rows,
    );
    Ok(())
}

fn display_deployments(ctx: &Ctx, deps: &[Value]) -> CmdResult {
    if ctx.json {
        display_json(deps, &godo::DEPLOYMENT);
        return Ok(());
    }
    let n = |d: &Value, k: &str| {
        d.pointer(&format!("/progress/{k}"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let rows = deps
        .iter()
        .map(|d| {
            let mut progress = format!("{}/{}", n(d, "success_steps"), n(d, "total_steps"));
            if n(d, "error_steps") > 0 {
                progress.push_str(&format!(" (errors: {})", n(d, "error_steps")));
            }
            vec![
                s(d, "/id"),
                s(d, "/cause"),
                progress,
                s(d, "/phase"),
                go_display_time(d.get("created_at")),
                go_display_time(d.get("updated_at")),
            ]
        })
        .collect();
    table(
        ctx,
        &[
            ("ID", "ID"),
            ("Cause", "Cause"),
            ("Progress", "Progress"),
            ("Phase", "Phase"),
            ("Created", "Created At"),
            ("Updated", "Updated At"),
        ],
        rows,
    );
    Ok(())
}

fn display_instances(ctx: &Ctx, instances: Option<&Value>) -> CmdResult {
    let list = instances.and_then(Value::as_array);
    if ctx.json {
        match list {
            Some(items) => display_json(items, &godo::INSTANCE),
            None => println!("null"),
        }
        return Ok(());
    }
    let rows = list
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    vec![
                        s(i, "/instance_name"),
                        s(i, "/component_name"),
                        s(i, "/component_type"),
                        s(i, "/instance_alias"),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(
        ctx,
        &[
            ("Name", "Name"),
            ("ComponentName", "ComponentName"),
            ("ComponentType", "ComponentType"),
            ("InstanceAlias", "InstanceAlias"),
        ],
        rows,
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// apps create.

fn read_spec(path: &str) -> Result<Value, Failure> {
    let text = if path == "-" {
        let mut buf = String::new();
        std::io::stdin()
            .read_to_string(&mut buf)
            .map_err(|e| Failure::Error(format!("reading app spec from standard input: {e}")))?;
        buf
    } else {
        match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return err(format!("opening app spec: {path} does not exist"));
            }
            Err(e) => return err(format!("opening app spec: {e}")),
        }
    };
    let value: Value = serde_yaml::from_str(&text)
        .map_err(|e| Failure::Error(format!("parsing app spec: {e}")))?;
    strict_decode(&value, &godo::APP_SPEC)
        .map_err(|e| Failure::Error(format!("parsing app spec: {e}")))?;
    Ok(reencode(&value, &godo::APP_SPEC))
}

async fn create(ctx: &Ctx, spec: Value) -> CmdResult {
    let mut body = serde_json::Map::new();
    body.insert("spec".into(), spec.clone());
    if let Some(project) = ctx.args.flag("project-id") {
        body.insert("project_id".into(), json!(project));
    }
    let body = format!("{}\n", encode_compact(&Value::Object(body)));
    let app = match ctx.client.call("POST", "/v2/apps", Some(body)).await {
        Ok(answer) => answer["app"].clone(),
        Err(Failure::Error(msg)) if ctx.args.has("upsert") && msg.contains(": 409 ") => {
            eprintln!("Notice: App already exists, updating");
            let name = spec
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let apps = ctx.client.list_all("/v2/apps", "apps").await?;
            let Some(existing) = apps.iter().find(|a| s(a, "/spec/name") == name) else {
                return err("app not found");
            };
            let update =
                json!({"spec": spec, "update_all_source_versions": ctx.args.has("update-sources")});
            let answer = ctx
                .client
                .call(
                    "PUT",
                    &format!("/v2/apps/{}", s(existing, "/id")),
                    Some(format!("{}\n", encode_compact(&update))),
                )
                .await?;
            answer["app"].clone()
        }
        Err(other) => return Err(other),
    };
    let mut app = app;
    if ctx.args.has("wait") {
        eprintln!("Notice: App creation is in progress, waiting for app to be running");
        let app_id = s(&app, "/id");
        let dep_id = s(&app, "/pending_deployment/id");
        if let Err(e) = wait_for_deployment(ctx, &app_id, &dep_id).await {
            display_apps(ctx, std::slice::from_ref(&app))?;
            let msg = match e {
                Failure::Error(m) => m,
                other => return Err(other),
            };
            return err(format!(
                "1 error occurred:\n\t* app deployment couldn't enter `running` state: {msg}\n\n"
            ));
        }
        if let Ok(fresh) = ctx
            .client
            .call("GET", &format!("/v2/apps/{app_id}"), None)
            .await
        {
            app = fresh["app"].clone();
        }
    }
    eprintln!("Notice: App created");
    display_apps(ctx, &[app])
}

async fn wait_for_deployment(ctx: &Ctx, app_id: &str, dep_id: &str) -> CmdResult {
    let interval = std::env::var("DOCTL_STANDIN_POLL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis);
    let mut dotted = false;
    let result = async {
        for attempt in 0..180 {
            if attempt != 0 {
                eprint!(".");
                dotted = true;
            }
            let answer = ctx
                .client
                .call(
                    "GET",
                    &format!("/v2/apps/{app_id}/deployments/{dep_id}"),
                    None,
                )
                .await?;
            let progress = answer
                .pointer("/deployment/progress")
                .cloned()
                .unwrap_or(Value::Null);
            let n = |k: &str| progress.get(k).and_then(Value::as_i64).unwrap_or(0);
            if n("success_steps") == n("total_steps") {
                return Ok(());
            }
            if n("error_steps") > 0 {
                return err(format!(
                    "error deploying app ({app_id}) (deployment ID: {dep_id}):\n{}",
                    stringify_progress(&progress)
                ));
            }
            tokio::time::sleep(interval).await;
        }
        err(format!("timeout waiting to app ({app_id}) deployment"))
    }
    .await;
    if dotted {
        eprintln!();
    }
    result
}

/// `godo.Stringify(progress)`.
fn stringify_progress(p: &Value) -> String {
    let n = |k: &str| p.get(k).and_then(Value::as_i64).unwrap_or(0);
    let mut out = format!(
        "godo.DeploymentProgress{{PendingSteps:{}, RunningSteps:{}, SuccessSteps:{}, ErrorSteps:{}, TotalSteps:{}",
        n("pending_steps"),
        n("running_steps"),
        n("success_steps"),
        n("error_steps"),
        n("total_steps")
    );
    for (key, name) in [("steps", "Steps"), ("summary_steps", "SummarySteps")] {
        if let Some(Value::Array(steps)) = p.get(key) {
            out.push_str(&format!(
                ", {name}:[{}]",
                steps
                    .iter()
                    .map(stringify_step)
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
    }
    out.push('}');
    out
}

fn stringify_step(step: &Value) -> String {
    let q = |k: &str| format!("{:?}", step.get(k).and_then(Value::as_str).unwrap_or(""));
    let mut out = format!(
        "godo.DeploymentProgressStep{{Name:{}, Status:{}",
        q("name"),
        q("status")
    );
    if let Some(Value::Array(steps)) = step.get("steps") {
        out.push_str(&format!(
            ", Steps:[{}]",
            steps
                .iter()
                .map(stringify_step)
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    out.push_str(", StartedAt:time.Time{wall:, ext:}, EndedAt:time.Time{wall:, ext:}");
    if let Some(reason) = step.get("reason").filter(|r| r.is_object()) {
        let rq = |k: &str| format!("{:?}", reason.get(k).and_then(Value::as_str).unwrap_or(""));
        out.push_str(&format!(
            ", Reason:godo.DeploymentProgressStepReason{{Code:{}, Message:{}}}",
            rq("code"),
            rq("message")
        ));
    }
    out.push_str(&format!(
        ", ComponentName:{}, MessageBase:{}}}",
        q("component_name"),
        q("message_base")
    ));
    out
}

// ---------------------------------------------------------------------------------------------
// apps logs.

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

async fn logs(ctx: &Ctx, rest: &[String]) -> CmdResult {
    let app_arg = &rest[0];
    let component = rest.get(1).cloned();
    let kind = ctx.args.flag("type").unwrap_or("run").to_ascii_uppercase();
    if !["BUILD", "DEPLOY", "RUN", "RUN_RESTARTED", "AUTOSCALE_EVENT"].contains(&kind.as_str()) {
        return err(format!(
            "Invalid log type {}",
            ctx.args.flag("type").unwrap_or_default()
        ));
    }
    let mut app_id = app_arg.clone();
    let mut dep_id = ctx.args.flag("deployment").unwrap_or("").to_owned();
    if !is_uuid(app_arg) || dep_id.is_empty() {
        let app = if is_uuid(app_arg) {
            ctx.client
                .call("GET", &format!("/v2/apps/{app_arg}"), None)
                .await?["app"]
                .clone()
        } else {
            let apps = ctx.client.list_all("/v2/apps", "apps").await?;
            match apps.into_iter().find(|a| s(a, "/spec/name") == *app_arg) {
                Some(a) => a,
                None => return err(format!("Cannot find app {app_arg}")),
            }
        };
        app_id = s(&app, "/id");
        if dep_id.is_empty() {
            dep_id = [
                s(&app, "/active_deployment/id"),
                s(&app, "/in_progress_deployment/id"),
            ]
            .into_iter()
            .find(|d| !d.is_empty())
            .unwrap_or_default();
            if dep_id.is_empty() {
                return err(format!(
                    "unable to retrieve logs; no deployment found for app {app_id}"
                ));
            }
        }
    }
    let follow = ctx.args.has("follow");
    let tail = ctx.args.flag("tail").unwrap_or("-1");
    let mut path = format!(
        "/v2/apps/{app_id}/deployments/{dep_id}/logs?type={kind}&follow={follow}&tail_lines={tail}"
    );
    if let Some(c) = &component {
        path.push_str(&format!("&component_name={c}"));
    }
    let answer = ctx.client.call("GET", &path, None).await?;
    let live = answer.get("live_url").and_then(Value::as_str).unwrap_or("");
    let no_prefix = ctx.args.has("no-prefix");
    let emit = |text: &str| {
        let mut out = std::io::stdout().lock();
        if no_prefix {
            for line in text.split_inclusive('\n') {
                let stripped = line.splitn(3, ' ').nth(2).unwrap_or(line);
                let _ = out.write_all(stripped.as_bytes());
            }
        } else {
            let _ = out.write_all(text.as_bytes());
        }
        let _ = out.flush();
    };
    if !live.is_empty() {
        let mut url =
            url::Url::parse(live).map_err(|e| Failure::Error(format!("parse \"{live}\": {e}")))?;
        let scheme = if url.scheme() == "http" { "ws" } else { "wss" };
        let _ = url.set_scheme(scheme);
        let (mut socket, _) =
            tokio_tungstenite::connect_async_with_config(url.as_str(), None, true)
                .await
                .map_err(|e| Failure::Error(format!("error connecting to websocket: {e}")))?;
        while let Some(msg) = socket.next().await {
            match msg {
                Ok(Message::Text(t)) => emit(&frame_data(t.as_bytes())?),
                Ok(Message::Binary(b)) => emit(&frame_data(&b)?),
                Ok(Message::Close(frame)) => {
                    let code = frame.as_ref().map_or(1005, |f| u16::from(f.code));
                    let _ = socket.close(None).await;
                    if code == 1000 {
                        return Ok(());
                    }
                    return err(format!(
                        "error reading from websocket: {}",
                        close_text(code, frame.map(|f| f.reason.to_string()))
                    ));
                }
                Ok(_) => {}
                Err(_) => {
                    return err(
                        "error reading from websocket: websocket: close 1006 (abnormal closure): unexpected EOF",
                    );
                }
            }
        }
        return Ok(());
    }
    if let Some(first) = answer
        .get("historic_urls")
        .and_then(Value::as_array)
        .and_then(|u| u.first())
        .and_then(Value::as_str)
    {
        let text = reqwest::get(first)
            .await
            .map_err(|e| Failure::Error(format!("Get \"{first}\": {e}")))?
            .text()
            .await
            .unwrap_or_default();
        for line in text.lines() {
            emit(&format!("{line}\n"));
        }
        return Ok(());
    }
    eprintln!("Warning: No logs found for app component");
    Ok(())
}

/// The `data` of a server frame; a frame that is not JSON is an error, as in doctl.
fn frame_data(payload: &[u8]) -> Result<String, Failure> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(v) => Ok(v
            .get("data")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()),
        Err(_) => err(go_json_error(payload)),
    }
}

/// Go's `encoding/json` message for text that is not JSON (the common cases).
fn go_json_error(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    let trimmed = text.trim_start();
    for literal in ["true", "false", "null"] {
        if trimmed.starts_with(&literal[..1]) {
            for (i, expected) in literal.chars().enumerate().skip(1) {
                match trimmed.chars().nth(i) {
                    Some(c) if c == expected => {}
                    Some(c) => {
                        return format!(
                            "invalid character '{c}' in literal {literal} (expecting '{expected}')"
                        );
                    }
                    None => return "unexpected end of JSON input".to_owned(),
                }
            }
        }
    }
    match trimmed.chars().next() {
        Some(c) => format!("invalid character '{c}' looking for beginning of value"),
        None => "unexpected end of JSON input".to_owned(),
    }
}

/// gorilla/websocket's text for a close code.
fn close_text(code: u16, reason: Option<String>) -> String {
    let name = match code {
        1000 => " (normal)",
        1001 => " (going away)",
        1002 => " (protocol error)",
        1003 => " (unsupported data)",
        1005 => " (no status)",
        1006 => " (abnormal closure)",
        1007 => " (invalid payload data)",
        1008 => " (policy violation)",
        1009 => " (message too big)",
        1010 => " (mandatory extension missing)",
        1011 => " (internal server error)",
        1015 => " (TLS handshake error)",
        _ => "",
    };
    let mut out = format!("websocket: close {code}{name}");
    if let Some(r) = reason.filter(|r| !r.is_empty()) {
        out.push_str(": ");
        out.push_str(&r);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// apps console.

async fn console(ctx: &Ctx, rest: &[String]) -> CmdResult {
    let (app_id, component) = (&rest[0], &rest[1]);
    let mut path = match ctx.args.flag("deployment").filter(|d| !d.is_empty()) {
        Some(dep) => format!("/v2/apps/{app_id}/deployments/{dep}/components/{component}/exec"),
        None => format!("/v2/apps/{app_id}/components/{component}/exec"),
    };
    if let Some(instance) = rest.get(2).filter(|i| !i.is_empty()) {
        path.push_str(&format!("?instance_name={instance}"));
    }
    let answer = ctx.client.call("GET", &path, None).await?;
    let exec_url = answer
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let stdin = std::io::stdin();
    let raw = terminal::RawMode::enter(&stdin)
        .map_err(|e| Failure::Error(format!("error setting terminal to raw mode: {e}")))?;
    // SIGWINCH is ignored by default: until a handler is installed, a resize is lost. Listen
    // before the dial and before the first size is read, so that a resize at any moment after
    // this point reaches the server (a change during the dial is sent right after the first
    // size, a repeat of the same size at worst).
    let winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        .map_err(|e| Failure::Error(format!("error watching terminal resizes: {e}")))?;
    let result = console_session(&exec_url, winch).await;
    drop(raw);
    result
}

async fn console_session(exec_url: &str, mut winch: tokio::signal::unix::Signal) -> CmdResult {
    let url = match url::Url::parse(exec_url) {
        Ok(u) if u.scheme() == "ws" || u.scheme() == "wss" => u,
        _ => return err("malformed ws or wss URL"),
    };
    // TCP_NODELAY, as Go sets on every TCP connection: a keystroke's frame leaves at once.
    let socket = match tokio_tungstenite::connect_async_with_config(url.as_str(), None, true).await
    {
        Ok((socket, _)) => socket,
        Err(e) => {
            // doctl blocks forever here: its input goroutine waits on a channel nobody reads.
            // The stand-in blocks too, silently, but gives up after DOCTL_STANDIN_HANG_SECS
            // (default 300) so a caller that forgot its deadline leaks no process for ever.
            let secs = std::env::var("DOCTL_STANDIN_HANG_SECS")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(300);
            tokio::time::sleep(Duration::from_secs(secs)).await;
            return err(format!(
                "error dialing websocket: {e} (doctl would hang here; the stand-in gave up after {secs}s)"
            ));
        }
    };
    let (mut sink, mut stream) = socket.split();
    let (input_tx, mut input_rx) = tokio::sync::mpsc::channel::<Input>(64);
    // Resize first, with the terminal's size, then on every SIGWINCH.
    let (cols, rows) = terminal::size();
    let _ = input_tx
        .send(Input::Frame(
            json!({"op": "resize", "width": cols, "height": rows}).to_string(),
        ))
        .await;
    let resize_tx = input_tx.clone();
    tokio::spawn(async move {
        while winch.recv().await.is_some() {
            let (cols, rows) = terminal::size();
            if resize_tx
                .send(Input::Frame(
                    json!({"op": "resize", "width": cols, "height": rows}).to_string(),
                ))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    // Input is read in chunks; each byte still travels in a frame of its own (see `Input`).
    let stdin_tx = input_tx.clone();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; STDIN_CHUNK];
        loop {
            match stdin.read(&mut buf) {
                Ok(n) if n > 0 => {
                    if stdin_tx
                        .blocking_send(Input::Bytes(buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
                // doctl keeps polling a closed stdin; the session only ends from the server.
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    });
    let keepalive_tx = input_tx.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(30));
        ticker.tick().await;
        loop {
            ticker.tick().await;
            if keepalive_tx
                .send(Input::Frame("{\"op\":\"stdin\",\"data\":\"\"}".to_owned()))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    drop(input_tx);
    let frames = stdin_frames();
    let mut input_open = true;
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            input = input_rx.recv(), if input_open => {
                let Some(input) = input else {
                    input_open = false;
                    continue;
                };
                // This input and whatever else is already waiting: frames written into the
                // socket's buffer, then one flush.
                let mut next = Some(input);
                let mut bytes = 0;
                while let Some(input) = next.take() {
                    let fed = match input {
                        Input::Frame(frame) => sink.feed(Message::Text(frame.into())).await,
                        Input::Bytes(data) => {
                            bytes += data.len();
                            let mut fed = Ok(());
                            for byte in data {
                                fed = sink.feed(Message::Text(frames[usize::from(byte)].clone())).await;
                                if fed.is_err() {
                                    break;
                                }
                            }
                            fed
                        }
                    };
                    if let Err(e) = fed {
                        return err(format!("error writing to websocket: {e}"));
                    }
                    if bytes < STDIN_CHUNK {
                        next = input_rx.try_recv().ok();
                    }
                }
                if let Err(e) = sink.flush().await {
                    return err(format!("error writing to websocket: {e}"));
                }
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let data = frame_data(t.as_bytes())?;
                    let _ = stdout.write_all(data.as_bytes());
                    let _ = stdout.flush();
                }
                Some(Ok(Message::Binary(b))) => {
                    let data = frame_data(&b)?;
                    let _ = stdout.write_all(data.as_bytes());
                    let _ = stdout.flush();
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.as_ref().map_or(1005, |f| u16::from(f.code));
                    let reason = frame.as_ref().map(|f| f.reason.to_string());
                    let _ = sink
                        .send(Message::Close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                            code: CloseCode::from(code),
                            reason: "".into(),
                        })))
                        .await;
                    if code == 1000 {
                        return Ok(());
                    }
                    return err(format!("error reading from websocket: {}", close_text(code, reason)));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    return err("error reading from websocket: websocket: close 1006 (abnormal closure): unexpected EOF");
                }
            },
        }
    }
}

/// How much terminal input is read at a time.
const STDIN_CHUNK: usize = 64 * 1024;

/// What goes to the console WebSocket.
enum Input {
    /// A frame as it is (resize, keepalive).
    Frame(String),
    /// Bytes typed: doctl reads its input one byte at a time and sends one
    /// `{"op":"stdin","data":…}` frame per byte, so each of these bytes becomes a frame.
    Bytes(Vec<u8>),
}

/// The stdin frame doctl sends for each byte value: the byte as a one-character JSON string
/// in Go's encoding (`<` is `\u003c`), a byte of 0x80 and above as U+FFFD (doctl turns each
/// byte into a rune on its own).
fn stdin_frames() -> Vec<Utf8Bytes> {
    (0..=u8::MAX)
        .map(|byte| {
            let data = if byte < 0x80 {
                char::from(byte).to_string()
            } else {
                "\u{fffd}".to_owned()
            };
            Utf8Bytes::from(format!(
                "{{\"op\":\"stdin\",\"data\":{}}}",
                encode_compact(&json!(data))
            ))
        })
        .collect()
}

mod terminal {
    //! Raw mode and window size of the terminal on stdin.

    use std::io::Stdin;

    use rustix::termios::{self, Termios};

    /// Restores the terminal's settings when dropped.
    pub(super) struct RawMode {
        saved: Termios,
    }

    impl RawMode {
        pub(super) fn enter(stdin: &Stdin) -> Result<RawMode, String> {
            let saved = termios::tcgetattr(stdin)
                .map_err(|_| "inappropriate ioctl for device".to_owned())?;
            let mut raw = saved.clone();
            raw.make_raw();
            termios::tcsetattr(stdin, termios::OptionalActions::Now, &raw)
                .map_err(|e| e.to_string())?;
            Ok(RawMode { saved })
        }
    }

    impl Drop for RawMode {
        fn drop(&mut self) {
            let _ =
                termios::tcsetattr(std::io::stdin(), termios::OptionalActions::Now, &self.saved);
        }
    }

    /// (columns, rows) of the terminal on stdin; (0, 0) when unknown.
    pub(super) fn size() -> (u16, u16) {
        termios::tcgetwinsize(std::io::stdin()).map_or((0, 0), |w| (w.ws_col, w.ws_row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_read_like_go() {
        assert_eq!(
            go_json_error(b"this is not json"),
            "invalid character 'h' in literal true (expecting 'r')"
        );
        assert_eq!(
            go_json_error(b"<html>"),
            "invalid character '<' looking for beginning of value"
        );
        assert_eq!(go_json_error(b""), "unexpected end of JSON input");
    }

    #[test]
    fn stdin_frames_are_doctls_one_byte_frames() {
        let frames = stdin_frames();
        assert_eq!(frames.len(), 256);
        let frame = |b: u8| frames[usize::from(b)].as_str().to_owned();
        // The payloads recorded from doctl (apps-console-pty-special-input, …-24x80-close-1000).
        assert_eq!(frame(b'e'), r#"{"op":"stdin","data":"e"}"#);
        assert_eq!(frame(b'\r'), r#"{"op":"stdin","data":"\r"}"#);
        assert_eq!(frame(b'\t'), r#"{"op":"stdin","data":"\t"}"#);
        assert_eq!(frame(b'<'), r#"{"op":"stdin","data":"\u003c"}"#);
        assert_eq!(frame(b'&'), r#"{"op":"stdin","data":"\u0026"}"#);
        assert_eq!(frame(b'>'), r#"{"op":"stdin","data":"\u003e"}"#);
        assert_eq!(frame(0x03), r#"{"op":"stdin","data":"\u0003"}"#);
        assert_eq!(frame(0x1b), r#"{"op":"stdin","data":"\u001b"}"#);
        assert_eq!(frame(0x7f), "{\"op\":\"stdin\",\"data\":\"\u{7f}\"}");
        assert_eq!(frame(0xc3), "{\"op\":\"stdin\",\"data\":\"\u{fffd}\"}");
        assert_eq!(frame(0xa9), "{\"op\":\"stdin\",\"data\":\"\u{fffd}\"}");
    }

    #[test]
    fn close_texts_read_like_gorilla() {
        assert_eq!(
            close_text(1011, None),
            "websocket: close 1011 (internal server error)"
        );
        assert_eq!(
            close_text(1003, Some("bad frame".into())),
            "websocket: close 1003 (unsupported data): bad frame"
        );
        assert_eq!(close_text(4000, None), "websocket: close 4000");
    }

    #[test]
    fn subcommand_skips_flag_values() {
        let argv: Vec<String> = ["-t", "tok", "apps", "-u", "http://x", "logs", "id", "-f"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(subcommand(&argv), "logs");
        let args = parse_args(&argv).ok().unwrap_or_default();
        assert!(args.has("follow") && !args.has("force"));
    }

    #[test]
    fn stringify_matches_godo() {
        let step = json!({"name": "deploy", "status": "ERROR", "reason": {"code": "C", "message": "m \"q\""}, "component_name": "w"});
        assert_eq!(
            stringify_step(&step),
            "godo.DeploymentProgressStep{Name:\"deploy\", Status:\"ERROR\", StartedAt:time.Time{wall:, ext:}, EndedAt:time.Time{wall:, ext:}, Reason:godo.DeploymentProgressStepReason{Code:\"C\", Message:\"m \\\"q\\\"\"}, ComponentName:\"w\", MessageBase:\"\"}"
        );
    }
}
