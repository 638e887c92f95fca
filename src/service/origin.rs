//! The metered VoD origin: serves a file or a directory over HTTP with byte ranges (GET and
//! HEAD), optionally slowed to model a distant server, and counts every body byte it sends.
//!
//! Paths follow BEP 19 web-seed layout (see [`content`]); ranges follow RFC 9110 with one
//! documented simplification: of several ranges only the first is served (see [`range`]).
//! `GET /stats` returns the meter as JSON ([`OriginStats`]) and is not itself counted, so a
//! file called `stats` at the top of a directory is reachable only as `/<dir name>/stats`.
//!
//! The byte meter counts body bytes as they are handed to the connection. When every
//! response is read to its end (as btvod's fetcher does) it equals what clients received; a
//! client that hangs up mid-body may leave up to a socket buffer counted but unread.

mod body;
mod content;
mod meter;
pub mod range;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use body::{BodySource, Pacer};
use content::{ContentRoot, LookupError};
use meter::Answer;
pub use meter::{FileStats, OriginMeter, OriginStats};
use range::RangeDecision;

#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// A regular file or a directory.
    pub content: PathBuf,
    /// Wait this long before answering each request (models a distant server).
    pub latency: Duration,
    /// Send bodies at most this many bytes per second in total (no burst); `None`: unlimited.
    pub rate: Option<u64>,
    /// The meter. Keep a clone to read it while the server runs.
    pub meter: Arc<OriginMeter>,
    /// After shutdown is asked, bodies still streaming get this long to finish, then are cut.
    pub shutdown_grace: Duration,
}

impl OriginConfig {
    /// Serves `content` as fast as possible with a fresh meter.
    pub fn new(content: impl Into<PathBuf>) -> OriginConfig {
        OriginConfig {
            content: content.into(),
            latency: Duration::ZERO,
            rate: None,
            meter: Arc::new(OriginMeter::new()),
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

struct Shared {
    content: ContentRoot,
    config: OriginConfig,
    pacer: Option<Arc<Pacer>>,
    /// Cuts bodies still streaming once the shutdown grace has passed.
    stop_bodies: CancellationToken,
}

/// Serves `config.content` on `listener` until `shutdown` completes, then returns the final
/// meter reading. Fails at once if the content cannot be opened.
pub async fn serve(
    listener: TcpListener,
    config: OriginConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<OriginStats> {
    let path = config.content.clone();
    let content = tokio::task::spawn_blocking(move || ContentRoot::open(&path))
        .await
        .map_err(std::io::Error::other)??;
    let meter = config.meter.clone();
    let grace = config.shutdown_grace;
    let shared = Arc::new(Shared {
        content,
        pacer: config.rate.map(|rate| Arc::new(Pacer::new(rate))),
        config,
        stop_bodies: CancellationToken::new(),
    });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(
            content = %shared.content.path().display(),
            "origin listening on http://{addr}/"
        );
    }
    let app = Router::new()
        .route("/stats", get(stats))
        .fallback(serve_file)
        .with_state(shared.clone());

    let asked = CancellationToken::new();
    let signal = {
        let asked = asked.clone();
        async move {
            shutdown.await;
            asked.cancel();
        }
    };
    let stop_bodies = shared.stop_bodies.clone();
    let cutter = tokio::spawn(async move {
        asked.cancelled().await;
        tokio::time::sleep(grace).await;
        stop_bodies.cancel();
    });
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(signal)
        .await;
    cutter.abort();
    result?;
    Ok(meter.snapshot())
}

async fn stats(State(shared): State<Arc<Shared>>) -> Json<OriginStats> {
    Json(shared.config.meter.snapshot())
}

async fn serve_file(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let meter = &shared.config.meter;
    if !shared.config.latency.is_zero() {
        tokio::time::sleep(shared.config.latency).await;
    }
    if method != Method::GET && method != Method::HEAD {
        meter.record_request(Answer::Refused, None);
        let allow = [(header::ALLOW, "GET, HEAD")];
        return (StatusCode::METHOD_NOT_ALLOWED, allow).into_response();
    }
    let content = shared.content.clone();
    let path = uri.path().to_string();
    let found = tokio::task::spawn_blocking(move || content.lookup(&path)).await;
    let served = match found {
        Ok(Ok(served)) => served,
        Ok(Err(e)) => {
            meter.record_request(Answer::Refused, None);
            return refusal(&uri, e);
        }
        Err(e) => {
            meter.record_request(Answer::Refused, None);
            tracing::error!(path = uri.path(), "file lookup task failed: {e}");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let len = served.len;
    // Without validators of ours an If-Range can never match: RFC 9110 says send it all.
    let range_header = if headers.contains_key(header::IF_RANGE) {
        None
    } else {
        headers.get(header::RANGE).and_then(|v| v.to_str().ok())
    };
    let decision = range::decide(range_header, len);
    tracing::debug!(%method, path = uri.path(), range = ?range_header, ?decision, "origin request");
    let (status, span) = match decision {
        RangeDecision::Unsatisfiable => {
            meter.record_request(Answer::Refused, Some(&served.key));
            return super::unsatisfiable(len);
        }
        RangeDecision::Whole => (StatusCode::OK, 0..len),
        RangeDecision::Partial(span) => (StatusCode::PARTIAL_CONTENT, span),
    };
    let answer = if status == StatusCode::OK {
        Answer::Full
    } else {
        Answer::Partial
    };
    meter.record_request(answer, Some(&served.key));

    let mut response = if method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from_stream(body::chunks(BodySource {
            file: Arc::new(served.file),
            range: span.clone(),
            key: served.key,
            meter: meter.clone(),
            pacer: shared.pacer.clone(),
            stop: shared.stop_bodies.clone(),
        })))
    };
    *response.status_mut() = status;
    super::set_body_headers(
        response.headers_mut(),
        "application/octet-stream",
        &span,
        len,
        status == StatusCode::PARTIAL_CONTENT,
    );
    response
}

fn refusal(uri: &Uri, error: LookupError) -> Response {
    match error {
        LookupError::NotFound => StatusCode::NOT_FOUND.into_response(),
        LookupError::Forbidden(reason) => {
            tracing::warn!(path = uri.path(), "refused: {reason}");
            (StatusCode::FORBIDDEN, format!("refused path: {reason}\n")).into_response()
        }
        LookupError::Io { .. } => {
            tracing::error!(path = uri.path(), "{error}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
