//! Drive App Platform through doctl from the command line.
//!
//! ```text
//! cargo run -p doctl-driver --example doctl -- list
//! cargo run -p doctl-driver --example doctl -- get <app-id>
//! cargo run -p doctl-driver --example doctl -- create <spec.json>
//! cargo run -p doctl-driver --example doctl -- wait <app-id>
//! cargo run -p doctl-driver --example doctl -- console <app-id> <component> '<command>'
//! cargo run -p doctl-driver --example doctl -- logs <app-id> <component>
//! cargo run -p doctl-driver --example doctl -- delete <app-id>
//! ```
//!
//! doctl comes from `$DOCTL` or `PATH`, the token from `$DIGITALOCEAN_TOKEN`; set
//! `DOCTL_API_URL` to point doctl at an emulator.

use std::time::Duration;

use doctl_driver::{ConsoleTarget, Doctl, DoctlConfig, LogsRequest, Platform};
use futures::StreamExt;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut config = DoctlConfig::new();
    if let Ok(url) = std::env::var("DOCTL_API_URL") {
        config = config.with_api_url(url);
    }
    let doctl = Doctl::new(config);
    let arg = |i: usize| args.get(i).map(String::as_str).ok_or("missing argument");
    match arg(0)? {
        "list" => {
            for app in doctl.list_apps().await? {
                println!("{}\t{}\t{}", app.id, app.name(), app.status());
            }
        }
        "get" => {
            let app = doctl.get_app(arg(1)?).await?;
            println!(
                "{}\t{}\t{}\t{:?}",
                app.id,
                app.name(),
                app.status(),
                app.live_url
            );
        }
        "create" => {
            let spec = serde_json::from_str(&std::fs::read_to_string(arg(1)?)?)?;
            let app = doctl.create_app(&spec).await?;
            println!("{}\t{}\t{}", app.id, app.name(), app.status());
        }
        "wait" => loop {
            let app = doctl.get_app(arg(1)?).await?;
            let status = app.status();
            println!("{status}");
            if status.is_active() || status.is_failed() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        },
        "console" => {
            let console = doctl
                .open_console(&ConsoleTarget::new(arg(1)?, arg(2)?))
                .await?;
            console
                .send(format!("{}\rexit\r", arg(3)?).as_bytes())
                .await?;
            loop {
                match tokio::time::timeout(Duration::from_secs(30), console.recv()).await? {
                    Ok(Some(chunk)) => print!("{}", String::from_utf8_lossy(&chunk)),
                    Ok(None) => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        "logs" => {
            let mut lines = doctl.logs(&LogsRequest::new(arg(1)?, arg(2)?)).await?;
            while let Some(line) = lines.next().await {
                println!("{}", line?);
            }
        }
        "delete" => doctl.delete_app(arg(1)?).await?,
        other => return Err(format!("unknown command `{other}`").into()),
    }
    Ok(())
}
