//! Logs over the API: the live WebSocket and the historic download.

use futures::{StreamExt, stream};
use tokio_tungstenite::tungstenite::Message;
use url::Url;

use super::console::output_data;
use super::rest::{Failure, redact_url};
use crate::error::{Error, Result};
use crate::platform::LogStream;

/// The live stream's URL for a WebSocket client: `http` becomes `ws`, `https` becomes `wss`.
pub(crate) fn websocket_url(live_url: &str) -> Result<Url> {
    let mut url = Url::parse(live_url).map_err(|err| {
        Error::other(format!(
            "the API gave a live-logs URL that does not parse: {err}"
        ))
    })?;
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        _ => "wss",
    };
    // Switching between special schemes always succeeds.
    let _ = url.set_scheme(scheme);
    Ok(url)
}

/// Splits text into lines, keeping a partial last line for later.
struct Lines {
    carry: String,
}

impl Lines {
    fn push(&mut self, text: &str) -> Vec<String> {
        self.carry.push_str(text);
        let mut lines = Vec::new();
        while let Some(pos) = self.carry.find('\n') {
            let mut line: String = self.carry.drain(..=pos).collect();
            line.pop();
            if line.ends_with('\r') {
                line.pop();
            }
            lines.push(line);
        }
        lines
    }

    fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.carry);
        (!rest.is_empty()).then_some(rest)
    }
}

/// Reads the live WebSocket: each `{"data":...}` frame's text, cut into lines.
pub(crate) async fn live(
    url: Url,
    connect: impl std::future::Future<
        Output = Result<
            tokio_tungstenite::WebSocketStream<
                tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
            >,
        >,
    >,
) -> Result<LogStream> {
    let socket = connect.await?;
    tracing::debug!(url = %redact_url(&url), "live logs connected");
    let state = (
        socket,
        Lines {
            carry: String::new(),
        },
        Vec::<String>::new(),
        false,
    );
    let stream = stream::unfold(
        state,
        |(mut socket, mut lines, mut ready, mut done)| async move {
            loop {
                if let Some(line) = (!ready.is_empty()).then(|| ready.remove(0)) {
                    return Some((Ok(line), (socket, lines, ready, done)));
                }
                if done {
                    return None;
                }
                match socket.next().await {
                    Some(Ok(Message::Text(text))) => match output_data(text.as_bytes()) {
                        Ok(data) => ready.extend(lines.push(&String::from_utf8_lossy(&data))),
                        Err(err) => {
                            done = true;
                            return Some((Err(err), (socket, lines, ready, done)));
                        }
                    },
                    Some(Ok(Message::Binary(bytes))) => match output_data(&bytes) {
                        Ok(data) => ready.extend(lines.push(&String::from_utf8_lossy(&data))),
                        Err(err) => {
                            done = true;
                            return Some((Err(err), (socket, lines, ready, done)));
                        }
                    },
                    Some(Ok(Message::Close(frame))) => {
                        done = true;
                        ready.extend(lines.finish());
                        let normal = frame.as_ref().is_none_or(|f| {
                        f.code == tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal
                    });
                        if !normal {
                            let reason = frame
                                .map(|f| format!("code {} {}", u16::from(f.code), f.reason))
                                .unwrap_or_default();
                            ready.clear();
                            return Some((
                                Err(Error::ConsoleLost {
                                    reason: format!(
                                        "the live log stream ended with {}",
                                        reason.trim()
                                    ),
                                }),
                                (socket, lines, ready, done),
                            ));
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(err)) => {
                        done = true;
                        return Some((
                            Err(Error::Network {
                                message: format!("reading the live log stream failed: {err}"),
                            }),
                            (socket, lines, ready, done),
                        ));
                    }
                    None => {
                        done = true;
                        return Some((
                            Err(Error::Network {
                                message: "the live log stream ended without a close frame".into(),
                            }),
                            (socket, lines, ready, done),
                        ));
                    }
                }
            }
        },
    );
    Ok(stream.boxed())
}

/// Downloads historic log files (plain GETs, no token: the URLs carry their own signature).
pub(crate) async fn historic(
    client: &reqwest::Client,
    urls: &[String],
    timeout: std::time::Duration,
) -> Result<LogStream> {
    let mut all = Vec::new();
    for text in urls {
        let url = Url::parse(text).map_err(|err| {
            Error::other(format!("the API gave a log URL that does not parse: {err}"))
        })?;
        let shown = redact_url(&url);
        let operation = format!("GET {}", url.path());
        let response = client
            .get(url)
            .timeout(timeout)
            .send()
            .await
            .map_err(|err| Failure::from_reqwest(err, &operation, timeout).error)?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::other(format!(
                "downloading logs from {shown} failed with HTTP {status}"
            )));
        }
        let body = response
            .bytes()
            .await
            .map_err(|err| Failure::from_reqwest(err, &operation, timeout).error)?;
        let mut lines = Lines {
            carry: String::new(),
        };
        all.extend(lines.push(&String::from_utf8_lossy(&body)));
        all.extend(lines.finish());
    }
    Ok(stream::iter(all.into_iter().map(Ok)).boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_url_schemes() {
        assert_eq!(
            websocket_url("http://127.0.0.1:1/logs?token=t")
                .unwrap()
                .as_str(),
            "ws://127.0.0.1:1/logs?token=t"
        );
        assert_eq!(
            websocket_url("https://x.example/l").unwrap().scheme(),
            "wss"
        );
        assert_eq!(websocket_url("wss://x.example/l").unwrap().scheme(), "wss");
        assert_eq!(websocket_url("ws://x.example/l").unwrap().scheme(), "ws");
    }

    #[test]
    fn lines_are_cut_across_chunks() {
        let mut lines = Lines {
            carry: String::new(),
        };
        assert_eq!(lines.push("a\r\nb"), vec!["a".to_owned()]);
        assert_eq!(lines.push("c\n\n"), vec!["bc".to_owned(), String::new()]);
        assert_eq!(lines.push("tail"), Vec::<String>::new());
        assert_eq!(lines.finish().as_deref(), Some("tail"));
        assert_eq!(lines.finish(), None);
    }
}
