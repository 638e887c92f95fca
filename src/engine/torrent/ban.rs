//! Peers that send bad data, and the bans that follow. A piece that fails its hash check bans
//! its sender at once when one peer sent all of it. When several peers sent blocks of it, the
//! honest ones must not pay for the liar: each sender's block digests are kept, and when the
//! piece later verifies, whoever sent a block that differs from the good one is banned (what
//! libtorrent calls the smart ban).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;

use sha1::{Digest, Sha1};

use crate::policy::PeerKey;
use crate::proto::PeerId;
use crate::proto::geometry::{BLOCK_LEN, PieceIndex};

/// Failed pieces whose senders are remembered, at most: a peer that fails piece after piece
/// cannot grow this without bound (each entry is ~60 bytes a block).
const MAX_SUSPECT_PIECES: usize = 64;
/// Identities of peers that left, kept so a liar that disconnects before its piece is checked
/// is still banned.
const MAX_DEPARTED: usize = 256;

/// Who a peer is: the address we saw and the id it gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub addr: SocketAddr,
    pub peer_id: PeerId,
}

/// Who sent one block of a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// The VoD server (trusted: it is ours).
    Server,
    Peer(Identity),
    /// A peer that left long enough ago that we no longer know who it was.
    Unknown,
}

struct Suspect {
    block: usize,
    who: Identity,
    digest: [u8; 20],
}

#[derive(Default)]
pub struct Bans {
    addrs: HashSet<SocketAddr>,
    ids: HashSet<PeerId>,
    suspects: HashMap<PieceIndex, Vec<Suspect>>,
    departed: VecDeque<(PeerKey, Identity)>,
}

/// SHA-1 of each block of a piece's data, in block order.
pub fn block_digests(data: &[u8]) -> Vec<[u8; 20]> {
    data.chunks(BLOCK_LEN as usize)
        .map(|block| Sha1::digest(block).into())
        .collect()
}

impl Bans {
    pub fn is_banned_addr(&self, addr: &SocketAddr) -> bool {
        self.addrs.contains(addr)
    }

    pub fn is_banned(&self, who: &Identity) -> bool {
        self.addrs.contains(&who.addr) || self.ids.contains(&who.peer_id)
    }

    pub fn ban(&mut self, who: Identity) {
        self.addrs.insert(who.addr);
        self.ids.insert(who.peer_id);
    }

    pub fn remember_departed(&mut self, key: PeerKey, who: Identity) {
        if self.departed.len() >= MAX_DEPARTED {
            self.departed.pop_front();
        }
        self.departed.push_back((key, who));
    }

    pub fn departed(&self, key: PeerKey) -> Option<Identity> {
        self.departed
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, who)| *who)
    }

    /// Whether a failed attempt at `piece` is remembered (its good data is then needed).
    pub fn is_suspected(&self, piece: PieceIndex) -> bool {
        self.suspects.contains_key(&piece)
    }

    /// A piece failed its hash check; `senders[i]` sent block i, whose data hashed to
    /// `digests[i]`. Returns the peers proven guilty now: the only peer that sent any of it.
    pub fn on_failed(
        &mut self,
        piece: PieceIndex,
        senders: &[Sender],
        digests: &[[u8; 20]],
    ) -> Vec<Identity> {
        let mut peers: Vec<Identity> = Vec::new();
        let mut unknown = false;
        for sender in senders {
            match sender {
                Sender::Server => {}
                Sender::Unknown => unknown = true,
                Sender::Peer(who) => {
                    if !peers.contains(who) {
                        peers.push(*who);
                    }
                }
            }
        }
        // The server is trusted, so one peer alone among the senders is the liar.
        if peers.len() == 1 && !unknown {
            return peers;
        }
        if !self.suspects.contains_key(&piece) && self.suspects.len() >= MAX_SUSPECT_PIECES {
            return Vec::new();
        }
        let record = self.suspects.entry(piece).or_default();
        for (block, (sender, digest)) in senders.iter().zip(digests).enumerate() {
            if let Sender::Peer(who) = sender {
                record.push(Suspect {
                    block,
                    who: *who,
                    digest: *digest,
                });
            }
        }
        Vec::new()
    }

    /// A piece with a remembered failed attempt verified, its blocks hashing to `digests`:
    /// returns the peers that had sent a block different from the good one.
    pub fn on_verified(&mut self, piece: PieceIndex, digests: &[[u8; 20]]) -> Vec<Identity> {
        let Some(record) = self.suspects.remove(&piece) else {
            return Vec::new();
        };
        let mut guilty: Vec<Identity> = Vec::new();
        for s in record {
            let lied = digests.get(s.block).is_some_and(|good| *good != s.digest);
            if lied && !guilty.contains(&s.who) {
                guilty.push(s.who);
            }
        }
        guilty
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::geometry::Geometry;

    fn who(n: u8) -> Identity {
        Identity {
            addr: SocketAddr::from(([127, 0, 0, 1], 1000 + u16::from(n))),
            peer_id: PeerId([n; 20]),
        }
    }

    fn piece0() -> PieceIndex {
        Geometry::new(64 * 1024, &[64 * 1024])
            .expect("geometry")
            .piece(0)
            .expect("piece 0")
    }

    #[test]
    fn a_lone_sender_of_a_bad_piece_is_guilty_at_once() {
        let mut bans = Bans::default();
        let senders = [Sender::Peer(who(1)), Sender::Server, Sender::Peer(who(1))];
        let guilty = bans.on_failed(piece0(), &senders, &[[0; 20]; 3]);
        assert_eq!(guilty, vec![who(1)]);
        assert!(!bans.is_suspected(piece0()));
    }

    #[test]
    fn of_several_senders_only_the_one_whose_block_differs_is_banned() {
        let mut bans = Bans::default();
        let good = [[1; 20], [2; 20], [3; 20]];
        let bad = [[1; 20], [9; 20], [3; 20]];
        let senders = [
            Sender::Peer(who(1)),
            Sender::Peer(who(2)),
            Sender::Peer(who(1)),
        ];
        assert!(bans.on_failed(piece0(), &senders, &bad).is_empty());
        assert!(bans.is_suspected(piece0()));
        assert_eq!(bans.on_verified(piece0(), &good), vec![who(2)]);
        assert!(!bans.is_suspected(piece0()));
    }

    #[test]
    fn a_ban_covers_the_address_and_the_peer_id() {
        let mut bans = Bans::default();
        bans.ban(who(1));
        let same_id_new_port = Identity {
            addr: SocketAddr::from(([127, 0, 0, 1], 4242)),
            peer_id: who(1).peer_id,
        };
        assert!(bans.is_banned(&same_id_new_port));
        assert!(bans.is_banned_addr(&who(1).addr));
        assert!(!bans.is_banned(&who(2)));
    }
}
