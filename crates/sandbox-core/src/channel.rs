//! One console turned into an exec channel: the bootstrap, one reader task that demultiplexes
//! frames by command id and watches the console's liveness, and serialized writes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use doctl_driver::Console;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::protocol::{self, Frame, FrameParser, Mode, STREAM_WINDOW, Stream};

/// Largest piece of input handed to `Console::send` at once.
const SEND_PIECE: usize = 32 << 10;

/// Capacity of a streamed command's route: the agent never has more than
/// [`STREAM_WINDOW`] chunks of each stream unacknowledged, plus its few other frames.
const STREAM_ROUTE: usize = 2 * STREAM_WINDOW as usize + 8;

/// What a command's route receives.
#[derive(Debug)]
pub(crate) enum Event {
    Data(Stream, Vec<u8>),
    /// The command's process exited; output may still follow.
    Exited,
    /// The command is complete: status and the byte counts the agent read.
    Exit {
        status: u8,
        stdout: Option<u64>,
        stderr: Option<u64>,
    },
    Failed(String),
    Corrupt(String),
    Ack,
    Ready,
}

impl Event {
    fn ends(&self) -> bool {
        matches!(self, Event::Exit { .. } | Event::Failed(_))
    }
}

/// Liveness and open deadlines of a channel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChannelOptions {
    /// How long the bootstrap may take.
    pub(crate) open_timeout: Duration,
    /// How long the console may stay silent (no byte in, no send completing) while a command
    /// is in flight before every command in flight fails with `ConsoleLost`. A heartbeat is
    /// sent after a third of it.
    pub(crate) heartbeat_timeout: Duration,
}

enum RouteTx {
    /// Collect mode: the output ends up in memory anyway.
    Unbounded(mpsc::UnboundedSender<Event>),
    /// Stream mode: bounded by the flow-control window.
    Bounded(mpsc::Sender<Event>),
}

struct Route {
    tx: RouteTx,
    /// Why the route was cut by the channel (the agent broke the window).
    failure: Arc<Mutex<Option<String>>>,
}

#[derive(Default)]
struct Routes {
    map: HashMap<u64, Route>,
    closed: Option<String>,
}

struct Shared {
    console: Arc<dyn Console>,
    routes: Mutex<Routes>,
    output_seen: AtomicBool,
    output_notify: Notify,
    write_lock: tokio::sync::Mutex<()>,
    heartbeat_timeout: Duration,
    /// When a byte last arrived or a send last completed.
    last_activity: Mutex<Instant>,
    /// Command requests being sent (a long bulk request is activity too).
    sending: AtomicUsize,
    heartbeat_pending: AtomicBool,
    /// Whether the agent runs (before that, the bootstrap's own deadline applies).
    agent_ready: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        lock(&self.routes)
    }

    fn touch(&self) {
        *lock(&self.last_activity) = Instant::now();
    }

    fn close(&self, reason: String) {
        let mut routes = self.routes();
        if routes.closed.is_none() {
            tracing::debug!(%reason, "exec channel closed");
            routes.closed = Some(reason);
        }
        routes.map.clear();
    }

    fn dispatch(&self, frame: Frame) {
        let (id, event) = match frame {
            Frame::Ack => (0, Event::Ack),
            Frame::Ready => (0, Event::Ready),
            Frame::Heartbeat => {
                self.heartbeat_pending.store(false, Ordering::Release);
                return;
            }
            Frame::Data { id, stream, bytes } => (id, Event::Data(stream, bytes)),
            Frame::Exited { id, .. } => (id, Event::Exited),
            Frame::Exit {
                id,
                status,
                stdout,
                stderr,
            } => (
                id,
                Event::Exit {
                    status,
                    stdout,
                    stderr,
                },
            ),
            Frame::Failed { id, what } => (id, Event::Failed(what)),
            Frame::Corrupt { id: Some(id), line } => (id, Event::Corrupt(line)),
            Frame::Corrupt { id: None, line } => {
                tracing::warn!(%line, "frame without a readable command id");
                return;
            }
            Frame::Truncated { .. } => return,
        };
        let mut routes = self.routes();
        let done = event.ends();
        let mut overrun = false;
        if let Some(route) = routes.map.get(&id) {
            // A receiver that went away (cancelled command) just drops the event.
            match &route.tx {
                RouteTx::Unbounded(tx) => {
                    let _ = tx.send(event);
                }
                RouteTx::Bounded(tx) => {
                    if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(event) {
                        *lock(&route.failure) = Some(format!(
                            "the sandbox sent more output than the flow-control window of \
                             {STREAM_WINDOW} chunks per stream allows"
                        ));
                        overrun = true;
                    }
                }
            }
        }
        if (done || overrun) && id != 0 {
            routes.map.remove(&id);
        }
    }

    /// Sends whole lines, in pieces of at most [`SEND_PIECE`] bytes cut after a newline, so a
    /// large request (stdin) is not one long send. Each piece has the heartbeat deadline.
    ///
    /// Only the pieces of a command's request count as the console's life (a long stdin is
    /// typed while the agent stays silent); heartbeats, credits and kills do not, or a
    /// half-open console that swallows them would look alive.
    async fn send(&self, data: &[u8]) -> Result<()> {
        self.send_pieces(data, false).await
    }

    async fn send_request(&self, data: &[u8]) -> Result<()> {
        self.sending.fetch_add(1, Ordering::AcqRel);
        let result = self.send_pieces(data, true).await;
        self.sending.fetch_sub(1, Ordering::AcqRel);
        result
    }

    async fn send_pieces(&self, data: &[u8], alive: bool) -> Result<()> {
        let _guard = self.write_lock.lock().await;
        let mut rest = data;
        while !rest.is_empty() {
            let cut = if rest.len() <= SEND_PIECE {
                rest.len()
            } else {
                rest[..SEND_PIECE]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(SEND_PIECE, |i| i + 1)
            };
            let (piece, tail) = rest.split_at(cut);
            rest = tail;
            let failure = match tokio::time::timeout(
                self.heartbeat_timeout,
                self.console.send(piece),
            )
            .await
            {
                Ok(Ok(())) => {
                    if alive {
                        self.touch();
                    }
                    continue;
                }
                Ok(Err(e)) => format!("sending to the console failed: {e}"),
                Err(_) => format!(
                    "sending to the console did not finish within {:?}",
                    self.heartbeat_timeout
                ),
            };
            self.close(failure.clone());
            return Err(Error::lost(failure));
        }
        Ok(())
    }

    /// Checks the console's liveness on a tick of the reader; `false` when it is lost.
    fn check_liveness(self: &Arc<Self>) -> bool {
        if !self.agent_ready.load(Ordering::Acquire) {
            return true;
        }
        let in_flight = !self.routes().map.is_empty() || self.sending.load(Ordering::Acquire) > 0;
        if !in_flight {
            return true;
        }
        let idle = lock(&self.last_activity).elapsed();
        if idle >= self.heartbeat_timeout {
            self.close(format!(
                "the console was silent for {:?} while commands were running (no output, no \
                 answer to the heartbeat)",
                self.heartbeat_timeout
            ));
            return false;
        }
        if idle >= self.heartbeat_timeout / 3
            && !self.heartbeat_pending.swap(true, Ordering::AcqRel)
        {
            let shared = Arc::clone(self);
            tokio::spawn(async move {
                let _ = shared.send(protocol::HEARTBEAT).await;
            });
        }
        true
    }

    /// Sends a request from its own task, bounded by the heartbeat deadline, without waiting
    /// for it: the caller has given up on the command (a kill) or must not block (a credit).
    fn send_detached(self: &Arc<Self>, request: Vec<u8>) {
        let shared = Arc::clone(self);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = shared.send(&request).await;
            });
        }
    }
}

/// An exec channel over one console. Dropping it ends the reader and the console.
pub(crate) struct Channel {
    shared: Arc<Shared>,
    nonce: String,
    next_id: AtomicU64,
    reader: JoinHandle<()>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.reader.abort();
        let console = Arc::clone(&self.shared.console);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = console.close().await;
            });
        }
    }
}

impl Channel {
    /// Bootstraps the agent on `console`, waiting at most `options.open_timeout` for it.
    pub(crate) async fn open(
        console: Box<dyn Console>,
        options: ChannelOptions,
    ) -> Result<Channel> {
        let timeout = options.open_timeout;
        let console: Arc<dyn Console> = Arc::from(console);
        let nonce = protocol::new_nonce();
        let shared = Arc::new(Shared {
            console,
            routes: Mutex::new(Routes::default()),
            output_seen: AtomicBool::new(false),
            output_notify: Notify::new(),
            write_lock: tokio::sync::Mutex::new(()),
            heartbeat_timeout: options.heartbeat_timeout.max(Duration::from_millis(30)),
            last_activity: Mutex::new(Instant::now()),
            sending: AtomicUsize::new(0),
            heartbeat_pending: AtomicBool::new(false),
            agent_ready: AtomicBool::new(false),
        });
        let (tx, mut rx) = mpsc::unbounded_channel();
        shared.routes().map.insert(
            0,
            Route {
                tx: RouteTx::Unbounded(tx),
                failure: Arc::default(),
            },
        );
        let reader = tokio::spawn(read_loop(Arc::clone(&shared), FrameParser::new(&nonce)));
        let channel = Channel {
            shared,
            nonce,
            next_id: AtomicU64::new(1),
            reader,
        };

        let deadline = Instant::now() + timeout;
        // Give the shell a moment to print its prompt, so input is not typed into nothing.
        let first_output = async {
            while !channel.shared.output_seen.load(Ordering::Acquire) {
                channel.shared.output_notify.notified().await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1).min(timeout), first_output).await;

        channel
            .shared
            .send(&protocol::bootstrap_quiet(&channel.nonce))
            .await?;
        channel
            .wait_bootstrap(&mut rx, deadline, timeout, "quiet the terminal")
            .await?;
        channel
            .shared
            .send(&protocol::bootstrap_agent(&channel.nonce))
            .await?;
        channel
            .wait_bootstrap(&mut rx, deadline, timeout, "start the agent")
            .await?;
        channel.shared.routes().map.remove(&0);
        channel.shared.touch();
        channel.shared.agent_ready.store(true, Ordering::Release);
        tracing::debug!("exec agent ready");
        Ok(channel)
    }

    async fn wait_bootstrap(
        &self,
        rx: &mut mpsc::UnboundedReceiver<Event>,
        deadline: Instant,
        timeout: Duration,
        step: &str,
    ) -> Result<()> {
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => {
                    return Err(Error::timeout(
                        format!(
                            "exec bootstrap ({step}); the far end must be a POSIX sh with coreutils"
                        ),
                        timeout,
                    ));
                }
                Ok(None) => return Err(Error::lost(self.closed_reason())),
                Ok(Some(Event::Ack | Event::Ready)) => return Ok(()),
                Ok(Some(Event::Failed(what))) => {
                    return Err(Error::protocol(format!(
                        "exec agent could not start: {what}"
                    )));
                }
                Ok(Some(_)) => {}
            }
        }
    }

    fn closed_reason(&self) -> String {
        self.shared
            .routes()
            .closed
            .clone()
            .unwrap_or_else(|| "the console closed".to_owned())
    }

    /// Whether the console behind this channel has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.routes().closed.is_some() || self.reader.is_finished()
    }

    /// Starts a command; its events arrive on the returned [`Running`].
    pub(crate) async fn start(
        self: &Arc<Self>,
        mode: Mode,
        kill_children: bool,
        script: &str,
        stdin: Option<&[u8]>,
        remote_timeout_secs: u64,
    ) -> Result<Running> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let failure = Arc::default();
        let (tx, rx) = match mode {
            Mode::Collect => {
                let (tx, rx) = mpsc::unbounded_channel();
                (RouteTx::Unbounded(tx), RouteRx::Unbounded(rx))
            }
            Mode::Stream => {
                let (tx, rx) = mpsc::channel(STREAM_ROUTE);
                (RouteTx::Bounded(tx), RouteRx::Bounded(rx))
            }
        };
        {
            let mut routes = self.shared.routes();
            if let Some(reason) = &routes.closed {
                return Err(Error::lost(reason.clone()));
            }
            routes.map.insert(
                id,
                Route {
                    tx,
                    failure: Arc::clone(&failure),
                },
            );
        }
        let mut running = Running {
            channel: Arc::clone(self),
            id,
            rx,
            failure,
            finished: false,
            consumed: [0; 2],
        };
        let request =
            protocol::encode_request(id, mode, kill_children, remote_timeout_secs, script, stdin);
        // The request is sent by its own task, so a caller that gives up mid-send cannot leave
        // half a request (a bulk reader would take the next requests' lines as its data); the
        // kill sent on drop queues behind it on the write lock.
        let shared = Arc::clone(&self.shared);
        let sent = tokio::spawn(async move { shared.send_request(&request).await })
            .await
            .unwrap_or_else(|e| Err(Error::lost(format!("sending a request failed: {e}"))));
        if let Err(e) = sent {
            running.finished = true;
            return Err(e);
        }
        Ok(running)
    }
}

type RecvFuture = Pin<Box<dyn Future<Output = doctl_driver::Result<Option<Vec<u8>>>> + Send>>;

fn recv_next(shared: &Arc<Shared>) -> RecvFuture {
    let shared = Arc::clone(shared);
    Box::pin(async move { shared.console.recv().await })
}

async fn read_loop(shared: Arc<Shared>, mut parser: FrameParser) {
    let tick = (shared.heartbeat_timeout / 6).max(Duration::from_millis(5));
    // One receive at a time, kept across ticks: a receive is never cancelled mid-way.
    let mut recv = recv_next(&shared);
    loop {
        let result = tokio::select! {
            result = &mut recv => result,
            () = tokio::time::sleep(tick) => {
                if shared.check_liveness() {
                    continue;
                }
                let _ = shared.console.close().await;
                shared.output_notify.notify_one();
                return;
            }
        };
        recv = recv_next(&shared);
        match result {
            Ok(Some(chunk)) => {
                shared.touch();
                shared.heartbeat_pending.store(false, Ordering::Release);
                if !shared.output_seen.swap(true, Ordering::AcqRel) {
                    shared.output_notify.notify_one();
                }
                for frame in parser.feed(&chunk) {
                    if let Frame::Truncated { line } = &frame {
                        shared.close(format!(
                            "the console cut a frame short (`{line}`): the connection broke \
                             mid-frame"
                        ));
                        let _ = shared.console.close().await;
                        return;
                    }
                    shared.dispatch(frame);
                }
            }
            Ok(None) => {
                shared.close("the remote shell ended the console session".to_owned());
                shared.output_notify.notify_one();
                return;
            }
            Err(e) => {
                shared.close(format!("{e}"));
                shared.output_notify.notify_one();
                return;
            }
        }
    }
}

enum RouteRx {
    Unbounded(mpsc::UnboundedReceiver<Event>),
    Bounded(mpsc::Receiver<Event>),
}

/// A command started on a channel. Dropping it before its exit kills its process group.
pub(crate) struct Running {
    channel: Arc<Channel>,
    id: u64,
    rx: RouteRx,
    failure: Arc<Mutex<Option<String>>>,
    finished: bool,
    /// Chunks of stdout and stderr handed to the caller (stream mode), for the credits.
    consumed: [u32; 2],
}

impl Running {
    /// The next event; `None` when the console ended before the command's exit.
    pub(crate) async fn recv(&mut self) -> Option<Event> {
        let event = match &mut self.rx {
            RouteRx::Unbounded(rx) => rx.recv().await,
            RouteRx::Bounded(rx) => rx.recv().await,
        };
        let event = match event {
            None => lock(&self.failure).take().map(Event::Corrupt),
            event => event,
        };
        if matches!(&event, None | Some(Event::Exit { .. } | Event::Failed(_))) {
            self.finished = true;
        }
        event
    }

    /// Why the console ended, for a `None` from [`Running::recv`].
    pub(crate) fn lost_reason(&self) -> String {
        self.channel.closed_reason()
    }

    /// Sends `signal` to the command's process group and stops listening to it. Returns at
    /// once: the kill is sent by its own task, within the heartbeat deadline.
    pub(crate) fn kill(&mut self, signal: i32) {
        self.finished = true;
        self.channel.shared.routes().map.remove(&self.id);
        self.channel
            .shared
            .send_detached(protocol::encode_kill(self.id, signal));
    }

    /// Asks the agent to stop reading the command's output (its process has exited, a child
    /// still holds the pipes); the exit frame follows.
    pub(crate) fn drain(&self) {
        self.channel
            .shared
            .send_detached(protocol::encode_drain(self.id));
    }

    /// Records that the caller took a chunk of `stream` (stream mode) and returns credit to
    /// the agent every half window.
    pub(crate) fn consumed(&mut self, stream: Stream) {
        let slot = &mut self.consumed[usize::from(stream == Stream::Stderr)];
        *slot += 1;
        let batch = STREAM_WINDOW / 2;
        if *slot % batch == 0 {
            self.channel
                .shared
                .send_detached(protocol::encode_credit(self.id, stream, batch));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.finished {
            self.kill(9);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The client against scripted terminals: echo, prompts, escapes, CRLF, frames split
    //! across chunks, look-alike lines, drops and silence.

    use std::collections::VecDeque;

    use async_trait::async_trait;
    use doctl_driver::TermSize;

    use super::*;

    type Responder = Box<dyn Fn(&str, &str) -> Vec<Vec<u8>> + Send + Sync>;

    /// A terminal that echoes every line (as if `stty -echo` failed), prints prompts and
    /// escapes, and answers requests through `respond(nonce, line)`.
    struct Scripted {
        out: Mutex<VecDeque<Option<Vec<u8>>>>,
        notify: Notify,
        nonce: Mutex<String>,
        respond: Responder,
        silent: bool,
    }

    impl Scripted {
        fn new(respond: Responder) -> Self {
            let console = Scripted {
                out: Mutex::new(VecDeque::new()),
                notify: Notify::new(),
                nonce: Mutex::new(String::new()),
                respond,
                silent: false,
            };
            console.push(b"\x1b[?2004hsandbox@box:~/app$ ".to_vec());
            console
        }

        fn push(&self, chunk: Vec<u8>) {
            self.out.lock().unwrap().push_back(Some(chunk));
            self.notify.notify_one();
        }

        fn hang_up(&self) {
            self.out.lock().unwrap().push_back(None);
            self.notify.notify_one();
        }
    }

    #[async_trait]
    impl Console for Scripted {
        async fn send(&self, data: &[u8]) -> doctl_driver::Result<()> {
            if self.silent {
                return Ok(());
            }
            let text = String::from_utf8(data.to_vec()).expect("requests are ASCII");
            for line in text.lines() {
                assert!(line.len() <= 1000 && line.bytes().all(|b| (0x20..0x7f).contains(&b)));
                // Echo, wrapped in bracketed-paste escapes, in two pieces.
                let echo = format!("{line}\r\n\x1b[?2004l\r");
                let (a, b) = echo.split_at(echo.len() / 2);
                self.push(a.as_bytes().to_vec());
                self.push(b.as_bytes().to_vec());
                if let Some(rest) = line.strip_prefix(" stty -echo") {
                    let nonce = rest.rsplit(' ').next().unwrap().to_owned();
                    *self.nonce.lock().unwrap() = nonce.clone();
                    self.push(format!("@{nonce}:0:a::0\r\nsandbox@box:~/app$ ").into_bytes());
                } else if line.starts_with("exec sh -c") {
                    let nonce = self.nonce.lock().unwrap().clone();
                    self.push(format!("@{nonce}:0:r:1:1\r\n").into_bytes());
                } else if line.starts_with("_x ") {
                    let nonce = self.nonce.lock().unwrap().clone();
                    let chunks = (self.respond)(&nonce, line);
                    if chunks.is_empty() {
                        self.hang_up();
                    }
                    for chunk in chunks {
                        self.push(chunk);
                    }
                }
            }
            Ok(())
        }

        async fn recv(&self) -> doctl_driver::Result<Option<Vec<u8>>> {
            loop {
                if let Some(item) = self.out.lock().unwrap().pop_front() {
                    return Ok(item);
                }
                self.notify.notified().await;
            }
        }

        async fn resize(&self, _size: TermSize) -> doctl_driver::Result<()> {
            Ok(())
        }

        async fn close(&self) -> doctl_driver::Result<()> {
            Ok(())
        }
    }

    const OPTIONS: ChannelOptions = ChannelOptions {
        open_timeout: Duration::from_secs(5),
        heartbeat_timeout: Duration::from_secs(15),
    };

    /// A frame as the agent prints it (with its length suffix), and CRLF.
    fn fr(n: &str, id: u64, kind: &str, payload: &str) -> String {
        format!("@{n}:{id}:{kind}:{payload}:{}\r\n", payload.len())
    }

    async fn run(console: Scripted, script: &str) -> crate::Result<crate::ExecOutput> {
        let channel = Arc::new(Channel::open(Box::new(console), OPTIONS).await?);
        let mut running = channel.start(Mode::Collect, false, script, None, 0).await?;
        crate::sandbox::collect(&mut running, script, Duration::from_millis(250)).await
    }

    #[tokio::test]
    async fn echo_prompts_escapes_and_split_frames() {
        let console = Scripted::new(Box::new(|n: &str, line: &str| {
            assert!(line.ends_with("'printf hi'"), "{line}");
            let frames = format!(
                "\x1b[31mjunk{}@ffffffffffffffff:1:x:0:0:0:5\r\nREADY_{n}\r\n\
                 sandbox@box:~/app$ {}{}{}",
                fr(n, 1, "o", "aGkK"),
                fr(n, 1, "e", "/wA="),
                fr(n, 1, "q", "3"),
                fr(n, 1, "x", "3:3:2"),
            );
            frames.as_bytes().chunks(3).map(<[u8]>::to_vec).collect()
        }));
        let out = run(console, "printf hi").await.unwrap();
        assert_eq!(out.stdout, b"hi\n");
        assert_eq!(out.stderr, [0xff, 0x00]);
        assert_eq!(out.code(), Some(3));
    }

    #[tokio::test]
    async fn hang_up_before_the_exit_frame_is_console_lost() {
        let console = Scripted::new(Box::new(|n: &str, _line: &str| {
            vec![fr(n, 1, "o", "aGkK").into_bytes()]
        }));
        let channel = Arc::new(Channel::open(Box::new(console), OPTIONS).await.unwrap());
        let mut running = channel
            .start(Mode::Collect, false, "sleep 9", None, 0)
            .await
            .unwrap();
        channel.shared.close("websocket: close 1006".to_owned());
        let err = crate::sandbox::collect(&mut running, "sleep 9", Duration::from_millis(250))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ConsoleLost { .. }), "{err}");
        assert!(err.to_string().contains("not retried"), "{err}");
        assert!(channel.is_closed());
        let Err(err) = channel.start(Mode::Collect, false, "true", None, 0).await else {
            panic!("a closed channel started a command");
        };
        assert!(matches!(err, Error::ConsoleLost { .. }));
    }

    #[tokio::test]
    async fn remote_end_of_session_is_console_lost() {
        let console = Scripted::new(Box::new(|_: &str, _: &str| Vec::new()));
        let err = run(console, "true").await.unwrap_err();
        assert!(matches!(err, Error::ConsoleLost { .. }), "{err}");
    }

    #[tokio::test]
    async fn corrupt_frame_is_a_protocol_error() {
        let console = Scripted::new(Box::new(|n: &str, _: &str| {
            vec![format!("{}{}", fr(n, 1, "o", "not base64!"), fr(n, 1, "x", "0:0:0")).into_bytes()]
        }));
        let err = run(console, "true").await.unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn silent_terminal_fails_the_bootstrap_with_a_timeout() {
        let mut console = Scripted::new(Box::new(|_: &str, _: &str| Vec::new()));
        console.silent = true;
        let options = ChannelOptions {
            open_timeout: Duration::from_secs(10),
            ..OPTIONS
        };
        let err = Channel::open(Box::new(console), options).await.unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(err.to_string().contains("quiet the terminal"), "{err}");
    }
}
