//! The addresses the torrent may dial: each queued once, the whole set capped, and a failed
//! dial tried again after a back-off. Trackers, the DHT, `--peer` and peer exchange all feed it,
//! and they are as untrusted as peers: none may grow it without bound.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

/// Addresses queued, being dialled or connected to, at most (each is forgotten when its
/// connection ends or its dials are given up).
const MAX_KNOWN: usize = 2000;

/// Dials of one address that fail in a row before it is left for a source to offer again.
const MAX_REDIALS: u32 = 6;

#[derive(Debug, Default)]
pub(super) struct AddressBook {
    /// Addresses to dial, in order; `known` keeps one from being queued twice.
    queue: VecDeque<SocketAddr>,
    known: HashSet<SocketAddr>,
    /// Addresses whose dial failed: failures in a row, and when to try again (None once
    /// queued).
    redial: HashMap<SocketAddr, (u32, Option<Instant>)>,
    /// Known addresses that peer exchange says speak uTP (dialled over uTP first).
    utp: HashSet<SocketAddr>,
    /// Addresses refused since the book last filled; said once per filling, not per address.
    refused: u64,
}

impl AddressBook {
    /// Queues `addr` unless it is known already or the book is full.
    pub(super) fn offer(&mut self, addr: SocketAddr) {
        if self.admit(addr) {
            self.queue.push_back(addr);
        }
    }

    /// As `offer`, but dialled before the addresses already queued (a seed, say, for a
    /// torrent that still downloads). Known addresses stay where they are.
    pub(super) fn offer_first(&mut self, addr: SocketAddr) {
        if self.admit(addr) {
            self.queue.push_front(addr);
        }
    }

    /// Records `addr` as known, unless it is already or the book is full; says whether it
    /// is new, and so is to be queued.
    fn admit(&mut self, addr: SocketAddr) -> bool {
        if self.known.contains(&addr) {
            return false;
        }
        if self.known.len() >= MAX_KNOWN {
            if self.refused == 0 {
                tracing::info!(
                    max = MAX_KNOWN,
                    "the address book is full; more addresses from trackers, the DHT or peers \
                     are dropped until some are given up"
                );
            }
            self.refused += 1;
            return false;
        }
        self.known.insert(addr)
    }

    /// Remembers that a known address speaks uTP (a PEX flag).
    pub(super) fn hint_utp(&mut self, addr: SocketAddr) {
        if self.known.contains(&addr) {
            self.utp.insert(addr);
        }
    }

    /// Whether `addr` was said to speak uTP.
    pub(super) fn speaks_utp(&self, addr: &SocketAddr) -> bool {
        self.utp.contains(addr)
    }

    /// Some address waits to be dialled.
    pub(super) fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// The next address to dial.
    pub(super) fn next(&mut self) -> Option<SocketAddr> {
        self.queue.pop_front()
    }

    /// A connection to `addr` is up: its failures are forgiven.
    pub(super) fn connected(&mut self, addr: SocketAddr) {
        self.redial.remove(&addr);
    }

    /// Backs off 1, 2, 4, ... seconds after each failed dial, giving up after `MAX_REDIALS`.
    pub(super) fn dial_failed(&mut self, addr: SocketAddr, now: Instant) {
        let attempts = self.redial.get(&addr).map_or(0, |(n, _)| *n) + 1;
        if attempts > MAX_REDIALS {
            // Forgotten, so that a source offering it again is heard.
            self.redial.remove(&addr);
            self.forget(addr);
            return;
        }
        let wait = Duration::from_secs(1 << (attempts - 1).min(6));
        self.redial.insert(addr, (attempts, Some(now + wait)));
    }

    /// A connection to `addr` ended: it may be offered and dialled again later.
    pub(super) fn forget(&mut self, addr: SocketAddr) {
        self.known.remove(&addr);
        self.utp.remove(&addr);
        if self.refused > 0 && self.known.len() < MAX_KNOWN * 9 / 10 {
            tracing::info!(refused = self.refused, "the address book has room again");
            self.refused = 0;
        }
    }

    /// Never dialled again (a banned peer's address).
    pub(super) fn remove(&mut self, addr: SocketAddr) {
        self.queue.retain(|a| *a != addr);
        self.redial.remove(&addr);
    }

    /// Queues again the addresses whose back-off has passed.
    pub(super) fn requeue_due(&mut self, now: Instant) {
        for (addr, (_, at)) in &mut self.redial {
            if at.is_some_and(|t| t <= now) {
                *at = None;
                if !self.queue.contains(addr) {
                    self.queue.push_back(*addr);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 6881))
    }

    #[test]
    fn offers_are_queued_once_and_capped() {
        let mut book = AddressBook::default();
        for i in 0..10_000 {
            book.offer(addr(i));
            book.offer(addr(i));
        }
        assert_eq!(book.known.len(), MAX_KNOWN);
        assert_eq!(book.refused, 2 * 10_000 - 2 * MAX_KNOWN as u64);
        let queued: Vec<_> = std::iter::from_fn(|| book.next()).collect();
        assert_eq!(queued.len(), MAX_KNOWN);
        assert_eq!(queued[0], addr(0));
    }

    #[test]
    fn a_failing_address_backs_off_then_is_given_up_and_makes_room() {
        let mut book = AddressBook::default();
        for i in 0..MAX_KNOWN as u32 + 1 {
            book.offer(addr(i));
        }
        let t0 = Instant::now();
        let a = book.next().unwrap();
        book.dial_failed(a, t0);
        book.requeue_due(t0 + Duration::from_millis(999));
        assert!(!book.queue.contains(&a), "requeued before its 1 s back-off");
        book.requeue_due(t0 + Duration::from_secs(1));
        assert_eq!(book.queue.back(), Some(&a));
        for _ in 1..MAX_REDIALS {
            book.dial_failed(a, t0);
        }
        assert_eq!(
            book.known.len(),
            MAX_KNOWN,
            "still known until the last failure"
        );
        book.dial_failed(a, t0);
        assert_eq!(book.known.len(), MAX_KNOWN - 1, "given up");
        // The one refused while full is heard when offered again.
        book.offer(addr(MAX_KNOWN as u32));
        assert_eq!(book.known.len(), MAX_KNOWN);
    }

    #[test]
    fn an_address_offered_first_is_dialled_before_those_queued() {
        let mut book = AddressBook::default();
        book.offer(addr(1));
        book.offer(addr(2));
        book.offer_first(addr(3));
        book.offer_first(addr(1));
        let queued: Vec<_> = std::iter::from_fn(|| book.next()).collect();
        assert_eq!(queued, vec![addr(3), addr(1), addr(2)]);
        assert!(!book.has_queued());
    }

    #[test]
    fn a_utp_hint_lasts_as_long_as_the_address_is_known() {
        let mut book = AddressBook::default();
        book.offer(addr(1));
        book.hint_utp(addr(1));
        book.offer(addr(2));
        assert!(book.speaks_utp(&addr(1)) && !book.speaks_utp(&addr(2)));
        book.forget(addr(1));
        assert!(!book.speaks_utp(&addr(1)));
    }
}
