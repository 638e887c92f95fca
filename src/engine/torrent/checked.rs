//! A piece whose blocks are all in: its hash check and write off the runtime, then what the
//! result changes (HAVEs, interest, bans for bad data, a server refetch).

use std::sync::Arc;

use super::ban::{Identity, Sender, block_digests};
use super::{Checked, Torrent};
use crate::engine::peer::PeerCommand;
use crate::policy::PeerKey;
use crate::proto::geometry::PieceIndex;
use crate::proto::wire::Message;

impl Torrent {
    pub(super) fn verify(&mut self, piece: PieceIndex) {
        let Some(buf) = self.assembly.take(piece) else {
            return;
        };
        self.verifying.insert(piece);
        let storage = Arc::clone(&self.storage);
        let done = self.checked.0.clone();
        let suspected = self.bans.is_suspected(piece);
        tokio::task::spawn_blocking(move || {
            let ok = storage.verify(piece, &buf.data);
            let error = if ok {
                storage
                    .write_piece(piece, &buf.data)
                    .err()
                    .map(|e| e.to_string())
            } else {
                None
            };
            let digests = if !ok || suspected {
                block_digests(&buf.data)
            } else {
                Vec::new()
            };
            let _ = done.send(Checked {
                piece,
                ok: ok && error.is_none(),
                senders: buf.senders,
                digests,
                error,
            });
        });
    }

    pub(super) fn on_checked(&mut self, checked: Checked) {
        let piece = checked.piece;
        self.verifying.remove(&piece);
        if checked.ok {
            if !checked.digests.is_empty() {
                for who in self.bans.on_verified(piece, &checked.digests) {
                    tracing::warn!(addr = %who.addr, %piece, "banning a peer that sent a bad block");
                    self.ban(who);
                }
            }
            self.picker.on_piece_verified(piece);
            self.publish_verified(piece);
            let now = self.now();
            if let Some(p) = &mut self.playback {
                p.on_verified(now, piece);
            }
            for peer in self.peers.values() {
                peer.send(PeerCommand::Send(Message::Have { piece: piece.get() }));
            }
            if self.have().count() == 1 {
                // From nothing to playable: what a viewer waits for (the magnet benchmark reads it).
                tracing::info!(%piece, "first piece verified");
            }
            if self.have().is_complete() {
                tracing::info!("download complete");
                for key in self.peers.keys().copied().collect::<Vec<_>>() {
                    self.set_interest(key, false);
                }
            } else {
                self.refresh_interest();
            }
        } else if let Some(error) = checked.error {
            // The disk refuses writes (full, read-only, gone): fetching the piece again would
            // only fail again, at full speed. Stop asking peers; the caller sees
            // `Storage::write_failure` and ends the session with the error.
            if !self.storage_failed {
                tracing::error!(%piece, %error, "cannot write piece; no more requests");
            }
            self.storage_failed = true;
        } else {
            self.hash_failures += 1;
            let senders: Vec<Sender> = checked
                .senders
                .iter()
                .map(|from| match from {
                    None => Sender::Server,
                    Some(key) => self.identity(*key).map_or(Sender::Unknown, Sender::Peer),
                })
                .collect();
            let guilty = self.bans.on_failed(piece, &senders, &checked.digests);
            tracing::warn!(%piece, banned = guilty.len(), "piece failed its hash check");
            self.picker.on_piece_failed(piece);
            self.server_refetch_if_owned(piece);
            for who in guilty {
                self.ban(who);
            }
        }
        self.publish_stats();
        let keys: Vec<_> = self.peers.keys().copied().collect();
        for key in keys {
            self.fill_requests(key);
        }
    }

    /// Who the peer behind `key` is, connected or recently gone.
    fn identity(&self, key: PeerKey) -> Option<Identity> {
        match self.peers.get(&key) {
            Some(p) => Some(Identity {
                addr: p.addr,
                peer_id: p.peer_id,
            }),
            None => self.bans.departed(key),
        }
    }

    /// Bans a peer for sending bad data: its connections close and it is not taken back.
    pub(super) fn ban(&mut self, who: Identity) {
        self.bans.ban(who);
        for p in self.peers.values() {
            if p.addr == who.addr || p.peer_id == who.peer_id {
                p.close();
            }
        }
        self.addresses.remove(who.addr);
    }
}
