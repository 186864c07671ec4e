//! Hands out client sessions to a backend's connection slots and gathers what they measured.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::ClientSession;
use crate::error::{Error, Result};
use crate::latency::new_histogram;
use crate::wire::Mode;

/// What every client session of one run does.
#[derive(Debug, Clone)]
pub struct SessionPlan {
    /// Echo (request/response) or sink (one-way stream).
    pub mode: Mode,
    /// Message or write size in bytes.
    pub size: usize,
    /// Sessions to hand out in all: the connection count, or for `connect` the number of
    /// connections to open one after another.
    pub sessions: u64,
    /// Messages per session, or `None` to run until the deadline.
    pub per_session: Option<u64>,
    /// When sessions stop starting messages (and, for `connect`, new sessions stop).
    pub deadline: Option<Instant>,
    /// Open loop: the time between a session's intended sends. `None` is closed loop.
    pub interval: Option<Duration>,
    /// Latency runs from before the connect (the `connect` workload), not from the send.
    pub from_connect: bool,
}

/// What all sessions of a run measured together.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Latency from the intended send time (corrected for coordinated omission), ns.
    pub corrected: Histogram<u64>,
    /// Latency from the actual send time, ns.
    pub uncorrected: Histogram<u64>,
    /// Messages completed (round trips, stream writes or connections).
    pub messages: u64,
    /// Payload bytes moved, both directions.
    pub payload_bytes: u64,
    /// Payload bytes checked against the pattern, by this side or acked by the server.
    pub bytes_verified: u64,
    /// Sessions that ran to the end.
    pub sessions: u64,
}

/// What sessions write back as they go.
#[derive(Debug)]
pub(crate) struct Shared {
    aborted: AtomicBool,
    error: Mutex<Option<Error>>,
    outcome: Mutex<Outcome>,
}

impl Shared {
    pub(crate) fn aborted(&self) -> bool {
        self.aborted.load(Ordering::Relaxed)
    }

    /// Adds a batch of (corrected, uncorrected) latencies in ns.
    pub(crate) fn record(&self, samples: &[(u64, u64)]) {
        let mut out = self.outcome.lock().expect("outcome lock");
        for &(c, u) in samples {
            out.corrected.saturating_record(c.max(1));
            out.uncorrected.saturating_record(u.max(1));
        }
    }

    pub(crate) fn add_totals(&self, messages: u64, payload: u64, verified: u64) {
        let mut out = self.outcome.lock().expect("outcome lock");
        out.messages += messages;
        out.payload_bytes += payload;
        out.bytes_verified += verified;
        out.sessions += 1;
    }
}

/// The sessions of one run, handed out one at a time to a backend's connection slots.
#[derive(Debug)]
pub struct SessionSource {
    plan: SessionPlan,
    handed: AtomicU64,
    seed: AtomicU32,
    shared: Arc<Shared>,
}

impl SessionSource {
    /// Sessions for this plan.
    pub fn new(plan: SessionPlan) -> SessionSource {
        let outcome = Outcome {
            corrected: new_histogram(),
            uncorrected: new_histogram(),
            messages: 0,
            payload_bytes: 0,
            bytes_verified: 0,
            sessions: 0,
        };
        SessionSource {
            plan,
            handed: AtomicU64::new(0),
            seed: AtomicU32::new(0),
            shared: Arc::new(Shared {
                aborted: AtomicBool::new(false),
                error: Mutex::new(None),
                outcome: Mutex::new(outcome),
            }),
        }
    }

    /// The plan.
    pub fn plan(&self) -> &SessionPlan {
        &self.plan
    }

    /// The next session to run, stamped with the current time (before its connect), or
    /// `None` when all are handed out, the deadline passed or the run failed.
    pub fn next_session(&self) -> Option<ClientSession> {
        if self.shared.aborted() {
            return None;
        }
        let now = Instant::now();
        if self.plan.from_connect && self.plan.deadline.is_some_and(|d| now >= d) {
            return None;
        }
        let index = self.handed.fetch_add(1, Ordering::Relaxed);
        if index >= self.plan.sessions {
            return None;
        }
        // Seeds spread far apart so two connections never carry the same bytes at the same
        // offsets (a crossed connection would fail verification).
        let seed = self
            .seed
            .fetch_add(97, Ordering::Relaxed)
            .wrapping_add(index as u32);
        Some(ClientSession::new(
            &self.plan,
            index,
            seed,
            now,
            self.shared.clone(),
        ))
    }

    /// Records that a session failed; the run stops handing out sessions, running sessions
    /// stop at their next message, and [`SessionSource::finish`] returns the first error.
    pub fn fail(&self, error: Error) {
        self.shared.aborted.store(true, Ordering::Relaxed);
        let mut slot = self.shared.error.lock().expect("error lock");
        if slot.is_none() {
            *slot = Some(error);
        }
    }

    /// Whether a session failed.
    pub fn failed(&self) -> bool {
        self.shared.aborted()
    }

    /// What the sessions measured.
    ///
    /// # Errors
    ///
    /// The first session error, or no bytes verified at all (a run that checked nothing
    /// proves nothing).
    pub fn finish(&self) -> Result<Outcome> {
        if let Some(e) = self.shared.error.lock().expect("error lock").clone() {
            return Err(e);
        }
        let out = self.shared.outcome.lock().expect("outcome lock").clone();
        if out.bytes_verified == 0 {
            return Err(Error::new(
                "the run verified no bytes (no message completed): nothing was measured",
            ));
        }
        Ok(out)
    }
}
