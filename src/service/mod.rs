//! Servers a user starts: the built-in tracker, the metered VoD origin, the HTTP server that
//! streams a torrent's files to a player while they download, and the delaying TCP relay that
//! gives local worlds link latency.

pub mod origin;
pub mod relay;
pub mod stream;
pub mod tracker;

use std::ops::Range;

use axum::http::{HeaderMap, HeaderValue, header};

/// The headers of a file body both HTTP servers send: `Accept-Ranges`, the type, the length
/// of `span`, and for a 206 which bytes of the `len`-byte file it holds.
/// 416 with the `Content-Range: bytes */LEN` RFC 9110 asks for.
fn unsatisfiable(len: u64) -> axum::response::Response {
    use axum::response::IntoResponse;
    let headers = [
        (header::CONTENT_RANGE, format!("bytes */{len}")),
        (header::ACCEPT_RANGES, "bytes".to_string()),
    ];
    (axum::http::StatusCode::RANGE_NOT_SATISFIABLE, headers).into_response()
}

fn set_body_headers(
    out: &mut HeaderMap,
    content_type: &'static str,
    span: &Range<u64>,
    len: u64,
    partial: bool,
) {
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    out.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(span.end - span.start),
    );
    if partial
        && let Ok(value) =
            HeaderValue::from_str(&format!("bytes {}-{}/{len}", span.start, span.end - 1))
    {
        out.insert(header::CONTENT_RANGE, value);
    }
}
