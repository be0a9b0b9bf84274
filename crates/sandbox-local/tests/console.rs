//! Consoles on local sandboxes: the prompt, the user, the file system, processes.

mod common;

use appspec::{ComponentType, ImageKind};
use common::Env;
use doctl_driver::Platform;

#[tokio::test]
async fn prompt_echo_and_exit() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Python, ComponentType::Worker).await;
    assert!(
        sandbox.app.status().is_active(),
        "{:?}",
        sandbox.app.status()
    );
    let instance = env
        .platform
        .list_instances(sandbox.id())
        .await
        .expect("instances");
    let hostname = instance[0].instance_name.clone();

    let mut term = sandbox.console().await;
    let prompt = format!("sandbox@{hostname}:~/app$ ");
    term.send("echo hi\r").await;
    let echoed = term.expect("hi\r\n").await;
    assert!(echoed.contains("echo hi"), "input is echoed: {echoed:?}");
    term.expect("hi\r\n").await;
    term.expect(&prompt).await;
    term.send("exit\r").await;
    term.expect_end().await;
}
