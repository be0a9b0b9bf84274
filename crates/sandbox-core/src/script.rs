//! Turning an [`ExecRequest`] into the shell script the agent runs.

use crate::error::Result;
use crate::exec::{ExecRequest, Program};
use crate::protocol::{check_env_key, check_no_nul, quote};

/// Where a [`Session`](crate::Session) keeps its cwd and environment inside the sandbox.
pub(crate) fn session_dir(id: &str) -> String {
    format!("\"${{TMPDIR:-/tmp}}/.sandbox-session.{id}\"")
}

/// The script for a request; with `session`, it restores and then saves cwd and env there.
pub(crate) fn compose(request: &ExecRequest, session: Option<&str>) -> Result<String> {
    let mut script = String::new();
    for (key, value) in &request.env {
        check_env_key(key)?;
        check_no_nul("env", value)?;
    }
    if let Some(dir) = &request.cwd {
        check_no_nul("cwd", dir)?;
    }
    if let Some(id) = session {
        // Restore the session, then save it on exit, minus what this request alone set: the
        // variables its env names get their session values back, and with its own cwd the
        // session's directory is left as it was.
        let dir = session_dir(id);
        let mut capture = String::new();
        let mut restore = String::new();
        for (i, (key, _)) in request.env.iter().enumerate() {
            capture.push_str(&format!("_e{i}=${{{key}+1}}; _v{i}=${{{key}-}}\n"));
            restore.push_str(&format!(
                "if [ -n \"$_e{i}\" ]; then {key}=$_v{i}; else unset {key}; fi; "
            ));
        }
        let save_cwd = if request.cwd.is_none() {
            "pwd >\"$_sd/cwd\"; "
        } else {
            ""
        };
        script.push_str(&format!(
            "_sd={dir}; [ -d \"$_sd\" ] || (umask 077; mkdir -p \"$_sd\") || exit 1\n\
             [ -f \"$_sd/env\" ] && . \"$_sd/env\"\n\
             [ -f \"$_sd/cwd\" ] && {{ IFS= read -r _d <\"$_sd/cwd\" && cd -- \"$_d\"; }}\n\
             {capture}trap '_r=$?; {restore}{save_cwd}export -p >\"$_sd/env\"; exit $_r' EXIT\n"
        ));
    }
    if let Some(dir) = &request.cwd {
        script.push_str(&format!("cd -- {} || exit 1\n", quote(dir)));
    }
    for (key, value) in &request.env {
        script.push_str(&format!("export {key}={}\n", quote(value)));
    }
    match &request.program {
        Program::Shell(command) => {
            check_no_nul("command", command)?;
            script.push_str(command);
        }
        Program::Argv(argv) => {
            if argv.is_empty() {
                return Err(crate::Error::invalid("argv", "must name a program"));
            }
            // `exec` saves a process, except where the session's exit trap must still run.
            if session.is_none() {
                script.push_str("exec ");
            }
            for (i, arg) in argv.iter().enumerate() {
                check_no_nul("argv", arg)?;
                if i > 0 {
                    script.push(' ');
                }
                script.push_str(&quote(arg));
            }
        }
    }
    Ok(script)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_quoted_and_execed() {
        let req = ExecRequest::argv(["printf", "%s|", "a b", "it's", "x\ny"]).cwd("/tmp");
        let script = compose(&req, None).unwrap();
        assert_eq!(
            script,
            "cd -- '/tmp' || exit 1\nexec 'printf' '%s|' 'a b' 'it'\\''s' 'x\ny'"
        );
    }

    #[test]
    fn bad_env_key_is_rejected_and_named() {
        let err = compose(&ExecRequest::shell("true").env("A=B", "x"), None).unwrap_err();
        assert!(err.to_string().contains("A=B"), "{err}");
    }

    #[test]
    fn nul_is_rejected() {
        assert!(compose(&ExecRequest::shell("echo \0"), None).is_err());
        assert!(compose(&ExecRequest::argv(Vec::<String>::new()), None).is_err());
    }
}
