//! The scenario file as written (serde's view of the TOML) and its checks into the typed
//! [`Scenario`](super::Scenario): every refusal names the key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::*;
use crate::make_torrent::MIN_PIECE_LEN;
use crate::proto::metainfo::paths::component_problem;
use crate::service::relay::LinkDelay;
use crate::units::parse_byte_size;

const MAX_SCENARIO_PIECE_LEN: u32 = 16 * 1024 * 1024;

/// A size or rate as written: `"4MiB"`, or a bare number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Amount {
    Int(u64),
    Float(f64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    name: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default = "default_seed")]
    seed: u64,
    content: RawContent,
    #[serde(default)]
    peers: Vec<RawPeerClass>,
    #[serde(default)]
    viewers: Vec<RawViewerClass>,
}

fn default_seed() -> u64 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContent {
    name: Option<String>,
    size: Option<Amount>,
    piece_size: Option<Amount>,
    seed: Option<u64>,
    files: Option<Vec<RawFile>>,
    path: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    path: String,
    size: Amount,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeerClass {
    name: String,
    #[serde(default = "one")]
    count: u32,
    #[serde(default)]
    have: f64,
    have_max: Option<f64>,
    #[serde(default = "default_draw")]
    draw: Draw,
    #[serde(default)]
    client: PeerClient,
    #[serde(default)]
    rtt_ms: f64,
    #[serde(default)]
    jitter_ms: f64,
    upload: Option<Amount>,
    download: Option<Amount>,
    #[serde(default)]
    arrive: f64,
    #[serde(default)]
    arrive_spread: f64,
    leave_after: Option<f64>,
    rejoin_after: Option<f64>,
    #[serde(default)]
    reincarnate: bool,
    linger: Option<f64>,
    max_peers: Option<u32>,
}

fn one() -> u32 {
    1
}

fn default_draw() -> Draw {
    Draw::Random
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawViewerClass {
    #[serde(default = "default_viewer_name")]
    name: String,
    #[serde(default = "one")]
    count: u32,
    rate: Amount,
    delay: f64,
    prefetch: f64,
    #[serde(default = "default_policy")]
    policy: String,
    file: Option<String>,
    #[serde(default)]
    arrive: f64,
    #[serde(default)]
    arrive_spread: f64,
    upload: Option<Amount>,
    download: Option<Amount>,
    stay: Option<f64>,
    max_peers: Option<u32>,
}

fn default_viewer_name() -> String {
    "viewer".into()
}

fn default_policy() -> String {
    "deadline".into()
}

type Check<T> = Result<T, (String, String)>;

fn bad<T>(at: impl Into<String>, reason: impl Into<String>) -> Check<T> {
    Err((at.into(), reason.into()))
}

/// A size: a bare number is bytes.
fn size(at: &str, a: &Amount) -> Check<u64> {
    let text = match a {
        Amount::Int(n) => {
            return if *n > 0 {
                Ok(*n)
            } else {
                bad(at, "must be above zero")
            };
        }
        Amount::Float(f) => format!("{f}"),
        Amount::Text(s) => s.clone(),
    };
    parse_byte_size(&text, 1).or_else(|e| bad(at, e.to_string()))
}

/// A rate: a bare number is KiB/s; 0 or "unlimited" is no limit.
fn rate(at: &str, a: Option<&Amount>) -> Check<u64> {
    let text = match a {
        None => return Ok(0),
        Some(Amount::Int(0)) => return Ok(0),
        Some(Amount::Int(n)) => return Ok(n.saturating_mul(1024)),
        Some(Amount::Float(f)) => format!("{f}"),
        Some(Amount::Text(s)) => s.clone(),
    };
    let t = text.trim();
    if t == "0" || t.eq_ignore_ascii_case("unlimited") {
        return Ok(0);
    }
    parse_byte_size(t, 1024).or_else(|e| bad(at, e.to_string()))
}

/// Up to a minute: a link slower than that is not a network.
fn millis(at: &str, v: f64) -> Check<Duration> {
    if !v.is_finite() || !(0.0..=60_000.0).contains(&v) {
        return bad(
            at,
            format!("{v} is not a number of milliseconds from 0 to 60000"),
        );
    }
    Ok(Duration::from_secs_f64(v / 1000.0))
}

fn seconds(at: &str, v: f64) -> Check<Duration> {
    if !v.is_finite() || !(0.0..=1e7).contains(&v) {
        return bad(at, format!("{v} is not a number of seconds from 0 up"));
    }
    Ok(Duration::from_secs_f64(v))
}

fn fraction(at: &str, v: f64) -> Check<f64> {
    if !(0.0..=1.0).contains(&v) {
        return bad(at, format!("{v} is not a fraction from 0.0 to 1.0"));
    }
    Ok(v)
}

fn class_name(at: &str, name: &str) -> Check<String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return bad(
            at,
            format!("`{name}`: use 1-64 letters, digits, `-` and `_` (it names directories)"),
        );
    }
    Ok(name.to_string())
}

fn component(at: &str, c: &str) -> Check<String> {
    match component_problem(c) {
        Some(reason) => bad(at, format!("`{c}`: {reason}")),
        None => Ok(c.to_string()),
    }
}

impl RawScenario {
    pub(super) fn validate(self, base: &Path, default_name: &str) -> Check<Scenario> {
        let seed = self.seed;
        let content = self.content.validate(base, seed)?;
        let mut names = std::collections::HashSet::new();
        let mut peers = Vec::new();
        for (i, raw) in self.peers.into_iter().enumerate() {
            let at = format!("peers[{i}] ({})", raw.name);
            let class = raw.validate(&at)?;
            if !names.insert(class.name.clone()) {
                return bad(at, "another class has this name");
            }
            peers.push(class);
        }
        let mut viewers = Vec::new();
        for (i, raw) in self.viewers.into_iter().enumerate() {
            let at = format!("viewers[{i}] ({})", raw.name);
            let class = raw.validate(&at)?;
            if !names.insert(class.name.clone()) {
                return bad(at, "another peer or viewer class has this name");
            }
            viewers.push(class);
        }
        let total: u64 = peers
            .iter()
            .map(|c| u64::from(c.count))
            .chain(viewers.iter().map(|c| u64::from(c.count)))
            .sum();
        if total > u64::from(MAX_WORLD_PEERS) {
            return bad(
                "peers",
                format!("{total} peers and viewers; at most {MAX_WORLD_PEERS} in a scenario"),
            );
        }
        Ok(Scenario {
            name: self.name.unwrap_or_else(|| default_name.to_string()),
            description: self.description,
            seed,
            content,
            peers,
            viewers,
        })
    }
}

impl RawContent {
    fn validate(self, base: &Path, scenario_seed: u64) -> Check<ContentSpec> {
        let piece_size = match &self.piece_size {
            None => None,
            Some(a) => {
                let n = size("content.piece_size", a)?;
                let ok = n.is_power_of_two()
                    && (u64::from(MIN_PIECE_LEN)..=u64::from(MAX_SCENARIO_PIECE_LEN)).contains(&n);
                if !ok {
                    return bad(
                        "content.piece_size",
                        format!("{n} bytes: must be a power of two from 16KiB to 16MiB"),
                    );
                }
                Some(n as u32)
            }
        };
        let given = [
            self.size.is_some(),
            self.files.is_some(),
            self.path.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return bad(
                "content",
                "give exactly one of `size` (one generated file), `[[content.files]]` \
                 (a generated directory) or `path` (a real file or directory)",
            );
        }
        let seed = self.seed.unwrap_or(scenario_seed);
        if let Some(path) = self.path {
            if self.seed.is_some() {
                return bad("content.seed", "only generated content has a seed");
            }
            let path = if path.is_absolute() {
                path
            } else {
                base.join(path)
            };
            let name = match self.name {
                Some(n) => component("content.name", &n)?,
                None => match path.file_name() {
                    Some(n) => n.to_string_lossy().into_owned(),
                    None => return bad("content.path", "names no file or directory"),
                },
            };
            return Ok(ContentSpec {
                name,
                piece_size,
                source: ContentSource::Path(path),
            });
        }
        let Some(name) = self.name else {
            return bad("content.name", "generated content needs a name");
        };
        let name = component("content.name", &name)?;
        let (total, files) = match (self.size, self.files) {
            (Some(s), None) => (size("content.size", &s)?, None),
            (None, Some(raw)) => {
                if raw.is_empty() {
                    return bad("content.files", "list at least one file");
                }
                let mut files = Vec::new();
                let mut seen = std::collections::HashSet::new();
                for (i, f) in raw.iter().enumerate() {
                    let at = format!("content.files[{i}]");
                    let parts = f
                        .path
                        .split('/')
                        .map(|c| component(&format!("{at}.path"), c))
                        .collect::<Check<Vec<_>>>()?;
                    if !seen.insert(parts.clone()) {
                        return bad(at, format!("`{}` is listed twice", f.path));
                    }
                    files.push((parts, size(&format!("{at}.size"), &f.size)?));
                }
                (files.iter().map(|f| f.1).sum(), Some(files))
            }
            _ => unreachable!("exactly one content source was checked above"),
        };
        if total > 64 * 1024 * 1024 * 1024 {
            return bad("content", "more than 64 GiB of generated content");
        }
        Ok(ContentSpec {
            name,
            piece_size,
            source: ContentSource::Generated {
                seed,
                size: total,
                files,
            },
        })
    }
}

/// Most connections a client is asked to keep (libtorrent's default is 200).
const MAX_CONNECTIONS: u32 = 10_000;

fn connection_cap(at: &str, max_peers: Option<u32>) -> Check<Option<u32>> {
    match max_peers {
        Some(n) if n == 0 || n > MAX_CONNECTIONS => bad(
            at,
            format!("{n}: a member keeps 1 to {MAX_CONNECTIONS} connections"),
        ),
        other => Ok(other),
    }
}

fn arrival(at: &str, arrive: f64, spread: f64) -> Check<Arrival> {
    Ok(Arrival {
        at: seconds(&format!("{at}.arrive"), arrive)?,
        spread: seconds(&format!("{at}.arrive_spread"), spread)?,
    })
}

impl RawPeerClass {
    fn validate(self, at: &str) -> Check<PeerClass> {
        let name = class_name(&format!("{at}.name"), &self.name)?;
        let have = fraction(&format!("{at}.have"), self.have)?;
        let have_max = fraction(&format!("{at}.have_max"), self.have_max.unwrap_or(have))?;
        if have_max < have {
            return bad(
                format!("{at}.have_max"),
                format!("{have_max} is below have ({have})"),
            );
        }
        let leave_after = self
            .leave_after
            .map(|v| seconds(&format!("{at}.leave_after"), v))
            .transpose()?;
        let rejoin_after = self
            .rejoin_after
            .map(|v| seconds(&format!("{at}.rejoin_after"), v))
            .transpose()?;
        if rejoin_after.is_some() && leave_after.is_none() {
            return bad(
                format!("{at}.rejoin_after"),
                "needs leave_after (a peer rejoins after it has left)",
            );
        }
        if self.linger.is_some() && !self.reincarnate {
            return bad(
                format!("{at}.linger"),
                "is the wait before reincarnating: set reincarnate = true",
            );
        }
        let reincarnate = if self.reincarnate {
            if have >= 1.0 {
                return bad(
                    format!("{at}.reincarnate"),
                    "a class that starts complete (have = 1.0) never finishes a download",
                );
            }
            Some(seconds(
                &format!("{at}.linger"),
                self.linger.unwrap_or(5.0),
            )?)
        } else {
            None
        };
        Ok(PeerClass {
            name,
            count: self.count,
            have,
            have_max,
            draw: self.draw,
            client: self.client,
            link: LinkDelay {
                rtt: millis(&format!("{at}.rtt_ms"), self.rtt_ms)?,
                jitter: millis(&format!("{at}.jitter_ms"), self.jitter_ms)?,
            },
            limits: Limits {
                upload: rate(&format!("{at}.upload"), self.upload.as_ref())?,
                download: rate(&format!("{at}.download"), self.download.as_ref())?,
                max_peers: connection_cap(&format!("{at}.max_peers"), self.max_peers)?,
            },
            arrival: arrival(at, self.arrive, self.arrive_spread)?,
            leave_after,
            rejoin_after,
            reincarnate,
        })
    }
}

impl RawViewerClass {
    fn validate(self, at: &str) -> Check<ViewerClass> {
        let name = class_name(&format!("{at}.name"), &self.name)?;
        let r = rate(&format!("{at}.rate"), Some(&self.rate))?;
        if r == 0 {
            return bad(format!("{at}.rate"), "the playback rate must be above zero");
        }
        let delay = seconds(&format!("{at}.delay"), self.delay)?;
        let prefetch = seconds(&format!("{at}.prefetch"), self.prefetch)?;
        if prefetch > delay {
            return bad(
                format!("{at}.prefetch"),
                format!("P = {} s is above D = {} s", self.prefetch, self.delay),
            );
        }
        let policy = match self.policy.as_str() {
            "deadline" => PolicyKind::Deadline,
            "rarest" => PolicyKind::Rarest,
            "sequential" => PolicyKind::Sequential,
            other => {
                return bad(
                    format!("{at}.policy"),
                    format!("`{other}`: use deadline, rarest or sequential"),
                );
            }
        };
        Ok(ViewerClass {
            name,
            count: self.count,
            rate: r,
            delay,
            prefetch,
            policy,
            file: self.file,
            arrival: arrival(at, self.arrive, self.arrive_spread)?,
            limits: Limits {
                upload: rate(&format!("{at}.upload"), self.upload.as_ref())?,
                download: rate(&format!("{at}.download"), self.download.as_ref())?,
                max_peers: connection_cap(&format!("{at}.max_peers"), self.max_peers)?,
            },
            stay: self
                .stay
                .map(|v| seconds(&format!("{at}.stay"), v))
                .transpose()?,
        })
    }
}
