//! Support for the crate's doc examples: a backend with no apps that refuses to create any.

use async_trait::async_trait;
use doctl_driver::{
    App, Console, ConsoleTarget, Deployment, Error, Instance, LogStream, LogsRequest, Platform,
    Result,
};

/// A platform without apps: every lookup is "not found", creating is unsupported.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoApps;

#[async_trait]
impl Platform for NoApps {
    fn kind(&self) -> &'static str {
        "none"
    }

    async fn create_app(&self, _spec: &appspec::AppSpec) -> Result<App> {
        Err(Error::Unsupported {
            what: "creating apps".into(),
            reason: "this backend has no runtime".into(),
        })
    }

    async fn get_app(&self, app_id: &str) -> Result<App> {
        Err(Error::not_found(format!("app `{app_id}`")))
    }

    async fn list_apps(&self) -> Result<Vec<App>> {
        Ok(Vec::new())
    }

    async fn delete_app(&self, app_id: &str) -> Result<()> {
        Err(Error::not_found(format!("app `{app_id}`")))
    }

    async fn list_deployments(&self, app_id: &str) -> Result<Vec<Deployment>> {
        Err(Error::not_found(format!("app `{app_id}`")))
    }

    async fn list_instances(&self, app_id: &str) -> Result<Vec<Instance>> {
        Err(Error::not_found(format!("app `{app_id}`")))
    }

    async fn open_console(&self, target: &ConsoleTarget) -> Result<Box<dyn Console>> {
        Err(Error::not_found(format!("app `{}`", target.app_id)))
    }

    async fn logs(&self, request: &LogsRequest) -> Result<LogStream> {
        Err(Error::not_found(format!("app `{}`", request.app_id)))
    }
}
