//! `mse_handshake`: the MSE/PE handshake state machine of either side. Either the input is all
//! the peer sends (a stranger's bytes), or an honest pair runs with the input's edits (a byte
//! overwritten, dropped or added) applied to what one side sends, which reaches every state.
//! Whatever happens, no side takes more than it says it wants, a finished handshake agrees on
//! one method, and an unedited run always finishes.

use btvod::proto::InfoHash;
use btvod::proto::mse::handshake::Handshake;
use btvod::proto::mse::{CRYPTO_PLAINTEXT, CRYPTO_RC4, MAX_IA};

use super::Input;

const SKEY: InfoHash = InfoHash([7; 20]);

pub fn mse_handshake(data: &[u8]) {
    let mut input = Input::new(data);
    let methods = [CRYPTO_RC4, CRYPTO_PLAINTEXT, CRYPTO_RC4 | CRYPTO_PLAINTEXT];
    let offer = methods[input.below(3) as usize];
    let allowed = methods[input.below(3) as usize];
    if input.bool() {
        stranger(&mut input);
        return;
    }
    let mut a = Handshake::initiator(SKEY, offer, [1; 20], vec![3; input.below(64) as usize]);
    let mut b = Handshake::responder(SKEY, allowed, [2; 20], vec![4; input.below(64) as usize]);
    let edit_a_to_b = input.bool();
    let (mut to_a, mut to_b) = (Vec::new(), Vec::new());
    let mut edited = false;
    for _ in 0..200 {
        to_b.extend(a.poll_send().unwrap_or_default());
        to_a.extend(b.poll_send().unwrap_or_default());
        let queue = if edit_a_to_b { &mut to_b } else { &mut to_a };
        edited |= edit(&mut input, queue);
        if a.is_done() && b.is_done() {
            break;
        }
        let chunk = 1 + input.below(200) as usize;
        if pass(&mut a, &mut to_a, chunk).is_err() || pass(&mut b, &mut to_b, chunk).is_err() {
            assert!(edited || offer & allowed == 0, "an honest handshake failed");
            return;
        }
    }
    let both_allow = offer & allowed != 0;
    if !edited && both_allow {
        assert!(
            a.is_done() && b.is_done(),
            "an honest handshake did not finish"
        );
    }
    if let (true, Some(a), Some(b)) = (!edited, a.finish(), b.finish()) {
        assert_eq!(a.method, b.method);
        assert_eq!(a.method.count_ones(), 1);
    }
}

/// The input is what a stranger sends a responder, in chunks.
fn stranger(input: &mut Input<'_>) {
    let mut b = Handshake::responder(SKEY, CRYPTO_RC4 | CRYPTO_PLAINTEXT, [2; 20], vec![]);
    while !input.is_empty() && !b.is_done() {
        let _ = b.poll_send();
        let want = b.wants();
        let size = want.min(1 + input.below(255) as usize);
        let chunk = input.bytes(size);
        if chunk.is_empty() || b.feed(chunk).is_err() {
            return;
        }
    }
    if let Some(done) = b.finish() {
        assert!(done.plaintext.len() <= MAX_IA + 512);
    }
}

/// Moves at most `chunk` queued bytes into `side`, never more than it wants.
fn pass(
    side: &mut Handshake,
    queue: &mut Vec<u8>,
    chunk: usize,
) -> Result<(), btvod::proto::mse::MseError> {
    let n = queue.len().min(side.wants()).min(chunk);
    if n == 0 {
        return Ok(());
    }
    let bytes: Vec<u8> = queue.drain(..n).collect();
    side.feed(&bytes)
}

/// Maybe one edit of the bytes in flight; true if one was made.
fn edit(input: &mut Input<'_>, queue: &mut Vec<u8>) -> bool {
    if queue.is_empty() || input.below(4) != 0 {
        return false;
    }
    let at = input.below(queue.len() as u32) as usize;
    match input.below(3) {
        0 => queue[at] ^= input.u8() | 1,
        1 => {
            queue.remove(at);
        }
        _ => queue.insert(at, input.u8()),
    }
    true
}
