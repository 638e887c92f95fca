//! The torrent task's reactions: peer events, verified pieces, and the once-a-second tick.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::assembly::Stored;
use super::ban::{Identity, Sender, block_digests};
use super::peer_state::PeerState;
use super::{Checked, Torrent};
use crate::engine::peer::{PeerCommand, PeerEvent};
use crate::policy::choker::{ChokeDecision, ChokerPeer};
use crate::policy::picker::BlockOutcome;
use crate::policy::{PeerKey, PeerView};
use crate::proto::PeerId;
use crate::proto::bitfield::Bitfield;
use crate::proto::geometry::{BlockRef, PieceIndex};
use crate::proto::wire::{BlockSpec, Message};

impl Torrent {
    pub(super) fn on_event(&mut self, event: PeerEvent) {
        match event {
            PeerEvent::Connected {
                key,
                addr,
                peer_id,
                fast,
                commands,
                kill,
            } => {
                self.redial.remove(&addr);
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
                let mut state = PeerState::new(
                    addr,
                    peer_id,
                    fast,
                    commands,
                    kill,
                    self.geometry.piece_count(),
                    Instant::now(),
                );
                state.outgoing = outgoing;
                state.cap_queue_for_limit(self.config.download_limit);
                // Announce what we have: BEP 6 shorthands when both sides speak it.
                let first = if fast && self.have.is_complete() {
                    Message::HaveAll
                } else if fast && self.have.count() == 0 {
                    Message::HaveNone
                } else {
                    Message::Bitfield(self.have.to_wire().into())
                };
                let skip = !fast && self.have.count() == 0;
                if !skip {
                    state.send(PeerCommand::Send(first));
                }
                tracing::debug!(%addr, "peer connected");
                self.peers.insert(key, state);
                self.publish_stats();
            }
            PeerEvent::Failed { key, addr, reason } => {
                tracing::debug!(%addr, %reason, "connection failed");
                if self.dialing.remove(&key).is_some() {
                    // A peer may refuse us while it is still loading the torrent: try again later.
                    self.schedule_redial(addr);
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
                    self.known.remove(&peer.addr);
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
    /// lower peer id stays; an existing connection that loses is closed here.
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
        if old.outgoing == outgoing {
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

    fn on_message(&mut self, key: PeerKey, message: Message) -> Result<(), String> {
        let piece_count = self.geometry.piece_count();
        let Some(peer) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        match message {
            Message::KeepAlive | Message::Port(_) | Message::Suggest { .. } => {}
            Message::AllowedFast { .. } | Message::Extended { .. } | Message::Unknown { .. } => {}
            Message::Choke => {
                peer.peer_choking = true;
                if !peer.fast {
                    // Without BEP 6 a choke silently voids every request.
                    peer.in_flight.clear();
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
                    .ok_or_else(|| format!("HAVE for piece {piece} of {piece_count}"))?;
                if peer.has.set(piece) {
                    self.picker.on_peer_have(key, piece);
                    if self.picker.book().wants(piece) {
                        self.set_interest(key, true);
                        self.fill_requests(key);
                    }
                }
            }
            Message::Bitfield(bytes) => {
                peer.has = Bitfield::from_wire(&bytes, piece_count).map_err(|e| e.to_string())?;
                self.on_peer_bitfield(key);
            }
            Message::HaveAll => {
                peer.has = Bitfield::full(piece_count);
                self.on_peer_bitfield(key);
            }
            Message::HaveNone => {
                peer.has = Bitfield::empty(piece_count);
                self.on_peer_bitfield(key);
            }
            Message::Request(spec) => self.on_request(key, spec)?,
            Message::Cancel(spec) => {
                if let Some(block) = self.geometry.span(spec.piece, spec.offset, spec.len) {
                    peer.send(PeerCommand::CancelUpload(block));
                }
            }
            Message::Reject(spec) => {
                if let Some(block) = self.geometry.span(spec.piece, spec.offset, spec.len)
                    && peer.in_flight.remove(&block).is_some()
                {
                    self.picker.on_request_rejected(key, block);
                }
            }
            Message::Piece {
                piece,
                offset,
                data,
            } => {
                let len = u32::try_from(data.len()).map_err(|_| "oversized block".to_string())?;
                let block = self
                    .geometry
                    .span(piece, offset, len)
                    .ok_or_else(|| format!("PIECE {piece}:{offset}+{len} out of range"))?;
                self.on_block(key, block, &data);
            }
        }
        Ok(())
    }

    fn on_peer_bitfield(&mut self, key: PeerKey) {
        let Some(peer) = self.peers.get(&key) else {
            return;
        };
        self.picker.on_peer_bitfield(key, &peer.has);
        let wants = peer.has.ones().any(|i| {
            self.geometry
                .piece(i)
                .is_some_and(|p| self.picker.book().wants(p))
        });
        self.set_interest(key, wants);
        self.fill_requests(key);
    }

    fn on_request(&mut self, key: PeerKey, spec: BlockSpec) -> Result<(), String> {
        let Some(peer) = self.peers.get(&key) else {
            return Ok(());
        };
        let block = self
            .geometry
            .span(spec.piece, spec.offset, spec.len)
            .ok_or_else(|| {
                format!(
                    "REQUEST {}:{}+{} out of range or over 16 KiB",
                    spec.piece, spec.offset, spec.len
                )
            })?;
        if peer.am_choking || !self.have.has(block.piece()) {
            // Choked peers may race a request with our CHOKE; BEP 6 peers expect a REJECT.
            if peer.fast {
                peer.send(PeerCommand::Send(Message::Reject(spec)));
            }
            return Ok(());
        }
        if !peer.send(PeerCommand::Upload(block)) {
            return Err("peer's command queue is full".into());
        }
        Ok(())
    }

    fn on_block(&mut self, key: PeerKey, block: BlockRef, data: &[u8]) {
        let now = self.now();
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(sent_at) = peer.in_flight.remove(&block) else {
            // Never asked for (or cancelled and already given to someone else).
            self.wasted += data.len() as u64;
            return;
        };
        peer.note_rtt(sent_at.elapsed());
        peer.download.add(data.len() as u64);
        peer.last_block_at = Some(Instant::now());
        self.downloaded += data.len() as u64;
        let outcome = self.picker.on_block(now, key, block);
        self.flush_cancellations();
        let len = data.len() as u64;
        if let Some(p) = &mut self.playback {
            let requested_at = sent_at.saturating_duration_since(self.started);
            p.session_mut()
                .on_peer_bytes(block.piece(), len, requested_at);
        }
        match outcome {
            BlockOutcome::New { .. }
                if !self.have.has(block.piece()) && !self.verifying.contains(&block.piece()) =>
            {
                match self.assembly.store(&self.geometry, block, Some(key), data) {
                    Stored::Duplicate => self.count_duplicate(len),
                    Stored::Partial => {}
                    Stored::Complete => self.verify(block.piece()),
                }
            }
            BlockOutcome::New { .. } | BlockOutcome::Duplicate => self.count_duplicate(len),
            // The server took the piece over: these bytes came too late to save penalty.
            BlockOutcome::Superseded | BlockOutcome::Unrequested => self.count_wasted(len),
        }
        self.fill_requests(key);
    }

    fn count_duplicate(&mut self, bytes: u64) {
        self.wasted += bytes;
        if let Some(p) = &mut self.playback {
            p.ledger_mut().duplicate_bytes += bytes;
        }
    }

    pub(super) fn count_wasted(&mut self, bytes: u64) {
        self.wasted += bytes;
        if let Some(p) = &mut self.playback {
            p.ledger_mut().wasted_bytes += bytes;
        }
    }

    /// Sends CANCEL for every request the picker took back (endgame duplicates, timeouts,
    /// requests that can no longer make their deadline).
    pub(super) fn flush_cancellations(&mut self) {
        for (other, block) in self.picker.cancellations() {
            if let Some(p) = self.peers.get_mut(&other) {
                p.in_flight.remove(&block);
                p.send(PeerCommand::Send(Message::Cancel(spec_of(block))));
            }
        }
    }

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
            self.have.set(piece);
            self.picker.on_piece_verified(piece);
            self.publish_verified(piece);
            let now = self.now();
            if let Some(p) = &mut self.playback {
                p.on_verified(now, piece);
            }
            for peer in self.peers.values() {
                peer.send(PeerCommand::Send(Message::Have { piece: piece.get() }));
            }
            if self.have.is_complete() {
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
    fn ban(&mut self, who: Identity) {
        self.bans.ban(who);
        for p in self.peers.values() {
            if p.addr == who.addr || p.peer_id == who.peer_id {
                p.close();
            }
        }
        self.candidates.retain(|a| *a != who.addr);
        self.redial.remove(&who.addr);
    }

    fn set_interest(&mut self, key: PeerKey, interested: bool) {
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
    fn refresh_interest(&mut self) {
        self.update_interest(false);
    }

    /// Interest in every peer from scratch (after the set of wanted pieces grew).
    pub(super) fn recompute_interest(&mut self) {
        self.update_interest(true);
    }

    fn update_interest(&mut self, all: bool) {
        let updates: Vec<(PeerKey, bool)> = self
            .peers
            .iter()
            .filter(|(_, p)| all || p.am_interested)
            .map(|(k, p)| {
                (
                    *k,
                    p.has.ones().any(|i| {
                        self.geometry
                            .piece(i)
                            .is_some_and(|pc| self.picker.book().wants(pc))
                    }),
                )
            })
            .collect();
        for (key, wants) in updates {
            self.set_interest(key, wants);
        }
    }

    /// Asks the picker for as many blocks as the peer's pipeline has room for.
    pub(super) fn fill_requests(&mut self, key: PeerKey) {
        let now = self.now();
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer.peer_choking
            || !peer.am_interested
            || self.storage_failed
            || self.verifying.len() >= super::MAX_VERIFYING
        {
            return;
        }
        let slots = peer.free_slots();
        if slots == 0 {
            return;
        }
        let view = PeerView {
            key,
            download_rate: peer.download.rate(),
            rtt: peer.min_rtt,
        };
        let blocks = self.picker.next_requests(now, &view, slots);
        let sent_at = Instant::now();
        for block in blocks {
            peer.in_flight.insert(block, sent_at);
            peer.send(PeerCommand::Send(Message::Request(spec_of(block))));
        }
        // The deadline policy takes back requests that can no longer arrive in time.
        self.flush_cancellations();
    }

    pub(super) fn on_tick(&mut self) {
        let now = Instant::now();
        let elapsed = now - self.last_tick;
        self.last_tick = now;
        let timeout = self.config.request_timeout;
        let mut timed_out: Vec<(PeerKey, Vec<BlockRef>)> = Vec::new();
        for (key, peer) in self.peers.iter_mut() {
            peer.download.tick(elapsed);
            peer.upload.tick(elapsed);
            // A peer serves our requests in order: one that keeps delivering is slow, not
            // stuck, however long the last request in its queue has waited (timing requests
            // out one by one cancelled the queues of rate-limited peers over and over). Only a
            // peer that has delivered nothing for the timeout loses its requests.
            let Some(oldest) = peer.in_flight.values().min() else {
                continue;
            };
            let since = peer.last_block_at.map_or(*oldest, |b| b.max(*oldest));
            if now - since > timeout {
                timed_out.push((*key, peer.in_flight.keys().copied().collect()));
            }
        }
        for (key, blocks) in timed_out {
            if let Some(peer) = self.peers.get_mut(&key) {
                tracing::debug!(addr = %peer.addr, n = blocks.len(), "requests timed out");
                for block in &blocks {
                    peer.in_flight.remove(block);
                    self.picker.on_request_timeout(key, *block);
                }
            }
        }
        self.flush_cancellations();
        self.rechoke();
        if let Some(p) = &mut self.playback {
            p.session_mut().on_tick();
        }
        self.apply_deadlines();
        let keys: Vec<_> = self.peers.keys().copied().collect();
        for key in keys {
            self.fill_requests(key);
        }
        self.publish_stats();
        self.trace_peers();
    }

    /// Once a tick, a line per peer when `RUST_LOG=btvod::peer_trace=trace` (or `-vv`) asks
    /// for it: how the deadline policy's idle peers and late first unchokes were found.
    fn trace_peers(&self) {
        if !tracing::enabled!(target: "btvod::peer_trace", tracing::Level::TRACE) {
            return;
        }
        let at_s = self.started.elapsed().as_secs_f64();
        for peer in self.peers.values() {
            peer.trace(at_s, self.picker.name());
        }
    }

    fn rechoke(&mut self) {
        let now = self.now();
        let seed = self.have.is_complete();
        let at = |t: Instant| t.saturating_duration_since(self.started);
        let view: Vec<ChokerPeer> = self
            .peers
            .iter()
            .map(|(key, p)| ChokerPeer {
                key: *key,
                connected_at: at(p.connected_at),
                interested: p.peer_interested,
                am_interested: p.am_interested,
                download_rate: p.download.rate(),
                upload_rate: p.upload.rate(),
                unchoked_us_at: if p.peer_choking {
                    None
                } else {
                    p.last_unchoked_us_at.map(at)
                },
                last_block_at: p.last_block_at.map(at),
            })
            .collect();
        for decision in self.choker.rechoke(now, &view, seed, &mut self.rng) {
            let (key, choke) = match decision {
                ChokeDecision::Choke(k) => (k, true),
                ChokeDecision::Unchoke(k) => (k, false),
            };
            if let Some(peer) = self.peers.get_mut(&key)
                && peer.am_choking != choke
            {
                peer.am_choking = choke;
                let m = if choke {
                    Message::Choke
                } else {
                    Message::Unchoke
                };
                peer.send(PeerCommand::Send(m));
            }
        }
    }
}

pub(super) fn spec_of(block: BlockRef) -> BlockSpec {
    BlockSpec {
        piece: block.piece().get(),
        offset: block.offset(),
        len: block.len(),
    }
}
