//! The small pages of the stream server: the file list (`/`), the playlist (`/playlist.m3u`),
//! the live status (`/status`), and each file's URL and content type.

use std::path::Path;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Json, Response};
use serde_json::{Value, json};

use super::Shared;
use crate::proto::metainfo::Metainfo;

/// The path of file `index` on the server: `/file/INDEX/NAME`, the name percent-encoded by
/// segment (the index decides; the name is there for the player's title and extension).
pub fn file_url_path(meta: &Metainfo, index: usize) -> String {
    let mut path = format!("/file/{index}");
    for part in meta.relative_path(index).iter() {
        path.push('/');
        path.push_str(&encode_segment(&part.to_string_lossy()));
    }
    path
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The media type players expect for a file name; `application/octet-stream` otherwise.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "mkv" => "video/x-matroska",
        "webm" => "video/webm",
        "avi" => "video/x-msvideo",
        "mov" => "video/quicktime",
        "ts" => "video/mp2t",
        "ogv" => "video/ogg",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "flac" => "audio/flac",
        "ogg" | "oga" => "audio/ogg",
        "srt" => "application/x-subrip",
        "vtt" => "text/vtt",
        "ass" | "ssa" => "text/x-ssa",
        "txt" | "nfo" => "text/plain; charset=utf-8",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        _ => "application/octet-stream",
    }
}

/// `http://HOST` from the request, so links work on whatever address the client used.
fn origin_of(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .map(|h| format!("http://{h}"))
        .unwrap_or_default()
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(super) async fn index(State(shared): State<Arc<Shared>>) -> Html<String> {
    let meta = &shared.source.meta;
    let mut rows = String::new();
    for (i, f) in meta.files.iter().enumerate() {
        let name = meta.relative_path(i).display().to_string();
        rows.push_str(&format!(
            "<li><a href=\"{}\">{}</a> ({} bytes)</li>\n",
            escape_html(&file_url_path(meta, i)),
            escape_html(&name),
            f.length
        ));
    }
    Html(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{name}</title></head>\n\
         <body><h1>{name}</h1>\n<p><a href=\"/playlist.m3u\">playlist.m3u</a> · \
         <a href=\"/status\">status</a></p>\n<ul>\n{rows}</ul></body></html>\n",
        name = escape_html(&meta.name),
    ))
}

pub(super) async fn playlist(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let meta = &shared.source.meta;
    let origin = origin_of(&headers);
    let mut out = String::from("#EXTM3U\n");
    for i in 0..meta.files.len() {
        let name = meta.relative_path(i).display().to_string();
        out.push_str(&format!(
            "#EXTINF:-1,{name}\n{origin}{}\n",
            file_url_path(meta, i)
        ));
    }
    (
        [(header::CONTENT_TYPE, "audio/x-mpegurl; charset=utf-8")],
        out,
    )
        .into_response()
}

pub(super) async fn status(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let s = shared.source.stats.borrow().clone();
    let notes = shared.source.notes.borrow().clone();
    let v = s.vod.clone().unwrap_or_default();
    let readers: Vec<Value> = v
        .readers
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "file_offset": r.file_offset,
                "position": r.position,
                "position_s": r.position as f64 / v.rate.max(1) as f64,
                "buffered_bytes": r.buffered,
                "paused": r.paused,
                "waiting": r.waiting,
            })
        })
        .collect();
    let mut out = json!({
        "t_s": v.now.as_secs_f64(),
        "server_bytes": v.ledger.penalty_bytes,
        "peer_bytes": v.ledger.peer_bytes,
        "downloaded_bytes": s.downloaded,
        "uploaded_bytes": s.uploaded,
        "stall_s": v.stall.as_secs_f64(),
        "reader_wait_s": v.reader_wait.as_secs_f64(),
        "seeks": v.seeks,
        "abandoned_bytes": v.ledger.abandoned_bytes,
        "time_to_first_byte_s": v.first_byte_at.map(|t| t.as_secs_f64()),
        "rate_bytes_per_s": v.rate,
        "movie_bytes": v.movie_bytes,
        "position": v.position,
        "buffer_ahead_s": v.buffer_ahead(),
        "pieces_have": s.pieces_have,
        "piece_count": s.piece_count,
        "pieces_from_server": v.ledger.pieces_from_server,
        "peers": s.peers,
        "download_rate": s.download_rate,
        "upload_rate": s.upload_rate,
        "readers": readers,
        "server_error": v.server_error,
    });
    if let Some(obj) = out.as_object_mut() {
        obj.extend(notes);
    }
    Json(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type(Path::new("a/Movie.MP4")), "video/mp4");
        assert_eq!(content_type(Path::new("b.mkv")), "video/x-matroska");
        assert_eq!(content_type(Path::new("b.srt")), "application/x-subrip");
        assert_eq!(content_type(Path::new("noext")), "application/octet-stream");
    }

    #[test]
    fn names_are_percent_encoded_by_segment() {
        assert_eq!(
            encode_segment("My Movie (2024).mkv"),
            "My%20Movie%20%282024%29.mkv"
        );
        assert_eq!(encode_segment("é/x"), "%C3%A9%2Fx");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<a href=\"x\">&"),
            "&lt;a href=&quot;x&quot;&gt;&amp;"
        );
    }
}
