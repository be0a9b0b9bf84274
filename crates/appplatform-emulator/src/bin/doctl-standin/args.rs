//! The command line as doctl's cobra reads it: global and command flags (long, short, with
//! inline or separate values) and the positional words.

use std::collections::HashMap;

use crate::Failure;

#[derive(Default)]
pub(crate) struct Args {
    pub(crate) positional: Vec<String>,
    flags: HashMap<String, String>,
}

impl Args {
    pub(crate) fn flag(&self, name: &str) -> Option<&str> {
        self.flags.get(name).map(String::as_str)
    }

    pub(crate) fn has(&self, name: &str) -> bool {
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
pub(crate) fn subcommand(argv: &[String]) -> String {
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

pub(crate) fn parse_args(argv: &[String]) -> Result<Args, Failure> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
