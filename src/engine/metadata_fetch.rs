//! Getting a magnet link's info dictionary (BEP 9) from the swarm before the torrent starts:
//! peers are dialled as addresses come in (the link's `x.pe`, trackers), each that offers the
//! metadata is asked for some of its 16 KiB pieces, and the whole is checked against the
//! info-hash. One task owns the assembly; connection tasks only move frames.

mod conn;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::engine::peer::mse::EncryptionPolicy;
use crate::proto::extension::metadata::{AssemblyError, MetadataAssembly, piece_count};
use crate::proto::{InfoHash, PeerId};

/// A piece asked of a peer that has not come in this long is asked of another.
const PIECE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pieces asked of one peer at a time.
const PER_PEER: usize = 4;
/// Addresses kept waiting to be dialled; more are dropped (trackers send more later).
const MAX_WAITING: usize = 1000;
/// A peer that could not be reached, or closed before offering the metadata, is dialled again
/// this many times, after `FetchSetup::first_redial` (default 2 s), then 3 and 9 times that: a
/// seed still checking its files refuses connections for a while, and a link may name only
/// that one peer.
const MAX_REDIALS: u32 = 3;
pub const FIRST_REDIAL: Duration = Duration::from_secs(2);

/// What every connection of the fetch needs.
#[derive(Clone, Debug)]
pub struct FetchSetup {
    pub info_hash: InfoHash,
    pub our_id: PeerId,
    /// Told to peers in our extension handshake.
    pub listen_port: Option<u16>,
    pub handshake_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// The first pause before a failed peer is dialled again ([`FIRST_REDIAL`]).
    pub first_redial: Duration,
    /// How to dial (MSE/PE), as for the torrent's own connections.
    pub encryption: EncryptionPolicy,
}

/// How far the fetch is, for a progress line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchProgress {
    pub dialled: usize,
    pub offering: usize,
    pub size: Option<u32>,
    pub pieces_have: u32,
    pub pieces_total: u32,
}

/// The fetched info dictionary (its SHA-1 is the info-hash) and what it took.
#[derive(Debug)]
pub struct Fetched {
    pub info: Vec<u8>,
    pub elapsed: Duration,
    pub dialled: usize,
    /// Every address the sources gave: the torrent dials them at once instead of waiting
    /// for its own first lookup.
    pub known: Vec<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "no peer gave the metadata within {waited:?} ({dialled} peers dialled, {offered} offered it)"
    )]
    TimedOut {
        waited: Duration,
        dialled: usize,
        offered: usize,
    },
    #[error(
        "the peer sources ended with no peer left to ask ({dialled} dialled, {offered} offered it)"
    )]
    NoPeers { dialled: usize, offered: usize },
}

type ConnId = u64;

enum ConnEvent {
    Offer {
        id: ConnId,
        size: u32,
        commands: mpsc::Sender<u32>,
    },
    Piece {
        id: ConnId,
        piece: u32,
        total_size: u32,
        data: Vec<u8>,
    },
    Rejected {
        id: ConnId,
        piece: u32,
    },
    Gone {
        id: ConnId,
        why: Option<conn::ConnError>,
    },
}

/// A peer that offered the metadata: where to send requests, what it was asked.
struct Offering {
    commands: mpsc::Sender<u32>,
    asked: usize,
}

/// Fetches the metadata from peers whose addresses arrive on `addrs`, for at most `limit`.
/// Ends with [`FetchError::NoPeers`] if `addrs` closes and every peer has been tried.
pub async fn fetch(
    setup: FetchSetup,
    mut addrs: mpsc::Receiver<Vec<SocketAddr>>,
    limit: Duration,
    progress: watch::Sender<FetchProgress>,
) -> Result<Fetched, FetchError> {
    let started = Instant::now();
    let (events_tx, mut events) = mpsc::channel(256);
    let mut f = Fetch {
        setup,
        waiting: VecDeque::new(),
        known: HashSet::new(),
        open: 0,
        dialled: 0,
        next_id: 0,
        offering: HashMap::new(),
        addr_of: HashMap::new(),
        redials: HashMap::new(),
        redial_at: Vec::new(),
        offered: 0,
        assembly: None,
        asked: HashMap::new(),
        given_by: HashMap::new(),
        events: events_tx,
    };
    let mut sources_open = true;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let deadline = started + limit;
    loop {
        f.dial();
        progress.send_replace(f.progress());
        if !sources_open && f.open == 0 && f.waiting.is_empty() && f.redial_at.is_empty() {
            return Err(FetchError::NoPeers {
                dialled: f.dialled,
                offered: f.offered,
            });
        }
        tokio::select! {
            batch = addrs.recv(), if sources_open => match batch {
                Some(batch) => f.add_addrs(batch),
                None => sources_open = false,
            },
            Some(event) = events.recv() => {
                if let Some(info) = f.on_event(event) {
                    return Ok(Fetched {
                        info,
                        elapsed: started.elapsed(),
                        dialled: f.dialled,
                        known: f.known.into_iter().collect(),
                    });
                }
            }
            _ = tick.tick() => {
                f.redial_due();
                f.ask();
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Err(FetchError::TimedOut {
                    waited: limit,
                    dialled: f.dialled,
                    offered: f.offered,
                });
            }
        }
    }
}

struct Fetch {
    setup: FetchSetup,
    waiting: VecDeque<SocketAddr>,
    known: HashSet<SocketAddr>,
    open: usize,
    dialled: usize,
    next_id: ConnId,
    offering: HashMap<ConnId, Offering>,
    /// Where each open connection goes, and how often each address was dialled again; the
    /// addresses waiting for their next try, and when.
    addr_of: HashMap<ConnId, SocketAddr>,
    redials: HashMap<SocketAddr, u32>,
    redial_at: Vec<(Instant, SocketAddr)>,
    offered: usize,
    /// Started by the first peer that offers a size under the cap.
    assembly: Option<MetadataAssembly>,
    /// Pieces asked for: of whom, and when.
    asked: HashMap<u32, (ConnId, Instant)>,
    /// Who sent each piece held, to blame if the whole does not hash right.
    given_by: HashMap<u32, ConnId>,
    events: mpsc::Sender<ConnEvent>,
}

impl Fetch {
    fn add_addrs(&mut self, batch: Vec<SocketAddr>) {
        for addr in batch {
            if self.waiting.len() < MAX_WAITING && self.known.insert(addr) {
                self.waiting.push_back(addr);
            }
        }
    }

    fn dial(&mut self) {
        while self.open < self.setup.max_connections {
            let Some(addr) = self.waiting.pop_front() else {
                return;
            };
            self.open += 1;
            self.dialled += 1;
            self.next_id += 1;
            let id = self.next_id;
            self.addr_of.insert(id, addr);
            tracing::debug!(%addr, "dialling for metadata");
            tokio::spawn(conn::run(id, addr, self.setup.clone(), self.events.clone()));
        }
    }

    fn progress(&self) -> FetchProgress {
        let (size, total, have) = match &self.assembly {
            Some(a) => {
                let total = piece_count(a.size());
                (Some(a.size()), total, total - a.missing().count() as u32)
            }
            None => (None, 0, 0),
        };
        FetchProgress {
            dialled: self.dialled,
            offering: self.offering.len(),
            size,
            pieces_have: have,
            pieces_total: total,
        }
    }

    /// Returns the info dictionary once it is complete and verified.
    fn on_event(&mut self, event: ConnEvent) -> Option<Vec<u8>> {
        match event {
            ConnEvent::Offer { id, size, commands } => {
                self.offered += 1;
                if self.assembly.is_none() {
                    match MetadataAssembly::new(self.setup.info_hash, size) {
                        Ok(a) => self.assembly = Some(a),
                        Err(why) => {
                            tracing::info!(%why, "ignoring a peer's metadata offer");
                            return None;
                        }
                    }
                }
                if self.assembly.as_ref().is_some_and(|a| a.size() != size) {
                    tracing::info!(size, "ignoring a peer that gives another metadata size");
                    return None;
                }
                self.offering.insert(id, Offering { commands, asked: 0 });
                self.ask();
            }
            ConnEvent::Piece {
                id,
                piece,
                total_size,
                data,
            } => return self.on_piece(id, piece, total_size, data),
            ConnEvent::Rejected { id, piece } => {
                tracing::debug!(id, piece, "metadata piece rejected");
                self.unask(piece);
                // It will not give this piece; ask the others, not it again.
                self.offering.remove(&id);
                self.ask();
            }
            ConnEvent::Gone { id, why } => {
                if let Some(why) = &why {
                    tracing::debug!(id, %why, "metadata connection ended");
                }
                self.open -= 1;
                let addr = self.addr_of.remove(&id);
                let offered = self.offering.remove(&id).is_some();
                if let (Some(addr), Some(_), false) = (addr, &why, offered) {
                    self.schedule_redial(addr);
                }
                let lost: Vec<u32> = self
                    .asked
                    .iter()
                    .filter(|(_, (c, _))| *c == id)
                    .map(|(&p, _)| p)
                    .collect();
                lost.into_iter().for_each(|p| self.unask(p));
                self.ask();
            }
        }
        None
    }

    fn on_piece(&mut self, id: ConnId, piece: u32, total: u32, data: Vec<u8>) -> Option<Vec<u8>> {
        let still_missing = self.assembly.as_ref()?.missing().any(|p| p == piece);
        // A piece not asked of it (or asked again elsewhere after a timeout) is still taken if
        // missing; a duplicate is dropped.
        if !still_missing {
            return None;
        }
        if self.asked.get(&piece).is_some_and(|(c, _)| *c == id) {
            self.unask(piece);
        }
        let assembly = self.assembly.as_mut()?;
        match assembly.on_data(piece, total, data) {
            Ok(Some(info)) => return Some(info),
            Ok(None) => {
                self.given_by.insert(piece, id);
            }
            Err(AssemblyError::HashMismatch(hash)) => {
                // Someone sent wrong bytes: every peer that gave a piece is dropped, and all
                // pieces are fetched again from the rest.
                self.given_by.insert(piece, id);
                tracing::warn!(%hash, "the fetched metadata does not match the info-hash; asking other peers");
                for bad in self.given_by.drain().map(|(_, c)| c) {
                    self.offering.remove(&bad);
                }
            }
            Err(why) => {
                tracing::info!(%why, "dropping a peer's metadata piece");
                self.offering.remove(&id);
            }
        }
        self.ask();
        None
    }

    /// A peer that failed before offering anything is tried again later, a few times.
    fn schedule_redial(&mut self, addr: SocketAddr) {
        let tries = self.redials.entry(addr).or_insert(0);
        if *tries < MAX_REDIALS {
            let delay = self.setup.first_redial * 3u32.pow(*tries);
            *tries += 1;
            self.redial_at.push((Instant::now() + delay, addr));
        }
    }

    fn redial_due(&mut self) {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) =
            self.redial_at.drain(..).partition(|(at, _)| *at <= now);
        self.redial_at = later;
        self.waiting.extend(due.into_iter().map(|(_, addr)| addr));
    }

    fn unask(&mut self, piece: u32) {
        if let Some((c, _)) = self.asked.remove(&piece)
            && let Some(o) = self.offering.get_mut(&c)
        {
            o.asked = o.asked.saturating_sub(1);
        }
    }

    /// Asks the missing pieces not in flight (or in flight too long) of the least busy peers.
    fn ask(&mut self) {
        let Some(assembly) = &self.assembly else {
            return;
        };
        let now = Instant::now();
        let stale: Vec<u32> = self
            .asked
            .iter()
            .filter(|(_, (_, at))| now.duration_since(*at) > PIECE_TIMEOUT)
            .map(|(&p, _)| p)
            .collect();
        let missing: Vec<u32> = assembly.missing().collect();
        stale.into_iter().for_each(|p| self.unask(p));
        for piece in missing {
            if self.asked.contains_key(&piece) {
                continue;
            }
            let Some((&id, offer)) = self
                .offering
                .iter_mut()
                .filter(|(_, o)| o.asked < PER_PEER)
                .min_by_key(|(id, o)| (o.asked, **id))
            else {
                return;
            };
            if offer.commands.try_send(piece).is_ok() {
                offer.asked += 1;
                self.asked.insert(piece, (id, now));
            } else {
                self.offering.remove(&id);
            }
        }
    }
}
