//! The MSE handshake of either side as a state machine: bytes in (`feed`, never more than
//! `wants()` at a time, so nothing beyond what the specification allows is ever buffered),
//! bytes out (`poll_send`), and at the end the method chosen, the ciphers and the plaintext
//! that came with the handshake. No I/O, no clock and no randomness of its own: the key secret
//! and the padding are passed in.

use super::{
    CRYPTO_RC4, Ciphers, DhKeys, HASH_LEN, KEY_LEN, MAX_IA, MAX_PAD, MseError, VC, find, req1,
    select, torrent_mask,
};
use crate::proto::InfoHash;

/// Bytes of `VC, crypto_provide, len(PadC)` (message 3) and of `crypto_select, len(PadD)`
/// (message 4, after its VC).
const OFFER_LEN: usize = 8 + 4 + 2;
const ANSWER_LEN: usize = 4 + 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The peer's public key.
    PeerKey,
    /// Padding, then a marker: the encrypted VC (we dialled) or `HASH('req1', S)` (we accepted).
    Sync,
    /// `HASH('req2', SKEY) xor HASH('req3', S)`.
    Mask,
    /// The decrypted fixed fields of message 3 (`OFFER_LEN`) or of message 4 (`ANSWER_LEN`).
    Fields,
    /// Padding to skip; when accepting, followed by the 2-byte length of the initial payload.
    Pad(usize),
    /// The initial payload (accepting only).
    Payload(usize),
    Done,
}

/// How the handshake ended: the payload method, its ciphers when it is RC4, and the plaintext
/// already received (the initial payload and anything read after the handshake).
pub struct Finished {
    pub method: u32,
    pub ciphers: Option<Ciphers>,
    pub plaintext: Vec<u8>,
}

pub struct Handshake {
    initiator: bool,
    skey: InfoHash,
    /// Methods we offer (dialling) or accept (accepting).
    methods: u32,
    keys: DhKeys,
    pad: Vec<u8>,
    state: State,
    /// Bytes received and not yet used: at most what the current state may take.
    inbox: Vec<u8>,
    outbox: Vec<u8>,
    /// S, once the peer's key is known.
    secret: Option<[u8; KEY_LEN]>,
    ciphers: Option<Ciphers>,
    marker: Vec<u8>,
    chosen: u32,
    plaintext: Vec<u8>,
}

impl Handshake {
    /// The side that dialled: message 1 (`Ya`, `pad`) is ready to send at once.
    pub fn initiator(skey: InfoHash, offer: u32, secret: [u8; 20], pad: Vec<u8>) -> Self {
        let mut h = Self::new(true, skey, offer, secret, pad);
        h.outbox = [&h.keys.public[..], &h.pad].concat();
        h
    }

    /// The side that accepted; `allowed` are the methods it may select.
    pub fn responder(skey: InfoHash, allowed: u32, secret: [u8; 20], pad: Vec<u8>) -> Self {
        Self::new(false, skey, allowed, secret, pad)
    }

    fn new(initiator: bool, skey: InfoHash, methods: u32, secret: [u8; 20], pad: Vec<u8>) -> Self {
        let mut pad = pad;
        pad.truncate(MAX_PAD);
        Self {
            initiator,
            skey,
            methods,
            keys: DhKeys::new(secret),
            pad,
            state: State::PeerKey,
            inbox: Vec::new(),
            outbox: Vec::new(),
            secret: None,
            ciphers: None,
            marker: Vec::new(),
            chosen: 0,
            plaintext: Vec::new(),
        }
    }

    /// The most bytes `feed` may be given now; 0 once done.
    pub fn wants(&self) -> usize {
        let limit = match self.state {
            State::PeerKey => KEY_LEN,
            State::Sync => MAX_PAD + self.marker.len(),
            State::Mask => HASH_LEN,
            State::Fields if self.initiator => ANSWER_LEN,
            State::Fields => OFFER_LEN,
            State::Pad(n) if self.initiator => n,
            State::Pad(n) => n + 2,
            State::Payload(n) => n,
            State::Done => 0,
        };
        limit.saturating_sub(self.inbox.len())
    }

    /// Bytes to send, if any are ready.
    #[must_use]
    pub fn poll_send(&mut self) -> Option<Vec<u8>> {
        (!self.outbox.is_empty()).then(|| std::mem::take(&mut self.outbox))
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The result, once done (and the outbox has been sent).
    pub fn finish(mut self) -> Option<Finished> {
        if self.state != State::Done {
            return None;
        }
        let rc4 = self.chosen == CRYPTO_RC4;
        // What came after the handshake is payload: encrypted only when RC4 was chosen.
        if let (true, Some(c)) = (rc4, &mut self.ciphers) {
            c.decrypt.apply(&mut self.inbox);
        }
        self.plaintext.extend_from_slice(&self.inbox);
        Some(Finished {
            method: self.chosen,
            ciphers: if rc4 { self.ciphers } else { None },
            plaintext: self.plaintext,
        })
    }

    /// Takes bytes from the peer (at most `wants()`; more is an error) and moves on as far as
    /// they allow.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), MseError> {
        if bytes.len() > self.wants() {
            return Err(MseError::Overfed(bytes.len()));
        }
        self.inbox.extend_from_slice(bytes);
        while self.step()? {}
        Ok(())
    }

    /// One state's work if its bytes are here; false when it must wait.
    fn step(&mut self) -> Result<bool, MseError> {
        let (have, initiator) = (self.inbox.len(), self.initiator);
        match self.state {
            State::PeerKey if have >= KEY_LEN => self.on_peer_key()?,
            State::Sync => {
                let Some(at) = find(&self.inbox, &self.marker) else {
                    if self.wants() == 0 {
                        return Err(MseError::NoSync(MAX_PAD + self.marker.len()));
                    }
                    return Ok(false);
                };
                self.inbox.drain(..at + self.marker.len());
                if initiator {
                    // The decrypting cipher passes over the VC it just found.
                    let mut vc = VC;
                    self.cipher()?.decrypt.apply(&mut vc);
                    self.state = State::Fields;
                } else {
                    self.state = State::Mask;
                }
            }
            State::Mask if have >= HASH_LEN => {
                let mask: Vec<u8> = self.inbox.drain(..HASH_LEN).collect();
                let s = self.secret()?;
                if mask[..] != torrent_mask(self.skey, &s) {
                    return Err(MseError::UnknownTorrent);
                }
                self.state = State::Fields;
            }
            State::Fields if initiator && have >= ANSWER_LEN => {
                let f = self.take_decrypted(ANSWER_LEN)?;
                let chosen = u32::from_be_bytes([f[0], f[1], f[2], f[3]]);
                if chosen.count_ones() != 1 || chosen & self.methods == 0 {
                    return Err(MseError::BadSelect(chosen));
                }
                self.chosen = chosen;
                self.state = State::Pad(pad_len(f[4], f[5])?);
            }
            State::Fields if !initiator && have >= OFFER_LEN => {
                let f = self.take_decrypted(OFFER_LEN)?;
                if f[..8] != VC {
                    return Err(MseError::BadVc);
                }
                let offered = u32::from_be_bytes([f[8], f[9], f[10], f[11]]);
                self.chosen = select(offered, self.methods)?;
                self.state = State::Pad(pad_len(f[12], f[13])?);
            }
            State::Pad(n) if initiator && have >= n => {
                self.take_decrypted(n)?;
                self.state = State::Done;
            }
            State::Pad(n) if !initiator && have >= n + 2 => {
                let f = self.take_decrypted(n + 2)?;
                let ia = usize::from(u16::from_be_bytes([f[n], f[n + 1]]));
                if ia > MAX_IA {
                    return Err(MseError::PayloadTooLong(ia));
                }
                self.state = State::Payload(ia);
            }
            State::Payload(n) if have >= n => {
                self.plaintext = self.take_decrypted(n)?;
                self.answer()?;
                self.state = State::Done;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The peer's key is here: the shared secret, our answer (message 2 or 3), and what to
    /// look for next.
    fn on_peer_key(&mut self) -> Result<(), MseError> {
        let mut theirs = [0u8; KEY_LEN];
        theirs.copy_from_slice(&self.inbox[..KEY_LEN]);
        self.inbox.drain(..KEY_LEN);
        let s = self.keys.shared_secret(&theirs)?;
        let mut c = Ciphers::new(&s, self.skey, self.initiator);
        if self.initiator {
            let mut offer = [&VC[..], &self.methods.to_be_bytes(), &[0, 0], &[0, 0]].concat();
            c.encrypt.apply(&mut offer);
            self.outbox = [&req1(&s)[..], &torrent_mask(self.skey, &s), &offer].concat();
            self.marker = c.their_vc.to_vec();
        } else {
            self.outbox = [&self.keys.public[..], &self.pad].concat();
            self.marker = req1(&s).to_vec();
        }
        self.secret = Some(s);
        self.ciphers = Some(c);
        self.state = State::Sync;
        Ok(())
    }

    /// Message 4: VC, the method chosen, no padding.
    fn answer(&mut self) -> Result<(), MseError> {
        let mut answer = [&VC[..], &self.chosen.to_be_bytes(), &[0, 0]].concat();
        self.cipher()?.encrypt.apply(&mut answer);
        self.outbox = answer;
        Ok(())
    }

    fn secret(&self) -> Result<[u8; KEY_LEN], MseError> {
        // Set by `on_peer_key`, before any state that asks for it.
        self.secret.ok_or(MseError::BadPublicKey)
    }

    fn cipher(&mut self) -> Result<&mut Ciphers, MseError> {
        self.ciphers.as_mut().ok_or(MseError::BadPublicKey)
    }

    fn take_decrypted(&mut self, n: usize) -> Result<Vec<u8>, MseError> {
        let mut out: Vec<u8> = self.inbox.drain(..n).collect();
        self.cipher()?.decrypt.apply(&mut out);
        Ok(out)
    }
}

fn pad_len(hi: u8, lo: u8) -> Result<usize, MseError> {
    let n = usize::from(u16::from_be_bytes([hi, lo]));
    if n > MAX_PAD {
        return Err(MseError::PadTooLong(n));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mse::CRYPTO_PLAINTEXT;

    const SKEY: InfoHash = InfoHash([5; 20]);
    const BOTH: u32 = CRYPTO_RC4 | CRYPTO_PLAINTEXT;

    /// Runs both sides against each other, moving `chunk` bytes at a time.
    fn run(
        mut a: Handshake,
        mut b: Handshake,
        chunk: usize,
    ) -> (Result<(), MseError>, Handshake, Handshake) {
        let (mut to_b, mut to_a) = (Vec::new(), Vec::new());
        for _ in 0..10_000 {
            to_b.extend(a.poll_send().unwrap_or_default());
            to_a.extend(b.poll_send().unwrap_or_default());
            if a.is_done() && b.is_done() {
                return (Ok(()), a, b);
            }
            let fed = feed(&mut a, &mut to_a, chunk).and_then(|()| feed(&mut b, &mut to_b, chunk));
            if let Err(e) = fed {
                return (Err(e), a, b);
            }
        }
        panic!("the handshake did not end");
    }

    fn feed(side: &mut Handshake, queue: &mut Vec<u8>, chunk: usize) -> Result<(), MseError> {
        let n = queue.len().min(side.wants()).min(chunk);
        if n == 0 {
            return Ok(());
        }
        let bytes: Vec<u8> = queue.drain(..n).collect();
        side.feed(&bytes)
    }

    #[test]
    fn both_sides_agree_on_rc4_and_exchange_encrypted_payload_in_any_chunks() {
        for chunk in [1, 7, 4096] {
            let a = Handshake::initiator(SKEY, CRYPTO_RC4, [1; 20], vec![9; 100]);
            let b = Handshake::responder(SKEY, BOTH, [2; 20], vec![8; 512]);
            let (ended, a, b) = run(a, b, chunk);
            ended.unwrap();
            let (a, b) = (a.finish().unwrap(), b.finish().unwrap());
            assert_eq!((a.method, b.method), (CRYPTO_RC4, CRYPTO_RC4));
            let (mut ca, mut cb) = (a.ciphers.unwrap(), b.ciphers.unwrap());
            let mut msg = *b"\x13BitTorrent protocol";
            ca.encrypt.apply(&mut msg);
            cb.decrypt.apply(&mut msg);
            assert_eq!(&msg, b"\x13BitTorrent protocol");
        }
    }

    #[test]
    fn an_offer_of_both_gets_a_plaintext_payload() {
        let a = Handshake::initiator(SKEY, BOTH, [1; 20], vec![]);
        let b = Handshake::responder(SKEY, BOTH, [2; 20], vec![]);
        let (ended, a, b) = run(a, b, 13);
        ended.unwrap();
        let (a, b) = (a.finish().unwrap(), b.finish().unwrap());
        assert_eq!((a.method, b.method), (CRYPTO_PLAINTEXT, CRYPTO_PLAINTEXT));
        assert!(a.ciphers.is_none() && b.ciphers.is_none());
    }

    #[test]
    fn another_torrent_or_no_common_method_fails() {
        let a = Handshake::initiator(InfoHash([6; 20]), BOTH, [1; 20], vec![]);
        let b = Handshake::responder(SKEY, BOTH, [2; 20], vec![]);
        assert_eq!(run(a, b, 64).0, Err(MseError::UnknownTorrent));
        let a = Handshake::initiator(SKEY, CRYPTO_PLAINTEXT, [1; 20], vec![]);
        let b = Handshake::responder(SKEY, CRYPTO_RC4, [2; 20], vec![]);
        assert!(matches!(
            run(a, b, 64).0,
            Err(MseError::NoCommonMethod { .. })
        ));
    }

    #[test]
    fn a_peer_without_the_marker_is_refused_within_the_bound() {
        let mut b = Handshake::responder(SKEY, BOTH, [2; 20], vec![]);
        let mut key = [0u8; KEY_LEN];
        key[KEY_LEN - 1] = 2;
        b.feed(&key).unwrap();
        assert!(b.poll_send().is_some(), "message 2 after the key");
        assert_eq!(b.wants(), MAX_PAD + HASH_LEN);
        let mut fed = 0;
        let err = loop {
            match b.feed(&[0x55]) {
                Ok(()) => fed += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(err, MseError::NoSync(MAX_PAD + HASH_LEN));
        assert_eq!(fed, MAX_PAD + HASH_LEN - 1);
        assert!(matches!(b.feed(&[0; 2000]), Err(MseError::Overfed(2000))));
    }
}
