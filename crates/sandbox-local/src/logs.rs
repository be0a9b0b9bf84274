//! Logs: run logs are what the sandbox's processes print (its `run.log`); deploy logs are
//! what the creator recorded while starting it (`deploy.log`); build logs say there was no
//! build.

use std::path::PathBuf;
use std::time::Duration;

use doctl_driver::{LogStream, Result};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::state::io_error;

/// How often a followed log is polled for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// The last `tail` lines of a text (all when `None`).
pub(crate) fn tail_lines(text: &str, tail: Option<u32>) -> Vec<String> {
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    match tail {
        Some(n) => lines[lines.len().saturating_sub(n as usize)..].to_vec(),
        None => lines,
    }
}

/// A stream of a file's lines; with `follow`, it keeps polling for lines appended later and
/// ends when `alive` (the sandbox's folder) disappears.
pub(crate) async fn file_stream(
    path: PathBuf,
    alive: PathBuf,
    tail: Option<u32>,
    follow: bool,
) -> Result<LogStream> {
    let text = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_error(&format!("reading {}", path.display()), e)),
    };
    // Only whole lines now; a partial last line is read again while following.
    let complete = if follow {
        text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
    } else {
        text.len()
    };
    let first = tail_lines(&String::from_utf8_lossy(&text[..complete]), tail);
    let initial = futures::stream::iter(first.into_iter().map(Ok));
    if !follow {
        return Ok(initial.boxed());
    }
    struct Follow {
        path: PathBuf,
        alive: PathBuf,
        offset: u64,
        pending: Vec<u8>,
        ready: std::collections::VecDeque<String>,
    }
    let state = Follow {
        path,
        alive,
        offset: complete as u64,
        pending: Vec::new(),
        ready: Default::default(),
    };
    let rest = futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(line) = st.ready.pop_front() {
                return Some((Ok(line), st));
            }
            if !st.alive.exists() {
                return None;
            }
            if let Ok(mut file) = tokio::fs::File::open(&st.path).await
                && file.seek(std::io::SeekFrom::Start(st.offset)).await.is_ok()
            {
                let mut buf = Vec::new();
                if let Ok(n) = file.read_to_end(&mut buf).await {
                    st.offset += n as u64;
                    st.pending.extend_from_slice(&buf);
                    while let Some(i) = st.pending.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = st.pending.drain(..=i).collect();
                        let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                        st.ready.push_back(line);
                    }
                }
            }
            if st.ready.is_empty() {
                tokio::time::sleep(FOLLOW_POLL).await;
            }
        }
    });
    Ok(initial.chain(rest).boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", Some(2)), vec!["b", "c"]);
        assert_eq!(tail_lines("a\nb\n", Some(5)), vec!["a", "b"]);
        assert_eq!(tail_lines("a\nb", None), vec!["a", "b"]);
    }

    #[tokio::test]
    async fn follow_sees_appended_lines_and_ends_when_the_folder_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let alive = dir.path().join("sandbox");
        std::fs::create_dir(&alive).expect("mkdir");
        let log = alive.join("run.log");
        std::fs::write(&log, "one\ntw").expect("write");
        let mut stream = file_stream(log.clone(), alive.clone(), None, true)
            .await
            .expect("stream");
        assert_eq!(stream.next().await.expect("line").expect("ok"), "one");
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&log)
                .expect("open");
            f.write_all(b"o\nthree\n").expect("append");
        }
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
        assert_eq!(next.expect("in time").expect("line").expect("ok"), "two");
        assert_eq!(stream.next().await.expect("line").expect("ok"), "three");
        std::fs::remove_dir_all(&alive).expect("rm");
        let end = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
        assert!(end.expect("ends in time").is_none());
    }
}
