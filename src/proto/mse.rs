//! Message stream encryption (MSE/PE, the "protocol encryption" libtorrent, Transmission and
//! Vuze speak): the Diffie-Hellman exchange over the specification's 768-bit prime, the keys
//! and hashes both sides derive from the shared secret, and the fields of its messages. The
//! bytes are moved, within the bounds set here, by `engine::peer::mse`.
//!
//! A = the side that dialled, B = the side that accepted:
//! 1. A→B `Ya, PadA`   2. B→A `Yb, PadB`
//! 3. A→B `HASH(req1,S), HASH(req2,SKEY)^HASH(req3,S), E_A(VC, provide, len PadC, PadC, len IA), E_A(IA)`
//! 4. B→A `E_B(VC, select, len PadD, PadD)`, then the payload, encrypted or not as selected.

pub mod handshake;

use num_bigint::BigUint;
use rc4::{KeyInit, Rc4, StreamCipher};
use sha1::{Digest, Sha1};

use super::InfoHash;

/// Bytes of a public key (a number below the 768-bit prime, big-endian, zero-padded).
pub const KEY_LEN: usize = 96;
/// Longest padding of any of the four messages.
pub const MAX_PAD: usize = 512;
/// The verification constant: 8 zero bytes, found encrypted to synchronise.
pub const VC: [u8; 8] = [0; 8];
/// Bytes of a SHA-1 hash (`req1`, `req2 ^ req3`).
pub const HASH_LEN: usize = 20;
/// Longest initial payload we accept in message 3 (a BitTorrent handshake is 68 bytes; the
/// specification allows 65535, more than a handshake needs buffering).
pub const MAX_IA: usize = 1024;
/// `crypto_provide` / `crypto_select` bits.
pub const CRYPTO_PLAINTEXT: u32 = 0x01;
pub const CRYPTO_RC4: u32 = 0x02;

/// The specification's prime P (768 bits); the generator is 2.
const PRIME_HEX: &[u8] = b"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74\
020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7\
EC6F44C42E9A63A36210000000000090563";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MseError {
    #[error("the peer's public key is not a usable Diffie-Hellman value")]
    BadPublicKey,
    #[error("no synchronisation marker within the {0} bytes the specification allows")]
    NoSync(usize),
    #[error("the peer asks for another torrent")]
    UnknownTorrent,
    #[error("the verification constant did not decrypt to zeros")]
    BadVc,
    #[error("padding of {0} bytes; at most {MAX_PAD} are allowed")]
    PadTooLong(usize),
    #[error("an initial payload of {0} bytes; at most {MAX_IA} are read")]
    PayloadTooLong(usize),
    #[error("no method both sides allow (offered {offered:#x}, allowed {allowed:#x})")]
    NoCommonMethod { offered: u32, allowed: u32 },
    #[error("the peer selected {0:#x}, which was not offered")]
    BadSelect(u32),
    #[error("{0} bytes fed where fewer were wanted (a caller's bug)")]
    Overfed(usize),
}

/// P, parsed once (two modular powers per handshake use it).
fn prime() -> &'static BigUint {
    static PRIME: std::sync::LazyLock<BigUint> = std::sync::LazyLock::new(|| {
        // The constant above is valid hex: parsing it cannot fail.
        BigUint::parse_bytes(PRIME_HEX, 16).unwrap_or_default()
    });
    &PRIME
}

/// One side's Diffie-Hellman key pair.
pub struct DhKeys {
    private: BigUint,
    pub public: [u8; KEY_LEN],
}

impl DhKeys {
    /// From 20 random bytes (160 bits, as the specification asks): the caller owns the RNG.
    pub fn new(secret: [u8; 20]) -> Self {
        let private = BigUint::from_bytes_be(&secret);
        let public = BigUint::from(2u32).modpow(&private, prime());
        Self {
            private,
            public: to_key(&public),
        }
    }

    /// S, from the peer's public key; a key of 0, 1, P-1 or beyond P is refused (it would make
    /// S guessable).
    pub fn shared_secret(&self, theirs: &[u8; KEY_LEN]) -> Result<[u8; KEY_LEN], MseError> {
        let p = prime();
        let y = BigUint::from_bytes_be(theirs);
        if y <= BigUint::from(1u32) || y >= p - 1u32 {
            return Err(MseError::BadPublicKey);
        }
        Ok(to_key(&y.modpow(&self.private, p)))
    }
}

fn to_key(n: &BigUint) -> [u8; KEY_LEN] {
    let bytes = n.to_bytes_be();
    let mut out = [0u8; KEY_LEN];
    let skip = KEY_LEN.saturating_sub(bytes.len());
    for (o, b) in out[skip..].iter_mut().zip(&bytes) {
        *o = *b;
    }
    out
}

fn hash(parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// `HASH('req1', S)`: what B looks for to find where A's message 3 starts.
pub fn req1(s: &[u8; KEY_LEN]) -> [u8; HASH_LEN] {
    hash(&[b"req1", s])
}

/// `HASH('req2', SKEY) xor HASH('req3', S)`: which torrent A wants, readable only with S.
pub fn torrent_mask(skey: InfoHash, s: &[u8; KEY_LEN]) -> [u8; HASH_LEN] {
    let (a, b) = (hash(&[b"req2", &skey.0]), hash(&[b"req3", s]));
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// RC4 with the first 1024 bytes of keystream dropped, as the specification asks.
pub struct Cipher(Rc4);

impl Cipher {
    fn new(key: &[u8; HASH_LEN]) -> Self {
        // 20-byte keys are within RC4's 1..=256.
        let mut rc4 = Rc4::new_from_slice(key).unwrap_or_else(|_| Rc4::new(&Default::default()));
        let mut discard = [0u8; 1024];
        rc4.apply_keystream(&mut discard);
        Self(rc4)
    }

    /// Encrypts or decrypts `data` in place (the same operation), advancing the keystream.
    pub fn apply(&mut self, data: &mut [u8]) {
        self.0.apply_keystream(data);
    }
}

/// The two ciphers of one side: what it sends and what it receives.
pub struct Ciphers {
    pub encrypt: Cipher,
    pub decrypt: Cipher,
    /// VC as the peer's first encrypted bytes will carry it: what A searches B's stream for.
    pub their_vc: [u8; 8],
}

impl Ciphers {
    /// `initiator`: we dialled (we are A, sending under keyA).
    pub fn new(s: &[u8; KEY_LEN], skey: InfoHash, initiator: bool) -> Self {
        let key_a = hash(&[b"keyA", s, &skey.0]);
        let key_b = hash(&[b"keyB", s, &skey.0]);
        let (ours, theirs) = if initiator {
            (key_a, key_b)
        } else {
            (key_b, key_a)
        };
        let mut their_vc = VC;
        Cipher::new(&theirs).apply(&mut their_vc);
        Self {
            encrypt: Cipher::new(&ours),
            decrypt: Cipher::new(&theirs),
            their_vc,
        }
    }
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The method B picks from A's offer: plaintext when both allow it (the handshake stays
/// obfuscated; libtorrent's default choice too, and RC4 costs CPU), else RC4.
pub fn select(offered: u32, allowed: u32) -> Result<u32, MseError> {
    let both = offered & allowed;
    [CRYPTO_PLAINTEXT, CRYPTO_RC4]
        .into_iter()
        .find(|m| both & m != 0)
        .ok_or(MseError::NoCommonMethod { offered, allowed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_reach_the_same_secret_and_each_decrypts_the_other() {
        let (a, b) = (DhKeys::new([7; 20]), DhKeys::new([9; 20]));
        let s = a.shared_secret(&b.public).unwrap();
        assert_eq!(s, b.shared_secret(&a.public).unwrap());
        let skey = InfoHash([3; 20]);
        let (mut ca, mut cb) = (Ciphers::new(&s, skey, true), Ciphers::new(&s, skey, false));
        let mut msg = *b"hello, peer";
        ca.encrypt.apply(&mut msg);
        assert_ne!(&msg, b"hello, peer");
        cb.decrypt.apply(&mut msg);
        assert_eq!(&msg, b"hello, peer");
        let mut vc = VC;
        cb.encrypt.apply(&mut vc);
        assert_eq!(vc, ca.their_vc, "A finds B's encrypted VC");
        assert_eq!(req1(&s), req1(&b.shared_secret(&a.public).unwrap()));
        assert_ne!(torrent_mask(skey, &s), torrent_mask(InfoHash([4; 20]), &s));
    }

    #[test]
    fn weak_public_keys_are_refused() {
        let a = DhKeys::new([7; 20]);
        let mut one = [0u8; KEY_LEN];
        one[KEY_LEN - 1] = 1;
        assert_eq!(a.shared_secret(&one), Err(MseError::BadPublicKey));
        assert_eq!(
            a.shared_secret(&[0xff; KEY_LEN]),
            Err(MseError::BadPublicKey)
        );
        assert_eq!(a.shared_secret(&[0; KEY_LEN]), Err(MseError::BadPublicKey));
        assert_eq!(a.public.len(), KEY_LEN);
    }

    #[test]
    fn plaintext_is_chosen_when_both_allow_it_and_rc4_when_only_it_is() {
        let both = CRYPTO_RC4 | CRYPTO_PLAINTEXT;
        assert_eq!(select(both, both), Ok(CRYPTO_PLAINTEXT));
        assert_eq!(select(CRYPTO_RC4, both), Ok(CRYPTO_RC4));
        assert_eq!(select(both, CRYPTO_RC4), Ok(CRYPTO_RC4));
        assert!(select(CRYPTO_PLAINTEXT, CRYPTO_RC4).is_err());
        assert_eq!(find(b"xxabcx", b"abc"), Some(2));
        assert_eq!(find(b"ab", b"abc"), None);
    }
}
