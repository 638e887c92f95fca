//! The HTTP server of `btvod stream`: a torrent's files at stable URLs for a player, with byte
//! ranges (RFC 9110: one range, open-ended and suffix forms, HEAD, 206/416), a file list at
//! `/`, `/playlist.m3u`, and `/status` (JSON). Every response body is a reader whose position
//! drives the deadlines (`reader`); only verified bytes are ever sent.

mod pages;
pub mod rate;
mod reader;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::origin::range::{self, RangeDecision};
use crate::engine::storage::Storage;
use crate::engine::torrent::{ReaderLink, TorrentStats};
use crate::policy::vod::ReaderId;
use crate::proto::metainfo::Metainfo;
pub use pages::{content_type, file_url_path};
pub use reader::PAUSE_AFTER;

/// What the server serves from.
pub struct StreamSource {
    pub meta: Arc<Metainfo>,
    pub storage: Arc<Storage>,
    pub link: ReaderLink,
    pub stats: watch::Receiver<TorrentStats>,
    /// Extra fields for `/status` kept by the caller (where R came from, ...).
    pub notes: watch::Receiver<serde_json::Map<String, serde_json::Value>>,
    /// Body bytes sent to readers, counted as each chunk is handed to its connection.
    pub sent: Arc<AtomicU64>,
}

struct Shared {
    source: StreamSource,
    next_reader: AtomicU64,
}

/// Serves the torrent's files on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    source: StreamSource,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let shared = Arc::new(Shared {
        source,
        next_reader: AtomicU64::new(1),
    });
    let app = Router::new()
        .route("/", get(pages::index))
        .route("/playlist.m3u", get(pages::playlist))
        .route("/status", get(pages::status))
        .route("/file/{index}/{*name}", get(serve_file).head(serve_file))
        .with_state(shared);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!("stream server: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // A small send buffer keeps a reader's position (the next byte the kernel has not
        // taken) close to what the player has read: on loopback an autotuned buffer holds
        // megabytes, and every reader would sit at the download frontier with its deadlines
        // seconds early.
        let _ = socket2::SockRef::from(&tcp).set_send_buffer_size(SEND_BUFFER);
        let _ = tcp.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            // hyper queues up to ~400 KiB of body unless told otherwise; at the minimum it
            // takes the next chunk only once the last one is nearly written.
            let served = hyper::server::conn::http1::Builder::new()
                .max_buf_size(MIN_HYPER_BUFFER)
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                .await;
            if let Err(e) = served {
                tracing::debug!("stream connection ended: {e}");
            }
        });
    }
}

/// Socket send buffer of each stream connection (the kernel doubles it for its bookkeeping).
const SEND_BUFFER: usize = 16 * 1024;
/// hyper's smallest write buffer.
const MIN_HYPER_BUFFER: usize = 8192;

async fn serve_file(
    State(shared): State<Arc<Shared>>,
    Path((index, _name)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let meta = &shared.source.meta;
    let Some(file) = index
        .parse::<usize>()
        .ok()
        .filter(|i| *i < meta.files.len())
    else {
        return (StatusCode::NOT_FOUND, "no such file in the torrent\n").into_response();
    };
    let Some(extent) = meta.geometry.files().get(file).map(|f| f.range()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let len = extent.end - extent.start;
    // Without validators of ours an If-Range can never match: RFC 9110 says send it all.
    let range_header = if headers.contains_key(header::IF_RANGE) {
        None
    } else {
        headers.get(header::RANGE).and_then(|v| v.to_str().ok())
    };
    let (status, span) = match range::decide(range_header, len) {
        RangeDecision::Unsatisfiable => return super::unsatisfiable(len),
        RangeDecision::Whole => (StatusCode::OK, 0..len),
        RangeDecision::Partial(span) => (StatusCode::PARTIAL_CONTENT, span),
    };
    tracing::debug!(%method, file, range = ?range_header, ?span, "stream request");
    let mut response = if method == Method::HEAD || span.is_empty() {
        Response::new(Body::empty())
    } else {
        // One chunk waits in the channel; a reader whose chunk is not taken is paused.
        let (tx, rx) = mpsc::channel(1);
        let order = reader::ReadOrder {
            id: ReaderId(shared.next_reader.fetch_add(1, Ordering::Relaxed)),
            file,
            extent,
            span: span.clone(),
        };
        let source = &shared.source;
        tokio::spawn(reader::run(
            order,
            source.link.clone(),
            Arc::clone(&source.storage),
            Arc::clone(&source.sent),
            tx,
        ));
        Response::new(Body::from_stream(tokio_stream_of(rx)))
    };
    *response.status_mut() = status;
    super::set_body_headers(
        response.headers_mut(),
        content_type(&meta.relative_path(file)),
        &span,
        len,
        status == StatusCode::PARTIAL_CONTENT,
    );
    response
}

/// The body's chunks as a stream.
fn tokio_stream_of(
    mut rx: mpsc::Receiver<Result<bytes::Bytes, io::Error>>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
