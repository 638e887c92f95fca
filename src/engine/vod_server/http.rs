//! HTTP(S) VoD servers: BEP 19 URL layout, HEAD checks, and Range requests that resume where
//! a failed attempt stopped, so no byte is asked for (or counted) twice.

use std::ops::RangeInclusive;
use std::sync::Mutex;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use tokio::time::{Instant, timeout};
use url::Url;

use super::{Estimator, VodServerConfig, VodServerError, VodServerMeter};
use crate::engine::announce::redacted;
use crate::proto::geometry::FileSlice;
use crate::proto::metainfo::Metainfo;

pub(super) struct HttpOrigin {
    client: reqwest::Client,
    config: VodServerConfig,
    /// One URL per file of the torrent, with its torrent length.
    files: Vec<(Url, u64)>,
    shown: String,
}

impl HttpOrigin {
    pub(super) fn new(
        url: &str,
        meta: &Metainfo,
        config: VodServerConfig,
    ) -> Result<HttpOrigin, VodServerError> {
        let base = Url::parse(url).map_err(|e| VodServerError::InvalidUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let files = file_urls(&base, meta)?;
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(format!("btvod/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(VodServerError::Client)?;
        Ok(HttpOrigin {
            client,
            config,
            files,
            shown: redacted(&base),
        })
    }

    pub(super) fn shown(&self) -> &str {
        &self.shown
    }

    /// A HEAD per non-empty file (up to the configured number): reachable, 2xx, the torrent's
    /// length, and ranges not refused.
    pub(super) async fn check(
        &self,
        meter: &VodServerMeter,
        estimator: &Mutex<Estimator>,
    ) -> Result<(), VodServerError> {
        let files = self.files.iter().filter(|(_, len)| *len > 0);
        let count = files.clone().count();
        if count > self.config.max_checked_files {
            tracing::info!(
                "checking the first {} of {count} files on the VoD server",
                self.config.max_checked_files
            );
        }
        for (url, expected) in files.take(self.config.max_checked_files) {
            let shown = redacted(url);
            let sent = Instant::now();
            let response = self.send(self.client.head(url.clone()), &shown).await?;
            meter.add_request();
            lock(estimator).observe_first_byte(sent.elapsed());
            let status = response.status();
            if !status.is_success() {
                return Err(VodServerError::Status {
                    url: shown,
                    status: status.as_u16(),
                });
            }
            let headers = response.headers();
            if header_str(headers.get(ACCEPT_RANGES))
                .is_some_and(|v| v.eq_ignore_ascii_case("none"))
            {
                return Err(VodServerError::NoRanges {
                    url: shown,
                    detail: "Accept-Ranges: none".into(),
                });
            }
            match header_str(headers.get(CONTENT_LENGTH)).and_then(|v| v.parse::<u64>().ok()) {
                Some(actual) if actual != *expected => {
                    return Err(VodServerError::LengthMismatch {
                        what: shown,
                        expected: *expected,
                        actual,
                    });
                }
                Some(_) => {}
                None => tracing::warn!(url = %shown, "VoD server gave no Content-Length"),
            }
        }
        Ok(())
    }

    /// Appends the slice's bytes to `out`, retrying transient failures with backoff.
    pub(super) async fn fetch_slice(
        &self,
        slice: FileSlice,
        out: &mut Vec<u8>,
        meter: &VodServerMeter,
        estimator: &Mutex<Estimator>,
    ) -> Result<(), VodServerError> {
        let Some((url, _)) = self.files.get(slice.file) else {
            return Err(VodServerError::Task(format!("no file {}", slice.file)));
        };
        let shown = redacted(url);
        let first = slice.file_offset;
        let last = slice.file_offset + slice.len - 1;
        let before = out.len() as u64;
        let mut attempt = 1;
        loop {
            let have = out.len() as u64 - before;
            let result = self
                .request_range(url, &shown, first + have..=last, out, meter, estimator)
                .await;
            let error = match result {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            if !error.is_transient() || attempt >= self.config.max_attempts {
                tracing::warn!(url = %shown, attempt, "VoD server fetch failed: {error}");
                return Err(if attempt > 1 {
                    VodServerError::GaveUp {
                        attempts: attempt,
                        last: Box::new(error),
                    }
                } else {
                    error
                });
            }
            let wait = self.backoff(attempt);
            tracing::info!(url = %shown, attempt, ?wait, "VoD server fetch failed, retrying: {error}");
            meter.add_retry();
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    fn backoff(&self, attempt: u32) -> std::time::Duration {
        let factor = 1u32 << (attempt.saturating_sub(1)).min(16);
        self.config
            .backoff_initial
            .saturating_mul(factor)
            .min(self.config.backoff_max)
    }

    /// One Range request; appends whatever body bytes arrive (all counted), then says whether
    /// the whole span came.
    async fn request_range(
        &self,
        url: &Url,
        shown: &str,
        span: RangeInclusive<u64>,
        out: &mut Vec<u8>,
        meter: &VodServerMeter,
        estimator: &Mutex<Estimator>,
    ) -> Result<(), VodServerError> {
        let (first, last) = (*span.start(), *span.end());
        let expected = last - first + 1;
        let request = self
            .client
            .get(url.clone())
            .header(RANGE, format!("bytes={first}-{last}"));
        let sent = Instant::now();
        let mut response = self.send(request, shown).await?;
        meter.add_request();
        lock(estimator).observe_first_byte(sent.elapsed());
        check_range_answer(&response, shown, first, last)?;

        let body_started = Instant::now();
        let mut received = 0u64;
        loop {
            let chunk = match timeout(self.config.stall_timeout, response.chunk()).await {
                Err(_) => {
                    return Err(VodServerError::Stalled {
                        url: shown.to_string(),
                        timeout: self.config.stall_timeout,
                    });
                }
                Ok(Err(source)) => {
                    return Err(VodServerError::Transport {
                        url: shown.to_string(),
                        source,
                    });
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => chunk,
            };
            let len = chunk.len() as u64;
            meter.add_bytes(len);
            let keep = expected.saturating_sub(received).min(len);
            out.extend_from_slice(chunk.get(..keep as usize).unwrap_or_default());
            received += len;
        }
        if received != expected {
            return Err(VodServerError::WrongBodyLength {
                url: shown.to_string(),
                expected,
                got: received,
            });
        }
        lock(estimator).observe_body(received, body_started.elapsed());
        Ok(())
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        shown: &str,
    ) -> Result<reqwest::Response, VodServerError> {
        match timeout(self.config.response_timeout, request.send()).await {
            Err(_) => Err(VodServerError::Timeout {
                url: shown.to_string(),
                timeout: self.config.response_timeout,
            }),
            Ok(Err(source)) if source.is_connect() => Err(VodServerError::Unreachable {
                url: shown.to_string(),
                source,
            }),
            Ok(Err(source)) => Err(VodServerError::Transport {
                url: shown.to_string(),
                source,
            }),
            Ok(Ok(response)) => Ok(response),
        }
    }
}

/// A 206 whose `Content-Range` is exactly the span asked for, or a 200 when the span was the
/// whole file; anything else is refused before its body is read.
fn check_range_answer(
    response: &reqwest::Response,
    shown: &str,
    first: u64,
    last: u64,
) -> Result<(), VodServerError> {
    let status = response.status();
    let no_ranges = |detail: String| VodServerError::NoRanges {
        url: shown.to_string(),
        detail,
    };
    match status {
        StatusCode::PARTIAL_CONTENT => {
            let header = header_str(response.headers().get(CONTENT_RANGE));
            match header.and_then(parse_content_range) {
                Some((a, b)) if a == first && b == last => Ok(()),
                _ => Err(no_ranges(format!(
                    "asked for bytes {first}-{last}, got Content-Range {}",
                    header.unwrap_or("(none)")
                ))),
            }
        }
        StatusCode::OK => {
            let whole = header_str(response.headers().get(CONTENT_LENGTH))
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|len| first == 0 && len == last + 1);
            if whole {
                Ok(())
            } else {
                Err(no_ranges(format!(
                    "asked for bytes {first}-{last}, got the whole file (200)"
                )))
            }
        }
        status => Err(VodServerError::Status {
            url: shown.to_string(),
            status: status.as_u16(),
        }),
    }
}

/// `bytes a-b/len` or `bytes a-b/*` -> (a, b).
fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (span, _total) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

fn header_str(value: Option<&reqwest::header::HeaderValue>) -> Option<&str> {
    value.and_then(|v| v.to_str().ok())
}

fn lock(estimator: &Mutex<Estimator>) -> std::sync::MutexGuard<'_, Estimator> {
    estimator.lock().unwrap_or_else(|e| e.into_inner())
}

/// BEP 19: a single-file torrent's URL is the file (a URL ending in `/` gets the name
/// appended); a multi-file torrent's files are at `URL/<name>/<path...>`.
fn file_urls(base: &Url, meta: &Metainfo) -> Result<Vec<(Url, u64)>, VodServerError> {
    let not_a_base = || VodServerError::InvalidUrl {
        url: base.to_string(),
        reason: "it cannot hold a path".into(),
    };
    if meta.is_single_file {
        let length = meta.files.first().map_or(0, |f| f.length);
        let mut url = base.clone();
        if url.path().ends_with('/') {
            url.path_segments_mut()
                .map_err(|()| not_a_base())?
                .pop_if_empty()
                .push(&meta.name);
        }
        return Ok(vec![(url, length)]);
    }
    meta.files
        .iter()
        .map(|entry| {
            let mut url = base.clone();
            url.path_segments_mut()
                .map_err(|()| not_a_base())?
                .pop_if_empty()
                .push(&meta.name)
                .extend(&entry.path);
            Ok((url, entry.length))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::make_torrent::{MakeTorrentOptions, make_torrent};

    fn torrent_of(path: &std::path::Path) -> Metainfo {
        let opts = MakeTorrentOptions {
            path: path.to_path_buf(),
            ..MakeTorrentOptions::default()
        };
        Metainfo::from_bytes(&make_torrent(&opts, &mut |_, _| {}).unwrap()).unwrap()
    }

    fn urls(base: &str, meta: &Metainfo) -> Vec<String> {
        let base = Url::parse(base).unwrap();
        file_urls(&base, meta)
            .unwrap()
            .into_iter()
            .map(|(url, _)| url.to_string())
            .collect()
    }

    #[test]
    fn multi_file_urls_follow_bep_19_and_are_encoded() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("my show");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a b.bin"), b"abc").unwrap();
        std::fs::write(root.join("sub/100%.bin"), b"d").unwrap();
        let meta = torrent_of(&root);
        let expected = [
            "http://h:1/pub/my%20show/a%20b.bin",
            "http://h:1/pub/my%20show/sub/100%25.bin",
        ];
        assert_eq!(urls("http://h:1/pub/", &meta), expected);
        assert_eq!(urls("http://h:1/pub", &meta), expected);
        assert_eq!(
            urls("http://h:1/?key=k", &meta)[0],
            "http://h:1/my%20show/a%20b.bin?key=k"
        );
    }

    #[test]
    fn a_single_file_url_is_the_file_unless_it_ends_in_a_slash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("film.mkv");
        std::fs::write(&path, b"abc").unwrap();
        let meta = torrent_of(&path);
        assert_eq!(urls("http://h/x/copy.mkv", &meta), ["http://h/x/copy.mkv"]);
        assert_eq!(urls("http://h/x/", &meta), ["http://h/x/film.mkv"]);
        assert_eq!(urls("http://h", &meta), ["http://h/film.mkv"]);
    }

    #[test]
    fn content_ranges_are_read_strictly() {
        assert_eq!(parse_content_range("bytes 0-99/1000"), Some((0, 99)));
        assert_eq!(parse_content_range("bytes 5-5/*"), Some((5, 5)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }
}
