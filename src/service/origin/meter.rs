//! What the origin has served: the server side of the penalty meter, shared by every request
//! handler and readable while the server runs.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Live counters. Share it as `Arc<OriginMeter>`; [`OriginMeter::snapshot`] reads it.
#[derive(Debug, Default)]
pub struct OriginMeter {
    inner: Mutex<OriginStats>,
}

/// A reading of the meter; also the JSON of `GET /stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginStats {
    /// Body bytes handed to client connections (headers not included).
    pub bytes_served: u64,
    /// Requests answered, whatever their status, `/stats` excepted.
    pub requests: u64,
    /// 206 answers.
    pub partial_responses: u64,
    /// 200 answers with a file.
    pub full_responses: u64,
    /// 4xx/5xx answers (not found, refused paths, 416, wrong method).
    pub refused: u64,
    /// Per served file (its path relative to the content root).
    pub files: BTreeMap<String, FileStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStats {
    pub requests: u64,
    pub bytes_served: u64,
}

/// How a request was answered, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    Partial,
    Full,
    Refused,
}

impl OriginMeter {
    pub fn new() -> OriginMeter {
        OriginMeter::default()
    }

    pub fn snapshot(&self) -> OriginStats {
        self.lock().clone()
    }

    pub fn bytes_served(&self) -> u64 {
        self.lock().bytes_served
    }

    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// Counts one answered request; `file` is the served file's key, if one was found.
    pub(super) fn record_request(&self, answer: Answer, file: Option<&str>) {
        let mut stats = self.lock();
        stats.requests += 1;
        match answer {
            Answer::Partial => stats.partial_responses += 1,
            Answer::Full => stats.full_responses += 1,
            Answer::Refused => stats.refused += 1,
        }
        // Only files that exist get an entry, so the map is bounded by the content.
        if let Some(key) = file {
            stats.files.entry(key.to_string()).or_default().requests += 1;
        }
    }

    /// Counts body bytes as they are handed to the connection.
    pub(super) fn record_body(&self, file: &str, bytes: u64) {
        let mut stats = self.lock();
        stats.bytes_served += bytes;
        if let Some(entry) = stats.files.get_mut(file) {
            entry.bytes_served += bytes;
        }
    }

    /// Plain counters: a panic elsewhere cannot leave them half-updated in a way that matters.
    fn lock(&self) -> std::sync::MutexGuard<'_, OriginStats> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Display for OriginStats {
    /// The one-line summary printed when the origin stops.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "bytes_served={} requests={} partial={} full={} refused={}",
            self.bytes_served,
            self.requests,
            self.partial_responses,
            self.full_responses,
            self.refused
        )
    }
}
