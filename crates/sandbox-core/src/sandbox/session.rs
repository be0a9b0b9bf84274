//! [`Session`]: commands that keep the working directory and exported variables of the
//! previous one.

use super::Sandbox;
use crate::error::Result;
use crate::exec::{ExecOutput, ExecRequest, ExecStream};
use crate::script;

impl Sandbox {
    /// A session: commands run through it keep the working directory and exported variables
    /// of the previous one.
    #[must_use]
    pub fn session(&self) -> Session {
        Session {
            sandbox: self.clone(),
            id: uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

/// Commands that share a working directory and exported environment, one after another.
///
/// Each call starts where the previous one ended (`cd` and `export` carry over). The state is
/// kept in a small folder in the sandbox's temp directory; [`Session::close`] removes it.
#[derive(Debug, Clone)]
pub struct Session {
    sandbox: Sandbox,
    id: String,
}

impl Session {
    /// Runs a shell command in the session.
    ///
    /// # Errors
    ///
    /// As [`Sandbox::exec_with`].
    pub async fn exec(&self, command: &str) -> Result<ExecOutput> {
        self.sandbox
            .run_collect(ExecRequest::shell(command), Some(&self.id))
            .await
    }

    /// Runs a request in the session (its own `cwd` and `env` apply on top of the session's).
    ///
    /// # Errors
    ///
    /// As [`Sandbox::exec_with`].
    pub async fn exec_with(&self, request: ExecRequest) -> Result<ExecOutput> {
        self.sandbox.run_collect(request, Some(&self.id)).await
    }

    /// Streams a request run in the session.
    ///
    /// # Errors
    ///
    /// As [`Sandbox::exec_stream`].
    pub async fn exec_stream(&self, request: ExecRequest) -> Result<ExecStream> {
        self.sandbox.run_stream(request, Some(&self.id)).await
    }

    /// Removes the session's state from the sandbox.
    ///
    /// # Errors
    ///
    /// As [`Sandbox::exec`].
    pub async fn close(self) -> Result<()> {
        let dir = script::session_dir(&self.id);
        self.sandbox
            .exec(&format!("rm -rf {dir}"))
            .await?
            .exit_ok()?;
        Ok(())
    }
}
