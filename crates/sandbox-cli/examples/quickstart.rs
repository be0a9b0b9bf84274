//! The SDK's main job on the local provider: create a python sandbox, run code in it (whole
//! output, then streamed), and delete it, even when something fails.
//!
//! ```sh
//! cargo run -p sandbox-cli --example quickstart
//! ```
//!
//! Sandboxes live in `SANDBOX_LOCAL_DIR` (default `~/.local/share/do-app-sandbox/local`).

use std::sync::Arc;
use std::time::Duration;

use appspec::ImageKind;
use sandbox_core::{ExecEvent, ExecRequest, Sandbox, with_sandbox};
use sandbox_local::LocalPlatform;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let platform = Arc::new(LocalPlatform::from_env()?);
    let builder = Sandbox::builder()
        .image(ImageKind::Python)
        .env("GREETING", "hello")
        .platform(platform);

    // `with_sandbox` deletes the sandbox when the closure ends, whatever happens in it.
    let answer = with_sandbox(builder, |sandbox| async move {
        println!("created {} ({})", sandbox.name(), sandbox.id());

        let out = sandbox.exec("python3 -c 'print(6*7)'").await?;
        println!("python says {}", out.stdout_text().trim());

        // argv without a shell, an environment variable, stdin, and a deadline.
        let out = sandbox
            .exec_with(
                ExecRequest::argv(["sh", "-c", "printf '%s, ' \"$GREETING\"; cat; exit 3"])
                    .stdin(b"world\n".to_vec())
                    .timeout(Duration::from_secs(10)),
            )
            .await?;
        println!(
            "status {}, stdout {:?}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );

        // Output as it is produced.
        let mut stream = sandbox
            .exec_stream(ExecRequest::shell(
                "for i in 1 2 3; do echo line $i; sleep 0.2; done; echo done >&2",
            ))
            .await?;
        while let Some(event) = stream.next_event().await {
            match event? {
                ExecEvent::Stdout(chunk) => print!("stdout: {}", String::from_utf8_lossy(&chunk)),
                ExecEvent::Stderr(chunk) => print!("stderr: {}", String::from_utf8_lossy(&chunk)),
                ExecEvent::Exit(status) => println!("exited with {status}"),
            }
        }

        // A session keeps `cd` and `export` from one command to the next.
        let session = sandbox.session();
        session
            .exec("mkdir -p work && cd work && export STEP=two")
            .await?;
        let out = session.exec("echo \"$PWD $STEP\"").await?;
        println!("session: {}", out.stdout_text().trim());
        session.close().await?;

        Ok(out.status)
    })
    .await?;
    println!("sandbox deleted (last status: {answer})");
    Ok(())
}
