//! Inputs that the fuzz targets (`fuzz/`, run by `scripts/fuzz.sh`) found failing, replayed
//! through the same checks (`fuzz/src/checks`) byte for byte, each with the specific behaviour
//! that was wrong asserted on its own.

#[allow(dead_code, unused_imports)]
#[path = "../fuzz/src/checks/mod.rs"]
mod checks;

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

use btvod::proto::tracker::{AnnounceResponse, PeerListFormat, TrackerProtoError};

/// The documented cap on texts from a tracker (`MAX_TEXT_LEN` in `proto::tracker::response`).
const MAX_TEXT_LEN: usize = 1024;

fn reply_with(key: &str, text: &[u8]) -> Vec<u8> {
    let mut reply = format!("d{}:{key}{}:", key.len(), text.len()).into_bytes();
    reply.extend_from_slice(text);
    reply.push(b'e');
    reply
}

/// Found by the `tracker_response` check: a tracker text was cut to 1024 bytes *before* the
/// lossy UTF-8 conversion, so 1024 invalid bytes became 3072 bytes of U+FFFD (three times the
/// cap), and our tracker echoing such a text sent one that the client then cut differently.
/// Fixed in `proto::tracker::response::text`: convert, then cut at a character boundary.
#[test]
fn tracker_texts_of_invalid_utf8_stay_within_the_cap() {
    let invalid = vec![0xffu8; MAX_TEXT_LEN];
    let reply = reply_with("warning message", &invalid);
    checks::tracker_response(&reply);
    let parsed = AnnounceResponse::parse(&reply).expect("a reply with only a warning");
    let warning = parsed.warning.clone().expect("the warning");
    assert!(warning.len() <= MAX_TEXT_LEN, "{} bytes", warning.len());
    assert!(warning.chars().all(|c| c == char::REPLACEMENT_CHARACTER));
    let echoed = AnnounceResponse::parse(&parsed.encode(PeerListFormat::Compact)).unwrap();
    assert_eq!(echoed.warning, parsed.warning);

    let refusal = reply_with("failure reason", &invalid);
    checks::tracker_response(&refusal);
    match AnnounceResponse::parse(&refusal) {
        Err(TrackerProtoError::Failure(reason)) => assert!(reason.len() <= MAX_TEXT_LEN),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// The same cut through a multi-byte character: 400 three-byte characters are 1200 bytes, and
/// the text keeps the 341 whole ones that fit (the split one no longer becomes a U+FFFD past
/// the cap).
#[test]
fn tracker_text_cut_inside_a_character_keeps_whole_characters() {
    let euros = "\u{20ac}".repeat(400);
    let reply = reply_with("tracker id", euros.as_bytes());
    checks::tracker_response(&reply);
    let parsed = AnnounceResponse::parse(&reply).unwrap();
    assert_eq!(parsed.tracker_id, Some("\u{20ac}".repeat(341)));
}

/// Found by `picker_events` on its first run, and a false alarm of the check, kept so the
/// check stays right: with a peer's measured rate falling from 3 MB/s to 12 KB/s, the deadline
/// policy takes back every queued request that would now land after its deadline, then asks
/// the same peer again for one of them (block 5:0), which fits once the hopeless ones ahead of
/// it are gone. That is a CANCEL followed by a REQUEST, not a second live request, so the check
/// accepts a re-request exactly when the same call cancelled it.
#[test]
fn deadline_policy_may_re_request_a_block_it_just_took_back() {
    checks::picker_events(&unhex(
        "0207 0164 0003 0005 2a00 0000 3f00 7017 bcbc bc03 ff1f 0400 04f4 00bc
         bcbc bcbc bcbc bcbc bc00 03",
    ));
}
