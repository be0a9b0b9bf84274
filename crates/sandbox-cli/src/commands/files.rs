//! `files read|write|ls|upload|download|rm|mkdir`, byte-exact over the sandbox's exec channel.
//!
//! Every operation is one command run without a shell's quoting problems: paths travel as
//! arguments (`sh -c '...' sh PATH`) and file bytes as the command's stdin or stdout, which the
//! exec protocol carries exactly.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sandbox_core::{ExecOutput, ExecRequest, Sandbox};
use serde::Serialize;

use super::Ctx;
use crate::args::{FilesCommand, PositionalTarget};
use crate::error::{CliError, Exit};
use crate::printer::table;

/// Splits `[NAME] ARGS...` by whether `--id` was given: returns the name and the rest, which
/// must be between `min` and `max` long.
pub(crate) fn split_target(
    target: &PositionalTarget,
    args: &[String],
    min: usize,
    max: usize,
    usage: &str,
) -> Result<(Option<String>, Vec<String>)> {
    let (name, rest) = if target.id.is_some() {
        (None, args.to_vec())
    } else {
        match args.split_first() {
            Some((name, rest)) => (Some(name.clone()), rest.to_vec()),
            None => (None, Vec::new()),
        }
    };
    if target.id.is_none() && name.is_none() {
        return Err(CliError::Usage(format!("give a sandbox name or `--id`: {usage}")).into());
    }
    if rest.len() < min || rest.len() > max {
        return Err(CliError::Usage(format!("wrong number of arguments: {usage}")).into());
    }
    Ok((name, rest))
}

async fn attach(ctx: &Ctx, target: &PositionalTarget, name: Option<&str>) -> Result<Sandbox> {
    ctx.provider
        .attach(name, target.id.as_deref(), target.component.as_deref())
        .await
}

/// Runs `script` with `args` as `$1...`, and `stdin`.
async fn run(
    sandbox: &Sandbox,
    script: &str,
    args: &[&str],
    stdin: Option<Vec<u8>>,
) -> Result<ExecOutput> {
    let mut argv = vec!["sh", "-c", script, "sh"];
    argv.extend_from_slice(args);
    let mut request = ExecRequest::argv(argv);
    if let Some(input) = stdin {
        request = request.stdin(input);
    }
    sandbox
        .exec_with(request)
        .await
        .with_context(|| format!("cannot reach sandbox `{}`", sandbox.name()))
}

/// Turns a failed file command into an error naming the path (not found gets its own kind).
fn check(output: ExecOutput, sandbox: &Sandbox, path: &str, doing: &str) -> Result<ExecOutput> {
    if output.success() {
        return Ok(output);
    }
    let stderr = output.stderr_text();
    let stderr = stderr.trim();
    if stderr.contains("No such file or directory") {
        return Err(CliError::NotFound {
            what: format!("`{path}` in sandbox `{}`", sandbox.name()),
            candidates: Vec::new(),
            note: None,
        }
        .into());
    }
    anyhow::bail!(
        "cannot {doing} `{path}` in sandbox `{}` ({}): {stderr}",
        sandbox.name(),
        output.status
    )
}

/// One entry of `files ls --json`.
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct Entry {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub size: u64,
    pub mode: String,
    pub modified: i64,
}

/// Parses the lines `stat -c '%F\t%s\t%A\t%Y\t%n'` prints.
pub(crate) fn parse_entries(text: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(5, '\t');
            let kind = parts.next()?;
            let size = parts.next()?.parse().ok()?;
            let mode = parts.next()?.to_owned();
            let modified = parts.next()?.parse().ok()?;
            let name = parts.next()?.to_owned();
            let kind = match kind {
                "directory" => "dir",
                "symbolic link" => "symlink",
                "regular file" | "regular empty file" => "file",
                _ => "other",
            };
            Some(Entry {
                name,
                kind: kind.to_owned(),
                size,
                mode,
                modified,
            })
        })
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}

const LS_SCRIPT: &str = r#"[ -e "$1" ] || { printf '%s: No such file or directory\n' "$1" >&2; exit 1; }
cd -- "$1" || exit 1
for f in * .[!.]* ..?*; do
  [ -e "$f" ] || [ -L "$f" ] || continue
  stat -c '%F	%s	%A	%Y	%n' -- "$f"
done"#;

pub(crate) async fn files(ctx: &Ctx, command: FilesCommand) -> Result<Exit> {
    match command {
        FilesCommand::Read(args) => {
            let usage = "sandbox files read <NAME|--id ID> <PATH>";
            let (name, rest) = split_target(&args.target, &args.args, 1, 1, usage)?;
            let sandbox = attach(ctx, &args.target, name.as_deref()).await?;
            let path = &rest[0];
            let output = run(&sandbox, r#"cat -- "$1""#, &[path], None).await?;
            let output = check(output, &sandbox, path, "read")?;
            ctx.printer
                .data_bytes(&output.stdout)
                .context("cannot write to standard output")?;
        }
        FilesCommand::Write(args) => {
            let usage = "sandbox files write <NAME|--id ID> <PATH>";
            let (name, rest) = split_target(&args.target, &args.args, 1, 1, usage)?;
            let content = match (&args.content, &args.from) {
                (Some(text), _) => text.clone().into_bytes(),
                (None, Some(file)) => read_local(file)?,
                (None, None) => super::exec::read_stdin().await?,
            };
            let sandbox = attach(ctx, &args.target, name.as_deref()).await?;
            write(ctx, &sandbox, &rest[0], content).await?;
        }
        FilesCommand::Upload(args) => {
            let usage = "sandbox files upload <NAME|--id ID> <LOCAL> <REMOTE>";
            let (name, rest) = split_target(&args.target, &args.args, 2, 2, usage)?;
            let content = read_local(Path::new(&rest[0]))?;
            let sandbox = attach(ctx, &args.target, name.as_deref()).await?;
            write(ctx, &sandbox, &rest[1], content).await?;
        }
        FilesCommand::Download(args) => {
            let usage = "sandbox files download <NAME|--id ID> <REMOTE> <LOCAL>";
            let (name, rest) = split_target(&args.target, &args.args, 2, 2, usage)?;
            let sandbox = attach(ctx, &args.target, name.as_deref()).await?;
            let remote = &rest[0];
            let output = run(&sandbox, r#"cat -- "$1""#, &[remote], None).await?;
            let output = check(output, &sandbox, remote, "read")?;
            let mut local = PathBuf::from(&rest[1]);
            if local.is_dir() {
                let base = Path::new(remote)
                    .file_name()
                    .map_or_else(|| "download".into(), |n| n.to_owned());
                local = local.join(base);
            }
            std::fs::write(&local, &output.stdout)
                .with_context(|| format!("cannot write `{}`", local.display()))?;
            ctx.printer.info(format!(
                "downloaded {} bytes to {}",
                output.stdout.len(),
                local.display()
            ));
        }
        FilesCommand::Ls(args) => {
            let usage = "sandbox files ls <NAME|--id ID> [PATH]";
            let (name, rest) = split_target(&args.target, &args.args, 0, 1, usage)?;
            let sandbox = attach(ctx, &args.target, name.as_deref()).await?;
            let path = rest.first().map_or(".", String::as_str);
            let output = run(&sandbox, LS_SCRIPT, &[path], None).await?;
            let output = check(output, &sandbox, path, "list")?;
            let entries = parse_entries(&output.stdout_text());
            if args.json {
                ctx.printer.json(&entries)?;
            } else if !entries.is_empty() {
                let rows: Vec<Vec<String>> = entries
                    .iter()
                    .map(|e| {
                        vec![
                            e.mode.clone(),
                            e.size.to_string(),
                            e.kind.clone(),
                            e.name.clone(),
                        ]
                    })
                    .collect();
                ctx.printer
                    .data(table(&["MODE", "SIZE", "TYPE", "NAME"], &rows));
            }
        }
        FilesCommand::Rm(args) => {
            let usage = "sandbox files rm <NAME|--id ID> <PATH>";
            let (name, rest) = split_target(&args.target, &args.args, 1, 1, usage)?;
            let sandbox = attach(ctx, &args.target, name.as_deref()).await?;
            let script = if args.recursive {
                r#"rm -r -- "$1""#
            } else {
                r#"rm -- "$1""#
            };
            let output = run(&sandbox, script, &[&rest[0]], None).await?;
            check(output, &sandbox, &rest[0], "remove")?;
            ctx.printer.info(format!("removed {}", rest[0]));
        }
        FilesCommand::Mkdir(args) => {
            let usage = "sandbox files mkdir <NAME|--id ID> <PATH>";
            let (name, rest) = split_target(&args.target, &args.args, 1, 1, usage)?;
            let sandbox = attach(ctx, &args.target, name.as_deref()).await?;
            let output = run(&sandbox, r#"mkdir -p -- "$1""#, &[&rest[0]], None).await?;
            check(output, &sandbox, &rest[0], "create")?;
            ctx.printer.info(format!("created {}", rest[0]));
        }
    }
    Ok(Exit::Ok)
}

fn read_local(path: &Path) -> Result<Vec<u8>> {
    if path.is_dir() {
        return Err(CliError::Usage(format!(
            "`{}` is a folder: only files can be copied (archive it with tar first)",
            path.display()
        ))
        .into());
    }
    std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))
}

async fn write(ctx: &Ctx, sandbox: &Sandbox, path: &str, content: Vec<u8>) -> Result<()> {
    let len = content.len();
    let script = r#"case "$1" in */*) mkdir -p -- "${1%/*}" || exit 1;; esac; cat > "$1""#;
    let output = run(sandbox, script, &[path], Some(content)).await?;
    check(output, sandbox, path, "write")?;
    ctx.printer.info(format!("wrote {len} bytes to {path}"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_into_entries() {
        let text = "directory\t4096\tdrwxr-xr-x\t1700000000\tsrc\n\
                    regular file\t12\t-rw-r--r--\t1700000001\tname with\ttab\n\
                    regular empty file\t0\t-rw-r--r--\t1700000002\t.hidden\n\
                    garbage\n";
        let entries = parse_entries(text);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].name, ".hidden");
        assert_eq!(entries[0].kind, "file");
        assert_eq!(entries[1].name, "name with\ttab");
        assert_eq!(entries[1].size, 12);
        assert_eq!(entries[2].kind, "dir");
    }

    #[test]
    fn positional_targets_shift_with_id() {
        let by_name = PositionalTarget {
            id: None,
            component: None,
        };
        let args = vec!["demo".to_owned(), "/tmp/x".to_owned()];
        let (name, rest) = split_target(&by_name, &args, 1, 1, "u").unwrap();
        assert_eq!(name.as_deref(), Some("demo"));
        assert_eq!(rest, ["/tmp/x"]);
        let by_id = PositionalTarget {
            id: Some("abc".into()),
            component: None,
        };
        assert!(split_target(&by_id, &args, 1, 1, "u").is_err());
        let (name, rest) = split_target(&by_id, &args[1..], 1, 1, "u").unwrap();
        assert_eq!(name, None);
        assert_eq!(rest, ["/tmp/x"]);
        assert!(split_target(&by_name, &args[..1], 1, 1, "u").is_err());
    }
}
