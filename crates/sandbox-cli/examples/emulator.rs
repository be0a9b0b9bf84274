//! The DigitalOcean path without an account: start the App Platform emulator in this process
//! (over local sandboxes), then drive it through the REST API client (`DoApi`), exactly as a
//! real account would be driven.
//!
//! ```sh
//! cargo run -p sandbox-cli --example emulator
//! ```

use std::sync::Arc;
use std::time::Duration;

use appplatform_emulator::Emulator;
use doctl_driver::{DoApi, DoApiConfig, Platform, Token};
use sandbox_core::Sandbox;
use sandbox_local::LocalPlatform;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let backend = Arc::new(LocalPlatform::from_env()?);
    let emulator = Emulator::builder()
        .backend(backend)
        .pace(Duration::from_millis(500))
        .start()
        .await?;
    println!("emulator at {}", emulator.url());

    let api: Arc<dyn Platform> = Arc::new(DoApi::new(
        DoApiConfig::new()
            .with_base_url(emulator.url())
            .with_token(Token::new(emulator.token())),
    )?);
    let sandbox = Sandbox::builder().platform(api.clone()).create().await?;
    println!("created {} through the API", sandbox.name());

    let out = sandbox
        .exec("python3 -c 'import sys; print(sys.version)'")
        .await?;
    println!("python {}", out.stdout_text().trim());
    for app in Sandbox::list(api.as_ref()).await? {
        println!("listed: {} {} {}", app.name, app.id, app.status);
    }
    sandbox.delete().await?;
    emulator.shutdown();
    Ok(())
}
