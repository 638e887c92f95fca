//! The tracker protocols, pure: HTTP announce/scrape requests and responses for both the client
//! and our tracker, percent-encoding of raw bytes, BEP 12 tier bookkeeping, and BEP 15's UDP
//! packets (`udp`).

mod percent;
mod query;
mod request;
mod response;
mod tiers;
pub mod udp;

/// The shared bencode reader's error, as carried by [`TrackerProtoError::NotBencode`].
pub use crate::proto::bencode::BencodeError;
pub use percent::{PercentError, percent_decode, percent_encode};
pub use query::{AnnounceQuery, MAX_QUERY_LEN, MAX_SCRAPE_HASHES, ScrapeQuery};
pub use request::{AnnounceEvent, AnnounceRequest, scrape_url};
pub use response::{
    AnnounceResponse, MAX_PEERS_PER_RESPONSE, MAX_SCRAPE_FILES, PeerListFormat, ScrapeResponse,
    ScrapeStats, TrackerPeer, encode_failure,
};
pub use tiers::{SkippedTracker, TrackerPos, TrackerTiers};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackerProtoError {
    /// The tracker refused the request and said why.
    #[error("tracker refused the announce: {0}")]
    Failure(String),
    #[error("tracker reply is not bencode ({0}); is the URL really a tracker's announce URL?")]
    NotBencode(BencodeError),
    #[error("tracker replied with an HTML page instead of bencode; check the announce URL")]
    Html,
    #[error("tracker reply is not a bencoded dictionary")]
    NotADictionary,
    #[error("tracker reply has a malformed '{0}' field")]
    BadField(&'static str),
    #[error("compact peer list is {len} bytes, not a multiple of {width}")]
    CompactLength { len: usize, width: usize },
    #[error("request is missing the '{0}' parameter")]
    MissingParameter(&'static str),
    #[error("request has a malformed '{0}' parameter")]
    BadParameter(&'static str),
    #[error("'{name}' must be exactly 20 bytes after percent-decoding, got {len}")]
    NotTwentyBytes { name: &'static str, len: usize },
    #[error("request query is longer than {0} bytes")]
    QueryTooLong(usize),
    #[error("scrape names more than {0} torrents")]
    TooManyHashes(usize),
    #[error(transparent)]
    Percent(#[from] PercentError),
}

#[cfg(test)]
mod tests;
