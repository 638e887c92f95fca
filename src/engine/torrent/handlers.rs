//! The torrent task's reactions to its peers: connections, messages, blocks, interest, and
//! the requests that fill each peer's pipeline.

use std::sync::atomic::Ordering;

use tokio::time::{Duration, Instant};

use super::Torrent;
use super::assembly::Stored;
use super::ban::Identity;
use super::peer_state::{self, PeerState};
use crate::engine::peer::{PeerCommand, PeerEvent};
use crate::policy::picker::BlockOutcome;
use crate::policy::{PeerKey, PeerView};
use crate::proto::PeerId;
use crate::proto::bitfield::{Bitfield, BitfieldError};
use crate::proto::geometry::BlockRef;
use crate::proto::wire::{BlockSpec, Message};

/// A connection up this long is the one both sides keep when a second one to the same peer
/// arrives (see `resolve_duplicate`); dials crossing each other are milliseconds apart.
const SETTLED_CONNECTION: Duration = Duration::from_secs(5);

/// Why a peer's message ends its connection.
#[derive(Debug, thiserror::Error)]
enum MessageError {
    #[error("HAVE for piece {piece} of {piece_count}")]
    HaveOutOfRange { piece: u32, piece_count: u32 },
    #[error("{kind} {piece}:{offset}+{len} out of range or over 16 KiB")]
    BlockOutOfRange {
        kind: &'static str,
        piece: u32,
        offset: u32,
        len: u32,
    },
    #[error("a block over 4 GiB")]
    OversizedBlock,
    #[error(transparent)]
    Bitfield(#[from] BitfieldError),
}

impl Torrent {
    pub(super) fn on_event(&mut self, event: PeerEvent) {
        match event {
            PeerEvent::Connected {
                key,
                addr,
                peer_id,
                fast,
                extensions,
                encrypted,
                utp,
                commands,
                kill,
            } => {
                self.addresses.connected(addr);
                let outgoing = self.dialing.remove(&key).is_some();
                let banned = self.bans.is_banned(&Identity { addr, peer_id });
                if banned {
                    tracing::debug!(%addr, "refusing a banned peer");
                }
                if banned || !self.resolve_duplicate(peer_id, outgoing) {
                    kill.cancel();
                    return;
                }
                // Peers choose their ids: a stranger reconnecting under fresh ones must not grow
                // this set without bound (it only feeds the peers-seen count).
                if self.seen.len() < super::MAX_SEEN {
                    self.seen.insert(peer_id);
                }
                let mut state = PeerState::new(addr, peer_id, fast, commands, kill, Instant::now());
                state.outgoing = outgoing;
                state.encrypted = encrypted;
                state.utp = utp;
                state.cap_queue_for_limit(self.config.download_limit);
                // Announce what we have: BEP 6 shorthands when both sides speak it.
                let have = self.have();
                let first = if fast && have.is_complete() {
                    Message::HaveAll
                } else if fast && have.count() == 0 {
                    Message::HaveNone
                } else {
                    Message::Bitfield(have.to_wire().into())
                };
                let skip = !fast && have.count() == 0;
                if !skip {
                    state.send(PeerCommand::Send(first));
                }
                state.extensions = extensions;
                if extensions {
                    // After the bitfield: BEP 3 wants that first, and libtorrent sends the same order.
                    state.send(PeerCommand::Send(self.our_extended_handshake()));
                }
                tracing::debug!(%addr, "peer connected");
                self.peers.insert(key, state);
                self.publish_stats();
            }
            PeerEvent::Failed { key, addr, reason } => {
                tracing::debug!(%addr, %reason, "connection failed");
                if self.dialing.remove(&key).is_some() {
                    // A peer may refuse us while it is still loading the torrent: try again later.
                    self.addresses.dial_failed(addr, Instant::now());
                }
                self.live.fetch_sub(1, Ordering::Relaxed);
            }
            PeerEvent::Gone { key, reason } => {
                self.live.fetch_sub(1, Ordering::Relaxed);
                if let Some(peer) = self.peers.remove(&key) {
                    tracing::debug!(addr = %peer.addr, %reason, "peer disconnected");
                    self.bans.remember_departed(
                        key,
                        Identity {
                            addr: peer.addr,
                            peer_id: peer.peer_id,
                        },
                    );
                    self.picker.on_peer_gone(key);
                    // The address may be dialled again later (e.g. after a restart).
                    self.addresses.forget(peer.addr);
                    self.rechoke();
                    self.publish_stats();
                }
            }
            PeerEvent::Uploaded { key, bytes } => {
                self.uploaded += bytes;
                if let Some(p) = self.peers.get_mut(&key) {
                    p.upload.add(bytes);
                }
            }
            PeerEvent::Message { key, message } => {
                if let Err(why) = self.on_message(key, message)
                    && let Some(p) = self.peers.get(&key)
                {
                    tracing::info!(addr = %p.addr, %why, "dropping peer");
                    p.close();
                }
            }
        }
    }

    /// Whether a new connection to `peer_id` may stay. A second connection to a peer we are
    /// already connected to is dropped, except when both sides dialled each other at once:
    /// then each side sees the other's connection second, and both must drop the same one or
    /// the pair is left with none. The rule both apply is that the connection dialled by the
    /// lower peer id stays; an existing connection that loses is closed here. An existing
    /// connection older than `SETTLED_CONNECTION` always stays: both sides see it as the old
    /// one, and closing it would void every request in flight on it and its measured rates
    /// (a re-announce made every pair of a world redial and swap connections at once).
    fn resolve_duplicate(&mut self, peer_id: PeerId, outgoing: bool) -> bool {
        // A connection we are already closing does not count: the peer may be back before its
        // `Gone` event is.
        let existing = self
            .peers
            .iter()
            .find(|(_, p)| p.peer_id == peer_id && !p.is_closing());
        let Some((&old_key, old)) = existing else {
            return true;
        };
        if old.outgoing == outgoing || old.connected_at.elapsed() >= SETTLED_CONNECTION {
            return false;
        }
        let we_are_lower = self.ctx.our_id < peer_id;
        // The new connection was dialled by us if outgoing; it wins if its dialler is lower.
        let new_wins = outgoing == we_are_lower;
        if !new_wins {
            return false;
        }
        tracing::debug!(addr = %old.addr, "dropping the duplicate connection the other side also drops");
        old.send(PeerCommand::Close);
        // Its Gone event still comes and balances the live count; the state goes now.
        self.peers.remove(&old_key);
        self.picker.on_peer_gone(old_key);
        true
    }

    fn on_message(&mut self, key: PeerKey, message: Message) -> Result<(), MessageError> {
        let piece_count = self.geometry.piece_count();
        let Some(peer) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        match message {
            Message::KeepAlive | Message::Port(_) | Message::Suggest { .. } => {}
            Message::AllowedFast { .. } | Message::Unknown { .. } => {}
            Message::Extended { id, payload } => self.on_extended(key, id, &payload),
            Message::Choke => {
                peer.peer_choking = true;
                if !peer.fast {
                    // Without BEP 6 a choke silently voids every request.
                    self.picker.on_choked(key);
                }
            }
            Message::Unchoke => {
                peer.peer_choking = false;
                peer.last_unchoked_us_at = Some(Instant::now());
                self.fill_requests(key);
            }
            // An idle unchoke slot is given to a waiting peer at once, not at the next round.
            Message::Interested => {
                peer.peer_interested = true;
                self.rechoke();
            }
            Message::NotInterested => {
                peer.peer_interested = false;
                self.rechoke();
            }
            Message::Have { piece } => {
                let piece = self
                    .geometry
                    .piece(piece)
                    .ok_or(MessageError::HaveOutOfRange { piece, piece_count })?;
                if !self.picker.book().peer_has(key, piece) {
                    self.picker.on_peer_have(key, piece);
                    if self.picker.book().wants(piece) {
                        self.set_interest(key, true);
                        self.fill_requests(key);
                    }
                }
            }
            Message::Bitfield(bytes) => {
                let has = Bitfield::from_wire(&bytes, piece_count)?;
                self.on_peer_bitfield(key, &has);
            }
            Message::HaveAll => self.on_peer_bitfield(key, &Bitfield::full(piece_count)),
            Message::HaveNone => self.on_peer_bitfield(key, &Bitfield::empty(piece_count)),
            Message::Request(spec) => self.on_request(key, spec)?,
            Message::Cancel(spec) => {
                if let Some(block) = self.geometry.span(spec.piece, spec.offset, spec.len) {
                    peer.send(PeerCommand::CancelUpload(block));
                }
            }
            Message::Reject(spec) => {
                if let Some(block) = self.geometry.span(spec.piece, spec.offset, spec.len)
                    && self.picker.book().sent_at(key, block).is_some()
                {
                    self.picker.on_request_rejected(key, block);
                }
            }
            Message::Piece {
                piece,
                offset,
                data,
            } => {
                let len = u32::try_from(data.len()).map_err(|_| MessageError::OversizedBlock)?;
                let block = self.geometry.span(piece, offset, len).ok_or(
                    MessageError::BlockOutOfRange {
                        kind: "PIECE",
                        piece,
                        offset,
                        len,
                    },
                )?;
                self.on_block(key, block, &data);
            }
        }
        Ok(())
    }

    fn on_peer_bitfield(&mut self, key: PeerKey, has: &Bitfield) {
        self.picker.on_peer_bitfield(key, has);
        let wants = self.picker.book().peer_offers_wanted(key);
        self.set_interest(key, wants);
        self.fill_requests(key);
    }

    fn on_request(&mut self, key: PeerKey, spec: BlockSpec) -> Result<(), MessageError> {
        let Some(peer) = self.peers.get(&key) else {
            return Ok(());
        };
        let block = self
            .geometry
            .span(spec.piece, spec.offset, spec.len)
            .ok_or(MessageError::BlockOutOfRange {
                kind: "REQUEST",
                piece: spec.piece,
                offset: spec.offset,
                len: spec.len,
            })?;
        if peer.am_choking || !self.picker.book().ours().has(block.piece()) {
            // Choked peers may race a request with our CHOKE; BEP 6 peers expect a REJECT.
            if peer.fast {
                peer.send(PeerCommand::Send(Message::Reject(spec)));
            }
            return Ok(());
        }
        // A peer that cannot take the command is being closed by `send`.
        let _ = peer.send(PeerCommand::Upload(block));
        Ok(())
    }

    fn on_block(&mut self, key: PeerKey, block: BlockRef, data: &[u8]) {
        let now = self.now();
        let len = data.len() as u64;
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let book = self.picker.book();
        let sent_at = if let Some(at) = book.sent_at(key, block) {
            peer.note_rtt(now.saturating_sub(at));
            at
        } else if let Some(at) = book.taken_back_at(key, block) {
            // We took the request back but the peer had already queued the block (libtorrent
            // does as requests come): still used if needed, and it is the peer's real rate.
            at
        } else {
            // Never asked of this peer: nothing it pushes on us is stored.
            self.waste.unasked += len;
            peer.unasked += len;
            return;
        };
        peer.download.add(len);
        peer.last_block_at = Some(Instant::now());
        self.downloaded += len;
        let outcome = self.picker.on_block(now, key, block);
        if let Some(p) = &mut self.playback {
            p.session_mut().on_peer_bytes(block.piece(), len, sent_at);
        }
        match outcome {
            BlockOutcome::New { .. }
                if !self.have().has(block.piece()) && !self.verifying.contains(&block.piece()) =>
            {
                match self.assembly.store(&self.geometry, block, Some(key), data) {
                    Stored::Duplicate => self.waste.duplicate += len,
                    Stored::Partial => {}
                    Stored::Complete => self.verify(block.piece()),
                }
            }
            BlockOutcome::New { .. } | BlockOutcome::Duplicate => self.waste.duplicate += len,
            // The server took the piece over: these bytes came too late to save penalty.
            BlockOutcome::Superseded | BlockOutcome::Unrequested => self.waste.late += len,
        }
        self.fill_requests(key);
    }

    /// Sends CANCEL for every request the picker took back (endgame duplicates, timeouts,
    /// requests that can no longer make their deadline, pieces a seek left behind). The run
    /// loop calls this once after every event, so no handler has to remember it.
    pub(super) fn send_cancels(&mut self) {
        while let Some((other, block)) = self.picker.poll_cancel() {
            if let Some(p) = self.peers.get(&other) {
                p.send(PeerCommand::Send(Message::Cancel(spec_of(block))));
            }
        }
    }

    pub(super) fn set_interest(&mut self, key: PeerKey, interested: bool) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer.am_interested != interested {
            peer.am_interested = interested;
            let m = if interested {
                Message::Interested
            } else {
                Message::NotInterested
            };
            peer.send(PeerCommand::Send(m));
        }
    }

    /// Drops interest in peers that no longer have anything we want (after a piece).
    pub(super) fn refresh_interest(&mut self) {
        self.update_interest(false);
    }

    /// Interest in every peer from scratch (after the set of wanted pieces grew).
    pub(super) fn recompute_interest(&mut self) {
        self.update_interest(true);
    }

    fn update_interest(&mut self, all: bool) {
        let book = self.picker.book();
        let updates: Vec<(PeerKey, bool)> = self
            .peers
            .iter()
            .filter(|(_, p)| all || p.am_interested)
            .map(|(k, _)| (*k, book.peer_offers_wanted(*k)))
            .collect();
        for (key, wants) in updates {
            self.set_interest(key, wants);
        }
    }

    /// Asks the picker for as many blocks as the peer's pipeline has room for.
    pub(super) fn fill_requests(&mut self, key: PeerKey) {
        let now = self.now();
        let Some(peer) = self.peers.get(&key) else {
            return;
        };
        if peer.peer_choking
            || !peer.am_interested
            || self.storage_failed
            || self.verifying.len() >= super::MAX_VERIFYING
        {
            return;
        }
        let slots = peer
            .free_slots(self.picker.book().in_flight_count(key))
            .min(self.room_under_download_limit());
        if slots == 0 {
            return;
        }
        let view = PeerView {
            key,
            download_rate: peer.download.rate(),
            rtt: peer.min_rtt,
        };
        for block in self.picker.next_requests(now, &view, slots) {
            peer.send(PeerCommand::Send(Message::Request(spec_of(block))));
        }
    }

    /// Requests the download limit leaves room for, over every peer (`limited_total_queue`).
    fn room_under_download_limit(&self) -> usize {
        let Some(total) = peer_state::limited_total_queue(self.config.download_limit) else {
            return usize::MAX;
        };
        let book = self.picker.book();
        let in_flight: usize = self.peers.keys().map(|k| book.in_flight_count(*k)).sum();
        total.saturating_sub(in_flight)
    }
}

pub(super) fn spec_of(block: BlockRef) -> BlockSpec {
    BlockSpec {
        piece: block.piece().get(),
        offset: block.offset(),
        len: block.len(),
    }
}
