//! One console turned into an exec channel: the bootstrap, one reader task that demultiplexes
//! frames by command id, and serialized writes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use doctl_driver::Console;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::protocol::{self, Frame, FrameParser, Mode, Stream};

/// Largest piece of input handed to `Console::send` at once.
const SEND_PIECE: usize = 32 << 10;

/// What a command's route receives.
#[derive(Debug)]
pub(crate) enum Event {
    Data(Stream, Vec<u8>),
    Exit(u8),
    Failed(String),
    Corrupt(String),
    Ack,
    Ready,
}

#[derive(Default)]
struct Routes {
    map: HashMap<u64, mpsc::UnboundedSender<Event>>,
    closed: Option<String>,
}

struct Shared {
    console: Arc<dyn Console>,
    routes: Mutex<Routes>,
    output_seen: AtomicBool,
    output_notify: Notify,
    write_lock: tokio::sync::Mutex<()>,
}

impl Shared {
    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
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
            Frame::Data { id, stream, bytes } => (id, Event::Data(stream, bytes)),
            Frame::Exit { id, status } => (id, Event::Exit(status)),
            Frame::Failed { id, what } => (id, Event::Failed(what)),
            Frame::Corrupt { id: Some(id), line } => (id, Event::Corrupt(line)),
            Frame::Corrupt { id: None, line } => {
                tracing::warn!(%line, "frame without a readable command id");
                return;
            }
        };
        let mut routes = self.routes();
        let done = matches!(event, Event::Exit(_) | Event::Failed(_));
        if let Some(tx) = routes.map.get(&id) {
            // A receiver that went away (cancelled command) just drops the event.
            let _ = tx.send(event);
        }
        if done && id != 0 {
            routes.map.remove(&id);
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
    /// Bootstraps the agent on `console`, waiting at most `timeout` for it.
    pub(crate) async fn open(console: Box<dyn Console>, timeout: Duration) -> Result<Channel> {
        let console: Arc<dyn Console> = Arc::from(console);
        let nonce = protocol::new_nonce();
        let shared = Arc::new(Shared {
            console,
            routes: Mutex::new(Routes::default()),
            output_seen: AtomicBool::new(false),
            output_notify: Notify::new(),
            write_lock: tokio::sync::Mutex::new(()),
        });
        let (tx, mut rx) = mpsc::unbounded_channel();
        shared.routes().map.insert(0, tx);
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
            .send(&protocol::bootstrap_quiet(&channel.nonce))
            .await?;
        channel
            .wait_bootstrap(&mut rx, deadline, timeout, "quiet the terminal")
            .await?;
        channel
            .send(&protocol::bootstrap_agent(&channel.nonce))
            .await?;
        channel
            .wait_bootstrap(&mut rx, deadline, timeout, "start the agent")
            .await?;
        channel.shared.routes().map.remove(&0);
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
                    return Err(Error::Timeout {
                        operation: format!(
                            "exec bootstrap ({step}); the far end must be a POSIX sh with coreutils"
                        ),
                        timeout,
                    });
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

    /// Sends whole lines, in pieces of at most [`SEND_PIECE`] bytes cut after a newline, so a
    /// large request (stdin) is not one long send.
    async fn send(&self, data: &[u8]) -> Result<()> {
        let _guard = self.shared.write_lock.lock().await;
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
            if let Err(e) = self.shared.console.send(piece).await {
                let reason = format!("sending to the console failed: {e}");
                self.shared.close(reason.clone());
                return Err(Error::lost(reason));
            }
        }
        Ok(())
    }

    /// Starts a command; its events arrive on the returned [`Running`].
    pub(crate) async fn start(
        self: &Arc<Self>,
        mode: Mode,
        script: &str,
        stdin: Option<&[u8]>,
        remote_timeout_secs: u64,
    ) -> Result<Running> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut routes = self.shared.routes();
            if let Some(reason) = &routes.closed {
                return Err(Error::lost(reason.clone()));
            }
            routes.map.insert(id, tx);
        }
        let mut running = Running {
            channel: Arc::clone(self),
            id,
            rx,
            finished: false,
        };
        let request = protocol::encode_request(id, mode, remote_timeout_secs, script, stdin);
        // The request is sent by its own task, so a caller that gives up mid-send cannot leave
        // half a request (a bulk reader would take the next requests' lines as its data); the
        // kill sent on drop queues behind it on the write lock.
        let channel = Arc::clone(self);
        let sent = tokio::spawn(async move { channel.send(&request).await })
            .await
            .unwrap_or_else(|e| Err(Error::lost(format!("sending a request failed: {e}"))));
        if let Err(e) = sent {
            running.finished = true;
            return Err(e);
        }
        Ok(running)
    }
}

async fn read_loop(shared: Arc<Shared>, mut parser: FrameParser) {
    loop {
        match shared.console.recv().await {
            Ok(Some(chunk)) => {
                if !shared.output_seen.swap(true, Ordering::AcqRel) {
                    shared.output_notify.notify_one();
                }
                for frame in parser.feed(&chunk) {
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

/// A command started on a channel. Dropping it before its exit kills its process group.
pub(crate) struct Running {
    channel: Arc<Channel>,
    id: u64,
    rx: mpsc::UnboundedReceiver<Event>,
    finished: bool,
}

impl Running {
    /// The next event; `None` when the console ended before the command's exit.
    pub(crate) async fn recv(&mut self) -> Option<Event> {
        let event = self.rx.recv().await;
        if matches!(event, None | Some(Event::Exit(_) | Event::Failed(_))) {
            self.finished = true;
        }
        event
    }

    /// Why the console ended, for a `None` from [`Running::recv`].
    pub(crate) fn lost_reason(&self) -> String {
        self.channel.closed_reason()
    }

    /// Sends `signal` to the command's process group and stops listening to it.
    pub(crate) async fn kill(&mut self, signal: i32) {
        self.finished = true;
        self.channel.shared.routes().map.remove(&self.id);
        let _ = self
            .channel
            .send(&protocol::encode_kill(self.id, signal))
            .await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.channel.shared.routes().map.remove(&self.id);
        let channel = Arc::clone(&self.channel);
        let id = self.id;
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = channel.send(&protocol::encode_kill(id, 9)).await;
            });
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
                    self.push(format!("@{nonce}:0:a:\r\nsandbox@box:~/app$ ").into_bytes());
                } else if line.starts_with("exec sh -c") {
                    let nonce = self.nonce.lock().unwrap().clone();
                    self.push(format!("@{nonce}:0:r:1\r\n").into_bytes());
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

    async fn run(console: Scripted, script: &str) -> crate::Result<crate::ExecOutput> {
        let channel = Arc::new(Channel::open(Box::new(console), Duration::from_secs(5)).await?);
        let mut running = channel.start(Mode::Collect, script, None, 0).await?;
        crate::sandbox::collect(&mut running, script).await
    }

    #[tokio::test]
    async fn echo_prompts_escapes_and_split_frames() {
        let console = Scripted::new(Box::new(|n: &str, line: &str| {
            assert!(line.ends_with("'printf hi'"), "{line}");
            let frames = format!(
                "\x1b[31mjunk@{n}:1:o:aGkK\r\n@ffffffffffffffff:1:x:0\r\nREADY_{n}\r\n\
                 sandbox@box:~/app$ @{n}:1:e:/wA=\r\n@{n}:1:x:3\r\n"
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
            vec![format!("@{n}:1:o:aGkK\r\n").into_bytes()]
        }));
        let channel = Arc::new(
            Channel::open(Box::new(console), Duration::from_secs(5))
                .await
                .unwrap(),
        );
        let mut running = channel
            .start(Mode::Collect, "sleep 9", None, 0)
            .await
            .unwrap();
        channel.shared.close("websocket: close 1006".to_owned());
        let err = crate::sandbox::collect(&mut running, "sleep 9")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ConsoleLost { .. }), "{err}");
        assert!(err.to_string().contains("not retried"), "{err}");
        assert!(channel.is_closed());
        let Err(err) = channel.start(Mode::Collect, "true", None, 0).await else {
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
            vec![format!("@{n}:1:o:not base64!\r\n@{n}:1:x:0\r\n").into_bytes()]
        }));
        let err = run(console, "true").await.unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn silent_terminal_fails_the_bootstrap_with_a_timeout() {
        let mut console = Scripted::new(Box::new(|_: &str, _: &str| Vec::new()));
        console.silent = true;
        let err = Channel::open(Box::new(console), Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(err.to_string().contains("quiet the terminal"), "{err}");
    }
}
