//! Client side of an HTTP announce and scrape: typed request to URL (BEP 3, BEP 23, BEP 48).

use std::fmt::Write as _;

use url::Url;

use super::percent::percent_encode;
use crate::proto::{InfoHash, PeerId};

/// The `event` parameter of an announce; regular re-announces carry none.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
pub enum AnnounceEvent {
    Started,
    Completed,
    Stopped,
}

impl AnnounceEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AnnounceEvent::Started => "started",
            AnnounceEvent::Completed => "completed",
            AnnounceEvent::Stopped => "stopped",
        }
    }
}

/// One announce as a client sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    /// The port we accept peer connections on.
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: Option<AnnounceEvent>,
    pub numwant: Option<u32>,
    /// A per-session random number that lets the tracker recognise us across IP changes.
    pub key: Option<u32>,
    /// Echoed back from an earlier response's `tracker id`.
    pub tracker_id: Option<String>,
    /// Ask for BEP 23 compact peer lists (every modern tracker supports them).
    pub compact: bool,
}

impl AnnounceRequest {
    /// The full announce URL: `announce_url` with our parameters appended to any query it
    /// already has (private trackers put a passkey there). A fragment is dropped.
    pub fn to_url(&self, announce_url: &Url) -> Url {
        let mut query = String::new();
        if let Some(existing) = announce_url.query().filter(|q| !q.is_empty()) {
            query.push_str(existing);
            query.push('&');
        }
        // Writing to a String cannot fail.
        let _ = write!(
            query,
            "info_hash={}&peer_id={}&port={}&uploaded={}&downloaded={}&left={}&compact={}",
            percent_encode(&self.info_hash.0),
            percent_encode(&self.peer_id.0),
            self.port,
            self.uploaded,
            self.downloaded,
            self.left,
            u8::from(self.compact),
        );
        if let Some(event) = self.event {
            let _ = write!(query, "&event={}", event.as_str());
        }
        if let Some(numwant) = self.numwant {
            let _ = write!(query, "&numwant={numwant}");
        }
        if let Some(key) = self.key {
            let _ = write!(query, "&key={key:08X}");
        }
        if let Some(id) = &self.tracker_id {
            let _ = write!(query, "&trackerid={}", percent_encode(id.as_bytes()));
        }
        let mut url = announce_url.clone();
        url.set_fragment(None);
        // The query is already all unreserved characters and %XX escapes, which `Url` keeps.
        url.set_query(Some(&query));
        url
    }
}

/// The scrape URL of an announce URL, by the convention every tracker follows: the last path
/// segment `announce...` becomes `scrape...`. `None` if the tracker cannot scrape.
pub fn scrape_url(announce_url: &Url, info_hashes: &[InfoHash]) -> Option<Url> {
    let path = announce_url.path();
    let (dir, last) = path.rsplit_once('/')?;
    let rest = last.strip_prefix("announce")?;
    let mut url = announce_url.clone();
    url.set_path(&format!("{dir}/scrape{rest}"));
    let mut query = announce_url.query().unwrap_or_default().to_owned();
    for hash in info_hashes {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str("info_hash=");
        query.push_str(&percent_encode(&hash.0));
    }
    url.set_fragment(None);
    url.set_query(if query.is_empty() { None } else { Some(&query) });
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tracker::percent::percent_decode;

    fn request() -> AnnounceRequest {
        let mut hash = [0u8; 20];
        for (i, b) in hash.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(200);
        }
        AnnounceRequest {
            info_hash: InfoHash(hash),
            peer_id: PeerId(*b"-BV0100-abc def+&=%1"),
            port: 6881,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event: Some(AnnounceEvent::Started),
            numwant: Some(80),
            key: Some(0xDEAD),
            tracker_id: Some("t 1".into()),
            compact: true,
        }
    }

    fn param<'a>(url: &'a Url, name: &str) -> Vec<&'a str> {
        url.query()
            .unwrap_or_default()
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v)
            .collect()
    }

    #[test]
    fn binary_fields_survive_the_url_exactly() {
        let req = request();
        let url = req.to_url(&Url::parse("http://t.example:8080/announce").unwrap());
        // Re-parse from text, as a tracker would receive it.
        let url = Url::parse(url.as_str()).unwrap();
        let hash = percent_decode(param(&url, "info_hash")[0]).unwrap();
        assert_eq!(hash, req.info_hash.0);
        let id = percent_decode(param(&url, "peer_id")[0]).unwrap();
        assert_eq!(id, req.peer_id.0);
        assert_eq!(param(&url, "port"), ["6881"]);
        assert_eq!(param(&url, "left"), ["3"]);
        assert_eq!(param(&url, "event"), ["started"]);
        assert_eq!(param(&url, "numwant"), ["80"]);
        assert_eq!(param(&url, "compact"), ["1"]);
        assert_eq!(param(&url, "key"), ["0000DEAD"]);
        assert_eq!(param(&url, "trackerid"), ["t%201"]);
    }

    #[test]
    fn existing_query_is_kept_and_fragment_dropped() {
        let mut req = request();
        req.event = None;
        req.numwant = None;
        let base = Url::parse("https://t.example/a/announce?passkey=x1#frag").unwrap();
        let url = req.to_url(&base);
        assert!(url.query().unwrap().starts_with("passkey=x1&info_hash="));
        assert_eq!(url.fragment(), None);
        assert!(param(&url, "event").is_empty());
        assert!(param(&url, "numwant").is_empty());
        assert_eq!(url.path(), "/a/announce");
    }

    #[test]
    fn scrape_url_follows_the_convention() {
        let h = InfoHash([0xab; 20]);
        let url = scrape_url(&Url::parse("http://t/x/announce.php?pk=1").unwrap(), &[h]).unwrap();
        assert_eq!(url.path(), "/x/scrape.php");
        assert_eq!(
            url.query().unwrap(),
            format!("pk=1&info_hash={}", "%AB".repeat(20))
        );
        assert!(scrape_url(&Url::parse("http://t/tracker").unwrap(), &[h]).is_none());
    }
}
