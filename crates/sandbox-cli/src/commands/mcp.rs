//! `sandbox mcp`: the SDK's sandboxes as MCP tools, served by `sandbox-mcp` on stdin and
//! stdout (nothing but the protocol goes to stdout; notes go to stderr), or over streamable
//! HTTP with `--http`.

use anyhow::{Context, Result};
use sandbox_core::Provider;

use crate::args::McpArgs;
use crate::error::{CliError, Exit};
use crate::printer::Printer;

pub(crate) async fn mcp(provider: Provider, args: McpArgs, printer: Printer) -> Result<Exit> {
    let mut config = sandbox_mcp::Config::default();
    config.ttl = args.ttl;
    config.keep = args.keep;
    config.max_sandboxes = args.max_sandboxes;
    config.allow_any = args.allow_any;
    config.host_files = args.allow_host_files;
    config.exec_timeout = args.exec_timeout;
    // The CLI's snapshot store, as `sandbox snapshot` uses it; without one, the snapshot
    // tools say why.
    config.snapshots = match super::snapshot::snapshots() {
        Ok(snapshots) => Some(snapshots),
        Err(e) => {
            printer.warn(format!("snapshot tools are off: {e:#}"));
            None
        }
    };
    let label = provider.label().to_owned();
    let limits = format!(
        "provider: {label}, at most {} sandboxes, ttl {} s{}",
        config.max_sandboxes,
        config.ttl.as_secs(),
        if config.keep {
            ", kept at exit"
        } else {
            ", deleted at exit"
        }
    );
    let cleanup = match args.http {
        None => {
            printer.info(format!("sandbox mcp: serving MCP on stdio ({limits})"));
            sandbox_mcp::serve_stdio(provider, config).await?
        }
        Some(addr) => {
            if !addr.ip().is_loopback() && !args.http_allow_remote {
                return Err(CliError::Usage(format!(
                    "`--http {addr}` is not a loopback address: add --http-allow-remote to listen there"
                ))
                .into());
            }
            let server = sandbox_mcp::SandboxServer::new(provider, config)?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            let local = listener.local_addr().context("the listener's address")?;
            printer.info(format!("sandbox mcp: serving MCP over HTTP ({limits})"));
            printer.info(format!("url: http://{local}{}", sandbox_mcp::HTTP_PATH));
            let token = match args.http_token {
                Some(token) => token,
                None => {
                    let token = sandbox_mcp::random_token();
                    printer.info(format!("token: {token}"));
                    token
                }
            };
            let mut interrupt = super::interrupt_signal()?;
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .context("cannot listen for SIGTERM")?;
            server
                .run_http(listener, token, async move {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                })
                .await?
        }
    };
    if !cleanup.deleted.is_empty() {
        printer.info(format!(
            "sandbox mcp: deleted {} sandbox(es): {}",
            cleanup.deleted.len(),
            cleanup.deleted.join(", ")
        ));
    }
    if !cleanup.kept.is_empty() {
        printer.info(format!("sandbox mcp: kept: {}", cleanup.kept.join(", ")));
    }
    for (name, why) in &cleanup.failed {
        printer.warn(format!("could not delete sandbox `{name}`: {why}"));
    }
    Ok(if cleanup.failed.is_empty() {
        Exit::Ok
    } else {
        Exit::Error
    })
}
