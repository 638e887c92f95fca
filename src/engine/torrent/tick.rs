//! The torrent task's once-a-second work: rates, request timeouts, the choker's round,
//! deadlines, and the per-peer trace.

use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::Torrent;
use crate::engine::peer::PeerCommand;
use crate::policy::choker::{ChokeDecision, ChokerPeer};
use crate::policy::{PeerKey, turnover};
use crate::proto::geometry::BlockRef;
use crate::proto::wire::Message;

impl Torrent {
    pub(super) fn on_tick(&mut self) {
        let now = Instant::now();
        let elapsed = now - self.last_tick;
        self.last_tick = now;
        let timeout = self.config.request_timeout;
        let t = self.now();
        let mut timed_out: Vec<PeerKey> = Vec::new();
        for (key, peer) in self.peers.iter_mut() {
            peer.download.tick(elapsed);
            peer.upload.tick(elapsed);
            // A peer serves our requests in order: one that keeps delivering is slow, not
            // stuck, however long the last request in its queue has waited. Only a peer that
            // has delivered nothing for the timeout loses its requests.
            let Some((_, oldest)) = self.picker.book().requests(*key).next() else {
                continue;
            };
            let last_block = peer
                .last_block_at
                .map(|b| b.saturating_duration_since(self.started));
            let since = last_block.map_or(oldest, |b| b.max(oldest));
            if t.saturating_sub(since) > timeout {
                timed_out.push(*key);
            }
        }
        for key in timed_out {
            let blocks: Vec<BlockRef> = self.picker.book().in_flight(key).collect();
            if let Some(peer) = self.peers.get(&key) {
                tracing::debug!(addr = %peer.addr, n = blocks.len(), "requests timed out");
            }
            for block in blocks {
                self.picker.on_request_timeout(key, block);
            }
        }
        self.rechoke();
        self.turn_over();
        self.replace_useless();
        if let Some(p) = &mut self.playback {
            p.session_mut().on_tick();
        }
        self.apply_deadlines();
        let keys: Vec<_> = self.peers.keys().copied().collect();
        for key in keys {
            self.fill_requests(key);
        }
        self.send_pex();
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
        let book = self.picker.book();
        for (key, peer) in &self.peers {
            let has = book.peer_piece_count(*key);
            peer.trace(
                at_s,
                self.picker.name(),
                *key,
                book.in_flight_count(*key),
                has,
            );
        }
    }

    pub(super) fn rechoke(&mut self) {
        let now = self.now();
        let seed = self.have().is_complete();
        let view = self.choker_view();
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

    /// Every connected peer as the choker and turnover see it.
    fn choker_view(&self) -> Vec<ChokerPeer> {
        let at = |t: Instant| t.saturating_duration_since(self.started);
        self.peers
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
            .collect()
    }

    /// Past the peer cap (incoming connections may use the slack), closes the oldest idle
    /// connections to bring the count back; see `policy::turnover`.
    fn turn_over(&mut self) {
        let excess = self
            .live
            .load(Ordering::Relaxed)
            .saturating_sub(self.config.max_peers);
        if excess == 0 {
            return;
        }
        let unchoked = self.choker.unchoked().collect();
        for key in turnover::to_close(self.now(), &self.choker_view(), &unchoked, excess) {
            if let Some(peer) = self.peers.get(&key) {
                tracing::debug!(addr = %peer.addr, "closed to make room at the peer cap");
                peer.send(PeerCommand::Close);
            }
        }
    }

    /// At most once a rechoke interval: at the peer cap with addresses not yet dialled, while
    /// we still want pieces and get less than 90% of our download limit (or have none), gives
    /// up the peers that give us nothing so that the dial loop meets others; see
    /// `policy::turnover`.
    fn replace_useless(&mut self) {
        let now = Instant::now();
        if self
            .last_replaced
            .is_some_and(|at| now < at + self.choker.config().rechoke_interval)
        {
            return;
        }
        let cap = self.config.max_peers;
        if self.live.load(Ordering::Relaxed) < cap || !self.addresses.has_queued() {
            return;
        }
        let starved = self.config.download_limit == 0 || {
            let rate: f64 = self.peers.values().map(|p| p.download.rate()).sum();
            rate < 0.9 * self.config.download_limit as f64
        };
        // Pieces no connected peer has are exactly what other peers may bring: we need not
        // be interested in anyone to want more.
        let book = self.picker.book();
        let wanting = self.geometry.pieces().any(|p| book.wants(p));
        if !starved || !wanting {
            return;
        }
        let unchoked = self.choker.unchoked().collect();
        let view = self.choker_view();
        let n = turnover::replace_at_most(cap);
        let silent_for = self.config.replace_silent_after;
        let useless = turnover::to_replace(self.now(), &view, &unchoked, silent_for, n);
        if !useless.is_empty() {
            self.last_replaced = Some(now);
        }
        for key in useless {
            if let Some(peer) = self.peers.get(&key) {
                tracing::debug!(addr = %peer.addr, "gave up a peer that gives us nothing, to try another");
                peer.send(PeerCommand::Close);
            }
        }
    }
}
