//! Background processes: launch, list, signal, logs, wait.
//!
//! Launched processes are tracked inside the sandbox, under `$HOME/.sandbox/procs` (or
//! `/tmp/.sandbox/procs` when the home folder is not writable): `<pid>.cmd` holds the command,
//! `<pid>.log` its stdout and stderr, `<pid>.exit` its exit status once it ends. A later
//! [`Sandbox::connect`] therefore still knows them.
//!
//! Each launched command runs as `nohup timeout 0 sh -c <wrapper>`: `timeout` makes it the
//! leader of its own process group (so signals reach compound commands and their children)
//! without a deadline, and the wrapper records the log and the exit status (it traps SIGTERM,
//! SIGINT and SIGHUP so that it outlives the command and can record how it ended; after a
//! SIGKILL to the group nothing is recorded). The records are kept under the group leader's
//! pid. The pid reported is the program's own: the wrapper's subshell `exec`s a simple command
//! and runs anything else as `sh -c COMMAND`; `<pid>.leader` names its group leader, so `kill`,
//! the logs and `ps` all speak of the program a user started (the wrappers are not listed).
//! `launch` returns once the program's subshell is running with the wrapper's trap armed and
//! its log open, so a signal sent right after reaches the whole group; the wrapper also
//! removes a stale exit record left by an earlier process with the same pid.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::exec::{ExecRequest, ExitStatus};
use crate::protocol::{check_env_key, check_no_nul, quote};
use crate::sandbox::Sandbox;

const PROCS_DIR: &str = "R=\"${HOME:-/tmp}/.sandbox/procs\"; { [ -d \"$R\" ] || mkdir -p \"$R\"; } 2>/dev/null || { R=/tmp/.sandbox/procs; mkdir -p \"$R\" || exit 1; }\n";

/// Sets `g` to the group leader of launched pid `$1` (itself when it is not a program this
/// tool launched).
const LEADER_FN: &str = "_leader() { g=$1; [ -f \"$R/$1.leader\" ] && read -r g <\"$R/$1.leader\"; [ -n \"$g\" ] || g=$1; }\n";
const ALIVE_FN: &str = "_alive() { kill -0 \"$1\" 2>/dev/null || return 1; [ -r \"/proc/$1/stat\" ] || return 0; read -r _ _ _s _ <\"/proc/$1/stat\"; [ \"$_s\" != Z ]; }\n";

/// A signal to send to a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signal {
    /// SIGHUP (1).
    Hup,
    /// SIGINT (2).
    Int,
    /// SIGQUIT (3).
    Quit,
    /// SIGKILL (9).
    Kill,
    /// SIGUSR1 (10).
    Usr1,
    /// SIGUSR2 (12).
    Usr2,
    /// SIGTERM (15).
    Term,
    /// SIGCONT (18).
    Cont,
    /// SIGSTOP (19).
    Stop,
    /// Any signal by number.
    Other(i32),
}

impl Signal {
    /// The signal number (Linux numbering).
    #[must_use]
    pub fn number(self) -> i32 {
        match self {
            Signal::Hup => 1,
            Signal::Int => 2,
            Signal::Quit => 3,
            Signal::Kill => 9,
            Signal::Usr1 => 10,
            Signal::Usr2 => 12,
            Signal::Term => 15,
            Signal::Cont => 18,
            Signal::Stop => 19,
            Signal::Other(n) => n,
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "signal {}", self.number())
    }
}

/// A background command to launch: see [`Sandbox::launch`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct LaunchRequest {
    command: String,
    cwd: Option<String>,
    env: Vec<(String, String)>,
}

impl LaunchRequest {
    /// A shell command line (compound commands such as `cd app && npm start` work).
    pub fn new(command: impl Into<String>) -> Self {
        LaunchRequest {
            command: command.into(),
            cwd: None,
            env: Vec::new(),
        }
    }

    /// Starts it in this directory.
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Sets an environment variable for it.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// One process as `ps` reports it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProcessInfo {
    /// Process id (in the sandbox's PID space).
    pub pid: u32,
    /// CPU use in percent, when known.
    pub cpu: Option<f32>,
    /// Memory use in percent, when known.
    pub mem: Option<f32>,
    /// State as `ps` prints it (`S`, `R+`, `Ss`, ...).
    pub state: String,
    /// The command line.
    pub command: String,
}

/// A launched background process.
#[derive(Debug, Clone)]
pub struct ProcessHandle {
    sandbox: Sandbox,
    pid: u32,
    /// The leader of its process group (the `timeout` wrapper), under whose pid the records
    /// are kept.
    leader: u32,
    log_path: String,
}

impl ProcessHandle {
    /// Its pid: the program's own (for a compound command, the subshell running it).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Where its stdout and stderr go, inside the sandbox.
    #[must_use]
    pub fn log_path(&self) -> &str {
        &self.log_path
    }

    /// Its output so far, or the last `tail_lines` lines of it.
    ///
    /// # Errors
    ///
    /// As [`Sandbox::process_log`].
    pub async fn log(&self, tail_lines: Option<usize>) -> Result<Vec<u8>> {
        self.sandbox.process_log(self.pid, tail_lines).await
    }

    /// Sends a signal to its whole process group.
    ///
    /// # Errors
    ///
    /// As [`Sandbox::kill`].
    pub async fn kill(&self, signal: Signal) -> Result<()> {
        self.sandbox.kill(self.pid, signal).await
    }

    /// Whether it is still running.
    ///
    /// # Errors
    ///
    /// Exec errors.
    pub async fn is_running(&self) -> Result<bool> {
        let script = format!("{ALIVE_FN}_alive {}", self.leader);
        Ok(self.sandbox.helper(script).await?.success())
    }

    /// Waits until it ends, at most `timeout`.
    ///
    /// Returns its exit status as recorded by its wrapper, or `None` when it ended without one
    /// (its wrapper was killed too, for example by SIGKILL to the group).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when it is still running after `timeout`; exec errors.
    pub async fn wait(&self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let start = Instant::now();
        let script = format!(
            "{PROCS_DIR}{ALIVE_FN}while _alive {pid} && [ ! -f \"$R/{pid}.exit\" ]; do sleep 0.1; done\n\
             if [ -f \"$R/{pid}.exit\" ]; then cat \"$R/{pid}.exit\"; else echo none; fi",
            pid = self.leader
        );
        let request = ExecRequest::shell(script).timeout(timeout);
        let output = match self.sandbox.exec_with(request).await {
            Err(Error::Timeout { .. }) => {
                return Err(Error::timeout(
                    format!("waiting for process {}", self.pid),
                    start.elapsed().max(timeout),
                ));
            }
            other => other?.exit_ok()?,
        };
        let text = output.stdout_text();
        let text = text.trim();
        if text == "none" {
            return Ok(None);
        }
        let status: u8 = text.parse().map_err(|_| {
            Error::protocol(format!(
                "exit record of process {} is not a status: {text:?}",
                self.pid
            ))
        })?;
        Ok(Some(ExitStatus::from_shell_status(status)))
    }
}

/// What the wrapper's subshell evaluates; either way the subshell `exec`s, so the pid `launch`
/// reports is the program's. A simple command is run directly (dash, the images' `sh`, would
/// fork even for a last command); anything with shell syntax becomes `sh -c COMMAND`, which
/// `ps` shows as written.
fn run_form(command: &str) -> String {
    const SYNTAX: &[char] = &[
        ';', '&', '|', '<', '>', '(', ')', '$', '`', '\\', '\n', '\r', '{', '}', '!', '#',
    ];
    // Shell keywords and builtins that `exec` cannot run.
    const NOT_PROGRAMS: &[&str] = &[
        "if", "then", "else", "elif", "fi", "case", "esac", "for", "while", "until", "do", "done",
        "in", "function", "select", "time", "cd", "export", "unset", "set", "exit", "return", ".",
        "source", "eval", "exec", "alias", "unalias", "readonly", "shift", "trap", "wait", "umask",
        "ulimit", "break", "continue", ":", "local", "declare", "typeset", "let", "getopts",
        "read", "hash", "type", "command", "builtin", "jobs", "fg", "bg", "times", "[[",
    ];
    let Some(first) = command.split_whitespace().next() else {
        return format!("exec sh -c {}", quote(command));
    };
    if command.contains(SYNTAX) || first.contains(['=', '\'', '"']) || NOT_PROGRAMS.contains(&first)
    {
        return format!("exec sh -c {}", quote(command));
    }
    format!("exec {command}")
}

/// Deadline of the short scripts behind the process calls (listing, kill, logs, status).
pub(crate) const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

impl Sandbox {
    /// Runs one of the process calls' scripts with [`HELPER_TIMEOUT`].
    async fn helper(&self, script: impl Into<String>) -> Result<crate::ExecOutput> {
        self.exec_with(ExecRequest::shell(script).timeout(HELPER_TIMEOUT))
            .await
    }
}

impl Sandbox {
    /// Launches a background command; it keeps running after this call and after the console
    /// closes, until it ends, is killed, or the sandbox is deleted.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a bad env key; [`Error::CommandFailed`] when it cannot
    /// be started (for example a missing `cwd`); exec errors.
    pub async fn launch(&self, request: LaunchRequest) -> Result<ProcessHandle> {
        check_no_nul("command", &request.command)?;
        let mut script = String::from(PROCS_DIR);
        if let Some(dir) = &request.cwd {
            check_no_nul("cwd", dir)?;
            script.push_str(&format!("cd -- {} || exit 1\n", quote(dir)));
        }
        for (key, value) in &request.env {
            check_env_key(key)?;
            check_no_nul("env", value)?;
            script.push_str(&format!("export {key}={}\n", quote(value)));
        }
        let command = quote(&request.command);
        let run = quote(&run_form(&request.command));
        // The wrapper clears a stale exit record of a recycled pid, arms its trap, opens the
        // log, then says it is up; launch returns only then, so a kill that follows at once
        // reaches a whole, armed process group.
        let token = uuid::Uuid::new_v4().simple().to_string();
        script.push_str(&format!(
            "nohup timeout 0 sh -c 'rm -f \"$1/$PPID.exit\"; trap : TERM INT HUP; exec >\"$1/$PPID.log\" 2>&1 </dev/null; (c=; read -r c _ </proc/self/stat 2>/dev/null; echo \"$c\" >\"$1/$3.up\"; eval \"$2\"); echo $? >\"$1/$PPID.exit\"' sandbox-proc \"$R\" {run} {token} >/dev/null 2>&1 </dev/null &\n\
             p=$!\nprintf '%s\\n' {command} >\"$R/$p.cmd\"\n\
             i=0; while [ ! -s \"$R/{token}.up\" ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done\n\
             c=; read -r c <\"$R/{token}.up\" 2>/dev/null; rm -f \"$R/{token}.up\"\n\
             case $c in ''|*[!0-9]*) c=$p;; esac\n\
             if [ \"$c\" != \"$p\" ]; then echo \"$p\" >\"$R/$c.leader\"; echo \"$c\" >\"$R/$p.child\"; fi\n\
             printf '%s\\n%s\\n%s\\n' \"$c\" \"$R/$p.log\" \"$p\"\n"
        ));
        let output = self
            .exec_with(ExecRequest::shell(script).timeout(Duration::from_secs(60)))
            .await?
            .exit_ok()?;
        let text = output.stdout_text();
        let mut lines = text.lines();
        let pid = lines
            .next()
            .and_then(|l| l.trim().parse::<u32>().ok())
            .ok_or_else(|| Error::protocol(format!("launch did not report a pid: {text:?}")))?;
        let log_path = lines.next().unwrap_or_default().to_owned();
        let leader = lines
            .next()
            .and_then(|l| l.trim().parse::<u32>().ok())
            .unwrap_or(pid);
        tracing::debug!(pid, leader, "process launched");
        Ok(ProcessHandle {
            sandbox: self.clone(),
            pid,
            leader,
            log_path,
        })
    }

    /// Lists the sandbox's processes, those whose command contains `pattern` when given.
    ///
    /// Uses `ps` when the image has it, else reads `/proc` (then without %CPU and %MEM).
    /// The exec protocol's own processes are left out: every console agent (and its
    /// subshells), the helpers it runs for commands (`cat`, `mkfifo`, `dd`, `base64`, `head`, `rm`, and the
    /// `timeout` wrapper where `setsid` is missing), and this listing with its parent chain
    /// up to the agent. Commands run by `exec`, what they start, launched processes (with
    /// their wrapper, whose pid [`Sandbox::launch`] reported) and everything else in the
    /// sandbox are listed; zombies are not.
    ///
    /// # Errors
    ///
    /// Exec errors.
    pub async fn processes(&self, pattern: Option<&str>) -> Result<Vec<ProcessInfo>> {
        let output = self.helper(LIST_SCRIPT).await?.exit_ok()?;
        let text = output.stdout_text();
        let listing = parse_listing(&text)
            .ok_or_else(|| Error::protocol(format!("process listing is malformed: {text:?}")))?;
        Ok(listing
            .user_processes()
            .into_iter()
            .filter(|p| pattern.is_none_or(|pat| p.command.contains(pat)))
            .collect())
    }

    /// Sends a signal to a process: to its whole process group when this tool launched it.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when no such process exists; exec errors.
    pub async fn kill(&self, pid: u32, signal: Signal) -> Result<()> {
        let sig = signal.number();
        let script = format!(
            "{PROCS_DIR}{LEADER_FN}_leader {pid}; if [ -f \"$R/$g.cmd\" ]; then kill -{sig} -\"$g\" 2>/dev/null || kill -{sig} \"$g\"; else kill -{sig} {pid}; fi"
        );
        let output = self.helper(script).await?;
        if output.success() {
            return Ok(());
        }
        if output
            .stderr_text()
            .to_ascii_lowercase()
            .contains("no such process")
        {
            return Err(Error::NotFound {
                what: format!("process {pid}"),
            });
        }
        output.exit_ok().map(|_| ())
    }

    /// Ends every process this tool launched in the sandbox that is still running (SIGTERM to
    /// each group, then SIGKILL to those still alive after 3 s). Returns their pids.
    ///
    /// # Errors
    ///
    /// Exec errors.
    pub async fn kill_all(&self) -> Result<Vec<u32>> {
        let script = format!(
            "{PROCS_DIR}{ALIVE_FN}l=\nfor f in \"$R\"/*.cmd; do [ -f \"$f\" ] || continue; p=${{f##*/}}; p=${{p%.cmd}}; \
             _alive \"$p\" || continue; kill -15 -\"$p\" 2>/dev/null || kill -15 \"$p\" 2>/dev/null; l=\"$l $p\"; c=$p; [ -f \"$R/$p.child\" ] && read -r c <\"$R/$p.child\"; echo \"${{c:-$p}}\"; done\n\
             n=0; while [ $n -lt 30 ]; do a=; for p in $l; do _alive \"$p\" && a=1; done; [ -z \"$a\" ] && break; sleep 0.1; n=$((n+1)); done\n\
             for p in $l; do _alive \"$p\" && {{ kill -9 -\"$p\" 2>/dev/null || kill -9 \"$p\" 2>/dev/null; }}; done; exit 0"
        );
        let output = self
            .exec_with(ExecRequest::shell(script).timeout(HELPER_TIMEOUT))
            .await?
            .exit_ok()?;
        Ok(output
            .stdout_text()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect())
    }

    /// A launched process's log (stdout and stderr), whole or its last `tail_lines` lines.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when this tool has no log for that pid; exec errors.
    pub async fn process_log(&self, pid: u32, tail_lines: Option<usize>) -> Result<Vec<u8>> {
        let read = match tail_lines {
            Some(n) => format!("tail -n {n} \"$f\""),
            None => "cat \"$f\"".to_owned(),
        };
        let script = format!(
            "{PROCS_DIR}{LEADER_FN}_leader {pid}; f=\"$R/$g.log\"; if [ -f \"$f\" ]; then {read}; elif [ -f \"$R/$g.cmd\" ]; then :; else exit 3; fi"
        );
        let output = self.helper(script).await?;
        match output.code() {
            Some(0) => Ok(output.stdout),
            Some(3) => Err(Error::NotFound {
                what: format!("log of launched process {pid}"),
            }),
            _ => output.exit_ok().map(|o| o.stdout),
        }
    }
}

impl Sandbox {
    /// Follows a launched process's log: its output so far (or its last `tail_lines`
    /// lines), then what it writes, until the process ends. The output arrives as the
    /// stream's stdout; the stream's exit is 0, or 3 when this tool has no log for that
    /// pid. Dropping the stream stops following.
    ///
    /// Uses GNU `tail --pid` where the image has it (the sandbox images do); elsewhere
    /// `tail -f` runs until the stream is dropped.
    ///
    /// # Errors
    ///
    /// Exec errors.
    pub async fn follow_process_log(
        &self,
        pid: u32,
        tail_lines: Option<usize>,
    ) -> Result<crate::ExecStream> {
        let from = match tail_lines {
            Some(n) => format!("-n {n}"),
            None => "-c +1".to_owned(),
        };
        let script = format!(
            "{PROCS_DIR}{LEADER_FN}_leader {pid}; f=\"$R/$g.log\"\n\
             if [ ! -f \"$f\" ]; then [ -f \"$R/$g.cmd\" ] && exit 0; exit 3; fi\n\
             if tail --pid=1 -n 0 /dev/null >/dev/null 2>&1; then exec tail {from} -f --pid=\"$g\" \"$f\"; fi\n\
             exec tail {from} -f \"$f\""
        );
        self.exec_stream(ExecRequest::shell(script)).await
    }
}

/// Prints `self <pid of this script>`, `root <pid>` for each command the console agents
/// started (their `<id>.p` records), then `<pid> <ppid> <%cpu> <%mem> <state> <command>` for
/// every process, from `ps` or else from `/proc` (command lines with NULs and newlines turned
/// into spaces; `[comm]` when a process has no command line, as for a zombie).
const LIST_SCRIPT: &str = "echo \"self $$\"\n\
for f in \"${TMPDIR:-/tmp}\"/.sandbox-exec.*/*.p \"${HOME:-/}\"/.sandbox-exec.*/*.p; do \
[ -f \"$f\" ] && read -r p <\"$f\" 2>/dev/null && echo \"root $p\"; done\n\
_proc() { for d in /proc/[0-9]*; do read -r l <\"$d/stat\" 2>/dev/null || continue; \
p=${l%% *}; r=${l##*) }; set -- $r; \
c=$(tr '\\000\\n' '  ' <\"$d/cmdline\" 2>/dev/null); \
[ -n \"$c\" ] || { read -r c <\"$d/comm\" 2>/dev/null; c=\"[$c]\"; }; \
printf '%s %s - - %s %s\\n' \"$p\" \"$2\" \"$1\" \"$c\"; done; }\n\
ps -eo pid=,ppid=,pcpu=,pmem=,stat=,args= 2>/dev/null || _proc\n";

/// How a listing's shell appears in a listing.
const LIST_COMMAND: &str = "sh -c echo \"self $$\"";

/// What [`LIST_SCRIPT`] printed.
#[derive(Debug, Default)]
struct Listing {
    this: u32,
    roots: Vec<u32>,
    entries: Vec<(u32, ProcessInfo)>,
}

fn parse_listing(text: &str) -> Option<Listing> {
    let mut listing = Listing::default();
    let mut seen_self = false;
    for line in text.lines() {
        if let Some(pid) = line.strip_prefix("self ") {
            listing.this = pid.trim().parse().ok()?;
            seen_self = true;
        } else if let Some(pid) = line.strip_prefix("root ") {
            listing.roots.extend(pid.trim().parse::<u32>().ok());
        } else if let Some(entry) = parse_listing_line(line) {
            listing.entries.push(entry);
        }
    }
    seen_self.then_some(listing)
}

/// `<pid> <ppid> <rest as ps prints it>`: the parent pid and the process.
fn parse_listing_line(line: &str) -> Option<(u32, ProcessInfo)> {
    let line = line.trim_start();
    let (pid, rest) = line.split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    let (ppid, rest) = rest.split_once(char::is_whitespace)?;
    let ppid = ppid.parse().ok()?;
    let info = parse_ps_line(&format!("{pid} {rest}"))?;
    Some((ppid, info))
}

/// Whether a command line is a console agent's (or a subshell of one, which shares it):
/// `sh -c <agent script> sandbox-agent <16 hex digits>`.
fn is_agent_command(command: &str) -> bool {
    let Some((head, nonce)) = command.trim_end().rsplit_once(' ') else {
        return false;
    };
    head.ends_with(" sandbox-agent")
        && head.contains(" -c N=$1")
        && nonce.len() == 16
        && nonce.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Listing {
    /// The processes that are not the exec protocol's.
    fn user_processes(self) -> Vec<ProcessInfo> {
        use std::collections::{HashMap, HashSet};
        let parent: HashMap<u32, u32> = self
            .entries
            .iter()
            .map(|(ppid, p)| (p.pid, *ppid))
            .collect();
        let agents: HashSet<u32> = self
            .entries
            .iter()
            .filter(|(_, p)| is_agent_command(&p.command))
            .map(|(_, p)| p.pid)
            .collect();
        let roots: HashSet<u32> = self.roots.iter().copied().collect();
        // Listings: this one, and others running at the same time (other consoles).
        let listings: HashSet<u32> = self
            .entries
            .iter()
            .filter(|(_, p)| p.command.starts_with(LIST_COMMAND))
            .map(|(_, p)| p.pid)
            .chain([self.this])
            .collect();
        // This listing's own chain up to its agent (the `timeout` wrapper without setsid).
        let mut hidden: HashSet<u32> = HashSet::new();
        let mut pid = self.this;
        for _ in 0..64 {
            if pid <= 1 || agents.contains(&pid) || !hidden.insert(pid) {
                break;
            }
            match parent.get(&pid) {
                Some(&ppid) => pid = ppid,
                None => break,
            }
        }
        // Whether a process is a listing or descends from one (`ps` and friends).
        let from_listing = |mut pid: u32| {
            for _ in 0..64 {
                if listings.contains(&pid) {
                    return true;
                }
                match parent.get(&pid) {
                    Some(&ppid) if ppid > 1 && ppid != pid => pid = ppid,
                    _ => return false,
                }
            }
            false
        };
        self.entries
            .into_iter()
            .filter(|(ppid, p)| {
                if agents.contains(&p.pid) || hidden.contains(&p.pid) || from_listing(p.pid) {
                    return false;
                }
                // A zombie has ended: it waits for a parent (often an image's PID 1 that never
                // reaps) to collect its status, and nothing can be done with it.
                if p.state.starts_with('Z') {
                    return false;
                }
                // The wrapper `launch` puts around a program (the program itself has exec'd).
                if is_launch_wrapper(&p.command) {
                    return false;
                }
                if agents.contains(ppid) {
                    // A child of an agent: a command it started (kept, unless it is the
                    // `timeout` wrapper used without setsid) or one of its helpers.
                    return roots.contains(&p.pid) && !p.command.starts_with("timeout -s KILL ");
                }
                true
            })
            .map(|(_, p)| p)
            .collect()
    }
}

/// How the launch wrapper's shell appears in a listing.
const LAUNCH_WRAPPER: &str = "sh -c rm -f \"$1/$PPID.exit\"; trap : TERM INT HUP;";

/// Whether a listed command is the `timeout 0 sh -c ...` wrapper of a launched process.
fn is_launch_wrapper(command: &str) -> bool {
    let script = command.strip_prefix("timeout 0 ").unwrap_or(command);
    script.starts_with(LAUNCH_WRAPPER) && command.contains(" sandbox-proc ")
}

fn parse_ps_line(line: &str) -> Option<ProcessInfo> {
    let mut rest = line.trim_start();
    let mut fields = Vec::with_capacity(4);
    for _ in 0..4 {
        let end = rest.find(char::is_whitespace)?;
        fields.push(&rest[..end]);
        rest = rest[end..].trim_start();
    }
    let pid = fields[0].parse().ok()?;
    Some(ProcessInfo {
        pid,
        cpu: fields[1].parse().ok(),
        mem: fields[2].parse().ok(),
        state: fields[3].to_owned(),
        command: rest.trim_end().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn simple_commands_are_execd_and_shell_syntax_is_not() {
        assert_eq!(
            run_form("python app.py --port 8080"),
            "exec python app.py --port 8080"
        );
        assert_eq!(run_form("sleep 'a b'"), "exec sleep 'a b'");
        for command in [
            "cd work && exec sleep 1",
            "echo $HOME",
            "FOO=1 python app.py",
            "export A=1",
            "while true",
            "sleep 1; echo done",
            "python a.py > out.log",
            "  ",
        ] {
            assert_eq!(run_form(command), format!("exec sh -c {}", quote(command)));
        }
    }

    use super::*;

    #[test]
    fn parses_ps_lines() {
        let p = parse_ps_line("   42  0.5  1.2 Ss   python3 -m http.server  8080").unwrap();
        assert_eq!(p.pid, 42);
        assert_eq!(p.cpu, Some(0.5));
        assert_eq!(p.mem, Some(1.2));
        assert_eq!(p.state, "Ss");
        assert_eq!(p.command, "python3 -m http.server  8080");
        let p = parse_ps_line("7 - - S sleep 5").unwrap();
        assert_eq!(
            (p.cpu, p.state.as_str(), p.command.as_str()),
            (None, "S", "sleep 5")
        );
        assert!(parse_ps_line("garbage").is_none());
    }

    #[test]
    fn listing_leaves_out_the_protocol() {
        let agent = "sh -c N=$1?T=${TMPDIR:-/tmp}?_z sandbox-agent 0123456789abcdef";
        let text = format!(
            "self 40\nroot 30\nroot 50\nroot 70\n\
             1 0 0.0 0.1 Ss /usr/sbin/server --port 80\n\
             10 1 0.0 0.0 Ss {agent}\n\
             11 10 0.0 0.0 S {agent}\n\
             12 11 0.0 0.0 S dd bs=65536 count=1\n\
             13 11 0.0 0.0 S base64 -w0\n\
             14 10 0.0 0.0 Z [sh] <defunct>\n\
             30 11 0.0 0.0 Ss sh -c make build\n\
             31 30 0.0 0.0 S make build\n\
             20 10 0.0 0.0 S {agent}\n\
             40 20 0.0 0.0 Ss sh -c echo \"self $$\"\n\
             70 11 0.0 0.0 Ss sh -c echo \"self $$\"?for\n\
             71 70 0.0 0.0 R ps -eo pid=\n\
             41 40 0.0 0.0 R ps -eo pid=,ppid=,pcpu=,pmem=,stat=,args=\n\
             60 1 0.0 0.0 S timeout 0 sh -c wrapper sandbox-proc /r sleep 300 t\n\
             61 60 0.0 0.0 S sleep 300\n\
             62 1 0.0 0.0 Z [sh] <defunct>\n"
        );
        let pids: Vec<u32> = parse_listing(&text)
            .unwrap()
            .user_processes()
            .iter()
            .map(|p| p.pid)
            .collect();
        assert_eq!(pids, [1, 30, 31, 60, 61]);

        // Without setsid the command runs under `timeout`, which is the protocol's.
        let text = format!(
            "self 41\nroot 40\nroot 50\n\
             10 0 0.0 0.0 Ss {agent}\n\
             20 10 0.0 0.0 S {agent}\n\
             50 20 0.0 0.0 S timeout -s KILL 0 sh -c sleep 9\n\
             51 50 0.0 0.0 S sleep 9\n\
             40 20 0.0 0.0 S timeout -s KILL 0 sh -c echo self $$\n\
             41 40 0.0 0.0 S sh -c echo \"self $$\"\n\
             42 41 - - R ps\n"
        );
        let pids: Vec<u32> = parse_listing(&text)
            .unwrap()
            .user_processes()
            .iter()
            .map(|p| p.pid)
            .collect();
        assert_eq!(pids, [51]);
        assert!(parse_listing("1 0 - - S init\n").is_none());
        assert!(!is_agent_command("sh -c echo sandbox-agent"));
    }
}
