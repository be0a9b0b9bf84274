//! Background processes on the local provider: launch a web server in a service sandbox,
//! list processes, read the server's log, fetch a page from inside, stop it.
//!
//! ```sh
//! cargo run -p sandbox-cli --example processes
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use appspec::{ComponentType, ImageKind};
use sandbox_core::{LaunchRequest, Sandbox, Signal};
use sandbox_local::LocalPlatform;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let platform = Arc::new(LocalPlatform::from_env()?);
    let sandbox = Sandbox::builder()
        .image(ImageKind::Python)
        .component_type(ComponentType::Worker)
        .platform(platform)
        .create()
        .await?;
    let result = demo(&sandbox).await;
    sandbox.delete().await?;
    result
}

async fn demo(sandbox: &Sandbox) -> anyhow::Result<()> {
    sandbox
        .exec("mkdir -p site && echo '<h1>hello from the sandbox</h1>' > site/index.html")
        .await?
        .exit_ok()?;
    let server = sandbox
        .launch(LaunchRequest::new("python3 -m http.server 8123").cwd("site"))
        .await?;
    println!("server pid {} logs to {}", server.pid(), server.log_path());

    // Wait (with a deadline) until the server answers.
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        let out = sandbox
            .exec("python3 -c \"import urllib.request as u; print(u.urlopen('http://127.0.0.1:8123/').read().decode())\"")
            .await?;
        if out.success() {
            break out.stdout_text();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the server did not start: {}",
            out.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("page: {}", page.trim());

    for process in sandbox.processes(Some("http.server")).await? {
        println!("ps: {} {} {}", process.pid, process.state, process.command);
    }
    let log = server.log(Some(5)).await?;
    println!("server log:\n{}", String::from_utf8_lossy(&log));

    server.kill(Signal::Term).await?;
    let status = server.wait(Duration::from_secs(10)).await?;
    println!("server ended: {status:?}");
    Ok(())
}
