//! [`Session`]: commands that keep the working directory and exported variables of the
//! previous one.

use std::sync::Arc;
use std::time::Duration;

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
            turn: Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}

/// Commands that share a working directory and exported environment, one after another.
///
/// Each call starts where the previous one ended (`cd` and `export` carry over). The state is
/// kept in a small folder in the sandbox's temp directory; [`Session::close`] removes it.
///
/// Calls take turns: concurrent calls on one session (and its clones) run one at a time, in
/// the order they were made, and a stream holds the turn until it ends. A request's own `cwd`
/// and `env` apply to that request only.
#[derive(Debug, Clone)]
pub struct Session {
    sandbox: Sandbox,
    id: String,
    turn: Arc<tokio::sync::Mutex<()>>,
}

/// How long [`Session::close`] may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

impl Session {
    /// Runs a shell command in the session.
    ///
    /// # Errors
    ///
    /// As [`Sandbox::exec_with`].
    pub async fn exec(&self, command: &str) -> Result<ExecOutput> {
        self.exec_with(ExecRequest::shell(command)).await
    }

    /// Runs a request in the session. Its own `cwd` and `env` apply on top of the session's,
    /// for this request only: afterwards the session's directory and the variables it named
    /// are as before.
    ///
    /// # Errors
    ///
    /// As [`Sandbox::exec_with`].
    pub async fn exec_with(&self, request: ExecRequest) -> Result<ExecOutput> {
        let _turn = self.turn.lock().await;
        self.sandbox.run_collect(request, Some(&self.id)).await
    }

    /// Streams a request run in the session.
    ///
    /// # Errors
    ///
    /// As [`Sandbox::exec_stream`].
    pub async fn exec_stream(&self, request: ExecRequest) -> Result<ExecStream> {
        let turn = Arc::clone(&self.turn).lock_owned().await;
        self.sandbox
            .run_stream(request, Some(&self.id), Some(turn))
            .await
    }

    /// Removes the session's state from the sandbox.
    ///
    /// # Errors
    ///
    /// As [`Sandbox::exec`].
    pub async fn close(self) -> Result<()> {
        let _turn = self.turn.lock().await;
        let dir = script::session_dir(&self.id);
        self.sandbox
            .exec_with(ExecRequest::shell(format!("rm -rf {dir}")).timeout(CLOSE_TIMEOUT))
            .await?
            .exit_ok()?;
        Ok(())
    }
}
