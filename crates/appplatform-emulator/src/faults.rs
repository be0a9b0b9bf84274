//! Faults on demand: what the emulator does wrong when asked to.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// An HTTP answer that replaces the real one for a REST request under `/v2`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum HttpFault {
    /// 429 `too_many_requests` with `retry-after: <seconds>` and `ratelimit-remaining: 0`.
    RateLimited {
        /// The `retry-after` value, in seconds.
        retry_after: u64,
    },
    /// A 5xx with App Platform's `server_error` body (request id only in `x-request-id`).
    ServerError {
        /// The status, 500 to 599.
        status: u16,
    },
    /// A 5xx with an empty body and no request id.
    EmptyServerError {
        /// The status.
        status: u16,
    },
    /// A 502 with an HTML body, as a proxy in front of the API would send.
    BadGatewayHtml,
}

/// How a console session misbehaves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConsoleFault {
    /// Drop the TCP connection (no close frame) once this many output bytes were sent.
    #[serde(default)]
    pub drop_after_bytes: Option<u64>,
    /// Drop the TCP connection (no close frame) this long after the session starts.
    #[serde(default, with = "opt_millis")]
    pub drop_after: Option<Duration>,
    /// Wait this long before sending each output frame.
    #[serde(default, with = "opt_millis")]
    pub delay_per_frame: Option<Duration>,
    /// End the session with this close code instead of 1000 when the shell exits.
    #[serde(default)]
    pub close_code: Option<u16>,
    /// Forward nothing more, either way, once this many output bytes were sent, and keep the
    /// connection open (no close, no bytes, no answer to pings, since nothing is read) until
    /// the emulator stops or for 10 minutes: a half-open console.
    #[serde(default)]
    pub stall_after_bytes: Option<u64>,
}

mod opt_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[derive(Debug, Default)]
struct Inner {
    http: VecDeque<HttpFault>,
    failing_deployments: VecDeque<String>,
    refused_upgrades: u32,
    console: Option<(ConsoleFault, Option<u32>)>,
}

/// The faults to inject, shared by a running emulator and whoever holds this handle.
///
/// Every queued fault is used once, in order. Cloning gives another handle to the same
/// queues.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<Inner>>,
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Answers the next `count` REST requests with `fault` instead of serving them.
    pub fn http(&self, fault: HttpFault, count: u32) -> &Self {
        let mut inner = self.lock();
        for _ in 0..count {
            inner.http.push_back(fault.clone());
        }
        self
    }

    /// Answers the next `count` REST requests with 429 and `retry-after: <secs>`.
    pub fn rate_limit(&self, count: u32, retry_after_secs: u64) -> &Self {
        self.http(
            HttpFault::RateLimited {
                retry_after: retry_after_secs,
            },
            count,
        )
    }

    /// Answers the next `count` REST requests with `status` (a 5xx) and App Platform's body.
    pub fn server_error(&self, count: u32, status: u16) -> &Self {
        self.http(HttpFault::ServerError { status }, count)
    }

    /// Makes the next deployment created end in `ERROR`, its deploy step giving `reason`.
    pub fn fail_next_deployment(&self, reason: impl Into<String>) -> &Self {
        self.lock().failing_deployments.push_back(reason.into());
        self
    }

    /// Refuses the next `count` exec WebSocket upgrades with HTTP 403.
    pub fn refuse_upgrades(&self, count: u32) -> &Self {
        self.lock().refused_upgrades += count;
        self
    }

    /// Applies `fault` to the next `sessions` console sessions (`None`: to every session
    /// until [`Faults::clear`]).
    pub fn console(&self, fault: ConsoleFault, sessions: Option<u32>) -> &Self {
        self.lock().console = Some((fault, sessions));
        self
    }

    /// Drops the next console session's TCP connection after `bytes` output bytes.
    pub fn drop_console_after_bytes(&self, bytes: u64) -> &Self {
        self.console(
            ConsoleFault {
                drop_after_bytes: Some(bytes),
                ..ConsoleFault::default()
            },
            Some(1),
        )
    }

    /// The next console (one session) stalls after `bytes` output bytes: the connection stays
    /// open and nothing more is forwarded either way, pings included.
    pub fn stall_console_after_bytes(&self, bytes: u64) -> &Self {
        self.console(
            ConsoleFault {
                stall_after_bytes: Some(bytes),
                ..ConsoleFault::default()
            },
            Some(1),
        )
    }

    /// Removes every queued fault.
    pub fn clear(&self) {
        *self.lock() = Inner::default();
    }

    pub(crate) fn take_http(&self) -> Option<HttpFault> {
        self.lock().http.pop_front()
    }

    pub(crate) fn take_deployment_failure(&self) -> Option<String> {
        self.lock().failing_deployments.pop_front()
    }

    pub(crate) fn take_refused_upgrade(&self) -> bool {
        let mut inner = self.lock();
        if inner.refused_upgrades > 0 {
            inner.refused_upgrades -= 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn take_console(&self) -> ConsoleFault {
        let mut inner = self.lock();
        let Some((fault, remaining)) = inner.console.clone() else {
            return ConsoleFault::default();
        };
        match remaining {
            Some(0) | Some(1) => inner.console = None,
            Some(n) => inner.console = Some((fault.clone(), Some(n - 1))),
            None => {}
        }
        fault
    }
}

/// A fault request for the admin endpoint `POST /_emulator/faults`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
#[non_exhaustive]
pub enum FaultRequest {
    /// Queue an HTTP fault `count` times.
    Http {
        /// The answer.
        #[serde(flatten)]
        http: HttpFault,
        /// How many requests get it.
        #[serde(default = "one")]
        count: u32,
    },
    /// Fail the next deployment.
    FailDeployment {
        /// The reason its deploy step gives.
        reason: String,
    },
    /// Refuse exec upgrades.
    RefuseUpgrade {
        /// How many.
        #[serde(default = "one")]
        count: u32,
    },
    /// Misbehave in console sessions.
    Console {
        /// How.
        #[serde(flatten)]
        console: ConsoleFault,
        /// How many sessions (absent: all).
        #[serde(default)]
        sessions: Option<u32>,
    },
    /// Remove every queued fault.
    Clear,
}

fn one() -> u32 {
    1
}

impl Faults {
    /// Applies a request from the admin endpoint.
    pub fn apply(&self, request: FaultRequest) {
        match request {
            FaultRequest::Http { http, count } => {
                self.http(http, count);
            }
            FaultRequest::FailDeployment { reason } => {
                self.fail_next_deployment(reason);
            }
            FaultRequest::RefuseUpgrade { count } => {
                self.refuse_upgrades(count);
            }
            FaultRequest::Console { console, sessions } => {
                self.console(console, sessions);
            }
            FaultRequest::Clear => self.clear(),
        }
    }
}
