//! The torrent task's side of peer exchange (BEP 11): telling each peer, at most once a minute,
//! which peers we connected to and dropped since we last told it, and dialling the peers it
//! tells us of through the same capped address book as a tracker's.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::Torrent;
use crate::engine::peer::PeerCommand;
use crate::policy::PeerKey;
use crate::proto::extension::pex::{MAX_PEX_PEERS, PexFlags, PexMessage};
use crate::proto::wire::Message;

/// How often we send one peer a message, at least apart (BEP 11: at most once a minute).
pub(super) const PEX_INTERVAL: Duration = Duration::from_secs(60);
/// A peer's messages closer together than this are ignored: the BEP's minute, less some slack
/// for timers (libtorrent sends its first message at once, then every minute).
const MIN_RECEIVED_GAP: Duration = Duration::from_secs(45);

/// What one peer and we have said to each other over `ut_pex`.
#[derive(Debug, Default)]
pub struct PexLink {
    /// The id it wants `ut_pex` sent under; None while it has not said it speaks it.
    pub their_id: Option<u8>,
    /// The peers we last told it we are connected to.
    told: HashSet<SocketAddr>,
    sent_at: Option<Instant>,
    received_at: Option<Instant>,
    /// It broke the BEP's limits once already: said once, not per message.
    complained: bool,
}

impl Torrent {
    /// A `ut_pex` message from `key`. Bad or too frequent messages are logged and ignored; the
    /// connection stays (its blocks are as good as anyone's).
    pub(super) fn on_pex(&mut self, key: PeerKey, payload: &[u8]) {
        let now = Instant::now();
        let we_are_seed = self.have().is_complete();
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if !self.pex {
            return;
        }
        let link = &mut peer.pex;
        if link
            .received_at
            .is_some_and(|at| now.duration_since(at) < MIN_RECEIVED_GAP)
        {
            if !std::mem::replace(&mut link.complained, true) {
                tracing::info!(addr = %peer.addr, "ignoring PEX messages sent more often than once a minute");
            }
            return;
        }
        link.received_at = Some(now);
        let parsed = match PexMessage::parse(payload) {
            Ok(parsed) => parsed,
            Err(why) => {
                tracing::info!(addr = %peer.addr, %why, "ignoring a bad PEX message");
                return;
            }
        };
        if parsed.unread > 0 && !std::mem::replace(&mut link.complained, true) {
            tracing::info!(
                addr = %peer.addr,
                unread = parsed.unread,
                "a PEX message names more than {MAX_PEX_PEERS} added or dropped peers; the rest is ignored"
            );
        }
        let mut added = parsed.message.added;
        // Peers the sender could dial are the likelier to accept us too.
        added.sort_by_key(|(_, f)| !f.has(PexFlags::REACHABLE));
        let from = peer.addr;
        let mut offered = 0;
        for (addr, flags) in added {
            // A seed has nothing to give a seed.
            if we_are_seed && flags.has(PexFlags::SEED) {
                continue;
            }
            offered += 1;
            self.add_candidate_hinted(addr, flags);
        }
        tracing::debug!(%from, offered, "PEX message");
    }

    /// Once a tick: each peer that speaks `ut_pex` and was last told a minute ago or more hears
    /// what changed since, when something did (at most 50 added and 50 dropped).
    pub(super) fn send_pex(&mut self) {
        if !self.pex {
            return;
        }
        let now = Instant::now();
        let current = self.pex_view();
        for (key, peer) in &mut self.peers {
            let link = &mut peer.pex;
            let Some(id) = link.their_id else { continue };
            if link
                .sent_at
                .is_some_and(|at| now.duration_since(at) < PEX_INTERVAL)
            {
                continue;
            }
            let added: Vec<(SocketAddr, PexFlags)> = current
                .iter()
                .filter(|&(addr, &(owner, _))| owner != *key && !link.told.contains(addr))
                .map(|(addr, &(_, flags))| (*addr, flags))
                .take(MAX_PEX_PEERS)
                .collect();
            let dropped: Vec<SocketAddr> = link
                .told
                .iter()
                .filter(|addr| !current.contains_key(addr))
                .copied()
                .take(MAX_PEX_PEERS)
                .collect();
            if added.is_empty() && dropped.is_empty() {
                continue;
            }
            for addr in &dropped {
                link.told.remove(addr);
            }
            link.told.extend(added.iter().map(|(addr, _)| *addr));
            link.sent_at = Some(now);
            let message = PexMessage { added, dropped };
            peer.send(PeerCommand::Send(Message::Extended {
                id,
                payload: message.encode().into(),
            }));
        }
    }

    /// The peers we would tell of: every connected peer whose listening address we know (we
    /// dialled it, or its extension handshake gave its port), by that address, with the key of
    /// its connection (no peer is told of itself) and its flags.
    fn pex_view(&self) -> HashMap<SocketAddr, (PeerKey, PexFlags)> {
        let book = self.picker.book();
        let pieces = self.geometry.piece_count();
        self.peers
            .iter()
            .filter_map(|(key, peer)| {
                let addr = peer.listening_addr()?;
                let mut flags = 0;
                if pieces > 0 && book.peer_piece_count(*key) == pieces {
                    flags |= PexFlags::SEED;
                }
                if peer.outgoing {
                    flags |= PexFlags::REACHABLE;
                }
                if peer.encrypted {
                    flags |= PexFlags::ENCRYPTION;
                }
                if peer.utp {
                    flags |= PexFlags::UTP;
                }
                Some((addr, (*key, PexFlags(flags))))
            })
            .collect()
    }
}
