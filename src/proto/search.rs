//! Nutella's search on the LAN: a query multicast by `btvod search`, and the answer a peer that
//! serves a matching torrent sends back to the asker alone. Both are short text datagrams,
//! read into typed values (capped, never panicking); an answer is never longer than
//! `MAX_ANSWER` bytes, so the protocol cannot amplify much traffic.
//!
//! ```text
//! BTVOD-SEARCH 1\r\nId: <16 hex digits>\r\nQuery: <words>\r\n\r\n
//! BTVOD-FOUND 1\r\nId: <the query's>\r\nInfohash: <40 hex>\r\nSize: <bytes>\r\nPort: <peer port>\r\nName: <name>\r\n\r\n
//! ```

use std::net::Ipv4Addr;

use super::InfoHash;
use super::lsd::header_lines;

/// The group and port queries go to (LSD's group, a port of its own).
pub const SEARCH_GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 192, 152, 143);
pub const SEARCH_PORT: u16 = 6772;
/// Longest query read, and longest answer ever sent.
pub const MAX_QUERY: usize = 512;
pub const MAX_ANSWER: usize = 400;
/// Longest name put in an answer (longer names are cut at a character boundary).
const MAX_NAME: usize = 200;

const QUERY_LINE: &str = "BTVOD-SEARCH 1";
const ANSWER_LINE: &str = "BTVOD-FOUND 1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    #[error("a datagram of {0} bytes, over the limit")]
    TooLong(usize),
    #[error("not a btvod search datagram")]
    NotSearch,
    #[error("`{0}` is missing or malformed")]
    BadField(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u64,
    pub words: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub id: u64,
    pub info_hash: InfoHash,
    pub size: u64,
    pub port: u16,
    pub name: String,
}

impl Query {
    pub fn encode(&self) -> Vec<u8> {
        let words: String = self.words.chars().filter(|c| !c.is_control()).collect();
        let mut out = format!(
            "{QUERY_LINE}\r\nId: {:016x}\r\nQuery: {words}\r\n\r\n",
            self.id
        );
        out.truncate(MAX_QUERY);
        out.into_bytes()
    }

    pub fn parse(datagram: &[u8]) -> Result<Self, SearchError> {
        let fields = fields(datagram, QUERY_LINE, MAX_QUERY)?;
        Ok(Self {
            id: id(&fields)?,
            words: field(&fields, "query")?.to_owned(),
        })
    }

    /// Whether a torrent called `name` answers: every word of the query is a word of the name,
    /// words being runs of letters and digits compared without case. An empty query matches
    /// nothing.
    pub fn matches(&self, name: &str) -> bool {
        let have: Vec<String> = words(name).collect();
        let mut wanted = words(&self.words).peekable();
        wanted.peek().is_some() && wanted.all(|w| have.contains(&w))
    }
}

impl Answer {
    pub fn encode(&self) -> Vec<u8> {
        let mut name: String = self.name.chars().filter(|c| !c.is_control()).collect();
        while name.len() > MAX_NAME {
            name.pop();
        }
        let out = format!(
            "{ANSWER_LINE}\r\nId: {:016x}\r\nInfohash: {}\r\nSize: {}\r\nPort: {}\r\nName: {name}\r\n\r\n",
            self.id, self.info_hash, self.size, self.port
        );
        out.into_bytes()
    }

    pub fn parse(datagram: &[u8]) -> Result<Self, SearchError> {
        let fields = fields(datagram, ANSWER_LINE, MAX_ANSWER)?;
        let number = |name: &'static str| {
            field(&fields, name)?
                .parse::<u64>()
                .map_err(|_| SearchError::BadField(name))
        };
        Ok(Self {
            id: id(&fields)?,
            info_hash: InfoHash::from_hex(field(&fields, "infohash")?)
                .ok_or(SearchError::BadField("Infohash"))?,
            size: number("size")?,
            port: u16::try_from(number("port")?)
                .ok()
                .filter(|&p| p != 0)
                .ok_or(SearchError::BadField("Port"))?,
            name: field(&fields, "name")?.to_owned(),
        })
    }
}

/// Lower-case runs of letters and digits.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// The `Name: value` lines after `first`, names lower-cased.
fn fields(datagram: &[u8], first: &str, max: usize) -> Result<Vec<(String, String)>, SearchError> {
    if datagram.len() > max {
        return Err(SearchError::TooLong(datagram.len()));
    }
    let headers = header_lines(datagram, first).ok_or(SearchError::NotSearch)?;
    Ok(headers.map(|(n, v)| (n, v.to_owned())).collect())
}

fn field<'a>(fields: &'a [(String, String)], name: &'static str) -> Result<&'a str, SearchError> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .ok_or(SearchError::BadField(name))
}

fn id(fields: &[(String, String)]) -> Result<u64, SearchError> {
    u64::from_str_radix(field(fields, "id")?, 16).map_err(|_| SearchError::BadField("Id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_matches_when_it_has_every_word_of_the_query() {
        let q = |w: &str| Query {
            id: 1,
            words: w.into(),
        };
        assert!(q("walk").matches("nutella-walk-movie.txt"));
        assert!(q("Walk MOVIE").matches("nutella-walk-movie.txt"));
        assert!(!q("walking").matches("nutella-walk-movie.txt"));
        assert!(!q("walk run").matches("nutella-walk-movie.txt"));
        assert!(!q("  ").matches("anything"));
    }

    #[test]
    fn queries_and_answers_round_trip_and_answers_stay_small() {
        let q = Query {
            id: 0xdead_beef,
            words: "walk".into(),
        };
        assert_eq!(Query::parse(&q.encode()), Ok(q));
        let a = Answer {
            id: 7,
            info_hash: InfoHash([0xab; 20]),
            size: 123_456,
            port: 6881,
            name: "é".repeat(500),
        };
        let bytes = a.encode();
        assert!(bytes.len() <= MAX_ANSWER, "{}", bytes.len());
        let back = Answer::parse(&bytes).unwrap();
        assert_eq!((back.id, back.size, back.port), (7, 123_456, 6881));
        assert!(back.name.starts_with("éé"));
        assert_eq!(
            Query::parse(b"BTVOD-FOUND 1\r\n\r\n"),
            Err(SearchError::NotSearch)
        );
        assert_eq!(
            Query::parse(b"BTVOD-SEARCH 1\r\nQuery: x\r\n\r\n"),
            Err(SearchError::BadField("id"))
        );
        assert!(matches!(
            Query::parse(&[b'a'; 600]),
            Err(SearchError::TooLong(600))
        ));
    }
}
