//! Commands started by `exec_start`: each one's output read into bounded buffers by a task,
//! handed out by `exec_poll`, stopped by `exec_signal` (or by the server's exit).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sandbox_core::{ExecEvent, ExecStream, ExitStatus};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use crate::output::{Redactor, put_bytes};

/// The running (and finished, not yet fully read) commands.
pub(crate) struct Jobs {
    next: AtomicU64,
    map: Mutex<HashMap<String, Arc<Job>>>,
    buffer: usize,
    max_running: usize,
}

pub(crate) struct Job {
    pub id: String,
    pub sandbox_id: String,
    pub sandbox_name: String,
    pub command: String,
    /// Names the file where the wrapper recorded the command's pid.
    pub pid_token: String,
    started: Instant,
    state: Mutex<State>,
    notify: Notify,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[derive(Default)]
struct State {
    stdout: Pending,
    stderr: Pending,
    exit: Option<ExitStatus>,
    error: Option<String>,
    killed: bool,
    finished_after: Option<Duration>,
}

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    total: u64,
    dropped: u64,
}

impl Pending {
    fn push(&mut self, chunk: &[u8], cap: usize) {
        self.total += chunk.len() as u64;
        self.buf.extend_from_slice(chunk);
        if self.buf.len() > cap {
            let cut = self.buf.len() - cap;
            self.buf.drain(..cut);
            self.dropped += cut as u64;
        }
    }

    /// Takes up to `max` bytes; while the command runs, stops before a UTF-8 sequence that
    /// is not complete yet (the rest comes with the next poll).
    fn take(&mut self, max: usize, running: bool) -> Vec<u8> {
        let mut n = self.buf.len().min(max);
        if let Err(e) = std::str::from_utf8(&self.buf[..n])
            && (running || n < self.buf.len())
            && e.error_len().is_none()
            && n - e.valid_up_to() < 4
            && e.valid_up_to() > 0
        {
            n = e.valid_up_to();
        }
        self.buf.drain(..n).collect()
    }
}

impl State {
    fn finished(&self) -> bool {
        self.exit.is_some() || self.error.is_some() || self.killed
    }
}

impl Jobs {
    pub(crate) fn new(buffer: usize, max_running: usize) -> Self {
        Jobs {
            next: AtomicU64::new(1),
            map: Mutex::new(HashMap::new()),
            buffer,
            max_running,
        }
    }

    /// Starts reading a command's stream; returns its id.
    pub(crate) fn start(
        &self,
        stream: ExecStream,
        sandbox_id: &str,
        sandbox_name: &str,
        command: String,
        pid_token: String,
        timeout: Option<Duration>,
    ) -> Result<Arc<Job>, String> {
        let mut map = lock(&self.map);
        let running = map
            .values()
            .filter(|job| !lock(&job.state).finished())
            .count();
        if running >= self.max_running {
            return Err(format!(
                "{running} commands started with exec_start are still running, the most this server allows; \
                 stop one with exec_signal or wait for one to finish (exec_poll)"
            ));
        }
        let id = format!("exec-{}", self.next.fetch_add(1, Ordering::Relaxed));
        let job = Arc::new(Job {
            id: id.clone(),
            sandbox_id: sandbox_id.to_owned(),
            sandbox_name: sandbox_name.to_owned(),
            command,
            pid_token,
            started: Instant::now(),
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            task: Mutex::new(None),
        });
        let reader = Arc::clone(&job);
        let cap = self.buffer;
        let task = tokio::spawn(async move {
            let read = reader.read(stream, cap);
            let result = match timeout {
                Some(limit) => tokio::time::timeout(limit, read).await.map_err(|_| limit),
                None => {
                    read.await;
                    Ok(())
                }
            };
            if let Err(limit) = result {
                // The stream was dropped with the timed-out future: the SDK kills the command.
                let mut state = lock(&reader.state);
                state.error = Some(format!(
                    "timed out after {} s; the command was killed",
                    limit.as_secs_f64()
                ));
                state.finished_after = Some(reader.started.elapsed());
            }
            reader.notify.notify_waiters();
        });
        *lock(&job.task) = Some(task);
        map.insert(id, Arc::clone(&job));
        Ok(job)
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Job>> {
        lock(&self.map).get(id).cloned()
    }

    fn remove(&self, id: &str) {
        lock(&self.map).remove(id);
    }

    /// Every job, for listings.
    pub(crate) fn all(&self) -> Vec<Arc<Job>> {
        let mut jobs: Vec<Arc<Job>> = lock(&self.map).values().cloned().collect();
        jobs.sort_by_key(|job| job.started);
        jobs
    }

    /// Stops the commands of one sandbox (all when `None`) and forgets them.
    pub(crate) fn stop_all(&self, sandbox_id: Option<&str>) -> usize {
        let mut map = lock(&self.map);
        let ids: Vec<String> = map
            .values()
            .filter(|job| sandbox_id.is_none_or(|id| job.sandbox_id == id))
            .map(|job| job.id.clone())
            .collect();
        for id in &ids {
            if let Some(job) = map.remove(id) {
                job.kill();
            }
        }
        ids.len()
    }

    /// The output since the last poll, waiting up to `wait` for some when there is none; the
    /// job is forgotten once it finished and everything was read.
    pub(crate) async fn poll(
        &self,
        job: &Arc<Job>,
        wait: Duration,
        max_bytes: usize,
        redactor: &Redactor,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = job.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let state = lock(&job.state);
                let has_output = !state.stdout.buf.is_empty() || !state.stderr.buf.is_empty();
                if has_output || state.finished() || tokio::time::Instant::now() >= deadline {
                    break;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        let mut out = Map::new();
        let done = {
            let mut state = lock(&job.state);
            let running = !state.finished();
            let stdout = state.stdout.take(max_bytes, running);
            let stderr = state.stderr.take(max_bytes, running);
            out.insert("exec_id".into(), json!(job.id));
            out.insert("sandbox".into(), json!(job.sandbox_name));
            out.insert("running".into(), json!(running));
            put_bytes("stdout", &stdout, redactor, &mut out);
            put_bytes("stderr", &stderr, redactor, &mut out);
            let more = !state.stdout.buf.is_empty() || !state.stderr.buf.is_empty();
            out.insert("more_output".into(), json!(more));
            out.insert(
                "total_bytes".into(),
                json!({"stdout": state.stdout.total, "stderr": state.stderr.total}),
            );
            if state.stdout.dropped + state.stderr.dropped > 0 {
                out.insert(
                    "dropped_bytes".into(),
                    json!({
                        "stdout": state.stdout.dropped,
                        "stderr": state.stderr.dropped,
                        "note": "output not polled in time was dropped (oldest first); poll more often or redirect it to a file",
                    }),
                );
            }
            if let Some(status) = state.exit {
                out.insert("exit_code".into(), json!(status.code));
                out.insert("signal".into(), json!(status.signal));
            }
            if let Some(error) = &state.error {
                out.insert("error".into(), json!(redactor.redact(error)));
            }
            if state.killed {
                out.insert("killed".into(), json!(true));
            }
            let elapsed = state
                .finished_after
                .unwrap_or_else(|| job.started.elapsed());
            out.insert(
                "elapsed_seconds".into(),
                json!((elapsed.as_secs_f64() * 1000.0).round() / 1000.0),
            );
            !running && !more
        };
        if done {
            self.remove(&job.id);
        }
        Value::Object(out)
    }
}

impl Job {
    async fn read(&self, mut stream: ExecStream, cap: usize) {
        loop {
            let event = stream.next_event().await;
            let mut state = lock(&self.state);
            match event {
                Some(Ok(ExecEvent::Stdout(chunk))) => state.stdout.push(&chunk, cap),
                Some(Ok(ExecEvent::Stderr(chunk))) => state.stderr.push(&chunk, cap),
                Some(Ok(ExecEvent::Exit(status))) => {
                    state.exit = Some(status);
                    state.finished_after = Some(self.started.elapsed());
                }
                Some(Err(e)) => {
                    state.error = Some(e.to_string());
                    state.finished_after = Some(self.started.elapsed());
                }
                None => {
                    if !state.finished() {
                        state.error =
                            Some("the command's output ended without an exit status".into());
                        state.finished_after = Some(self.started.elapsed());
                    }
                }
            }
            let finished = state.finished();
            drop(state);
            self.notify.notify_waiters();
            if finished {
                return;
            }
        }
    }

    /// Whether the command still runs.
    pub(crate) fn running(&self) -> bool {
        !lock(&self.state).finished()
    }

    /// Stops reading, which kills the command's process group (SIGKILL, by the SDK).
    /// Returns whether it was still running.
    pub(crate) fn kill(&self) -> bool {
        let was_running = {
            let mut state = lock(&self.state);
            let running = !state.finished();
            if running {
                state.killed = true;
                state.finished_after = Some(self.started.elapsed());
            }
            running
        };
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
        self.notify.notify_waiters();
        was_running
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_output_is_bounded_and_counts_what_it_dropped() {
        let mut pending = Pending::default();
        pending.push(b"0123456789", 4);
        assert_eq!(pending.buf, b"6789");
        assert_eq!((pending.total, pending.dropped), (10, 6));
        assert_eq!(pending.take(3, true), b"678");
        assert_eq!(pending.take(3, true), b"9");
    }

    #[test]
    fn a_poll_does_not_split_a_utf8_character_while_the_command_runs() {
        let mut pending = Pending::default();
        let text = "aé".as_bytes(); // 'é' is two bytes
        pending.push(&text[..2], 100);
        assert_eq!(pending.take(100, true), b"a");
        pending.push(&text[2..], 100);
        assert_eq!(pending.take(100, true), "é".as_bytes());
    }
}
