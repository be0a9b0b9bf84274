//! The usage block cobra prints after a usage error: the command's synopsis, aliases, flags
//! and the global flags, in cobra's aligned flag tables.

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
pub(crate) fn usage_text(sub: &str) -> String {
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
