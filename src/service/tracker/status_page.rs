//! The tracker's human-readable status page: torrents with their counts, and their peers.

use std::fmt::Write as _;
use std::time::Instant;

use super::state::TorrentView;

/// Renders the page. Every value shown is a number or an address, but text is escaped anyway.
pub(crate) fn render(torrents: &[TorrentView], now: Instant) -> String {
    let mut html = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>btvod tracker</title>\
         <style>body{font-family:sans-serif}table{border-collapse:collapse;margin-bottom:1em}\
         td,th{border:1px solid #aaa;padding:2px 8px;text-align:right}\
         td:first-child{text-align:left;font-family:monospace}</style></head><body>\n",
    );
    let _ = writeln!(
        html,
        "<h1>btvod tracker</h1><p>{} torrents</p>",
        torrents.len()
    );
    html.push_str(
        "<table><tr><th>info-hash</th><th>seeders</th><th>leechers</th><th>completed</th></tr>\n",
    );
    for t in torrents {
        let _ = writeln!(
            html,
            "<tr><td><a href=\"#{hash}\">{hash}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            t.stats.complete,
            t.stats.incomplete,
            t.stats.downloaded,
            hash = t.info_hash.to_hex(),
        );
    }
    html.push_str("</table>\n");
    for t in torrents {
        let _ = writeln!(
            html,
            "<h2 id=\"{hash}\">{hash}</h2>\n<table><tr><th>address</th><th>uploaded</th>\
             <th>downloaded</th><th>left</th><th>last seen</th></tr>",
            hash = t.info_hash.to_hex()
        );
        for p in &t.peers {
            let left = p.left.map_or_else(|| "?".to_owned(), |l| l.to_string());
            let ago = now.saturating_duration_since(p.last_seen).as_secs();
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{ago} s ago</td></tr>",
                escape(&p.addr.to_string()),
                p.uploaded,
                p.downloaded,
                escape(&left),
            );
        }
        html.push_str("</table>\n");
    }
    html.push_str("</body></html>\n");
    html
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
