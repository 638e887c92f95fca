//! A fixed-length set of pieces (ours or a peer's), convertible to and from the wire's bytes.

use bitvec::prelude::{BitVec, Msb0};

use super::geometry::PieceIndex;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BitfieldError {
    #[error("bitfield is {got} bytes, expected {expected}")]
    WrongLength { got: usize, expected: usize },
    #[error("bitfield has bits set past the last piece")]
    SpareBitsSet,
}

/// One bit per piece, most significant bit of the first byte is piece 0 (BEP 3).
#[derive(Clone, PartialEq, Eq)]
pub struct Bitfield {
    bits: BitVec<u8, Msb0>,
    ones: u32,
}

impl std::fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s: String = self
            .bits
            .iter()
            .map(|b| if *b { '1' } else { '0' })
            .collect();
        write!(f, "Bitfield({s})")
    }
}

impl Bitfield {
    pub fn empty(piece_count: u32) -> Self {
        Self {
            bits: BitVec::repeat(false, piece_count as usize),
            ones: 0,
        }
    }

    pub fn full(piece_count: u32) -> Self {
        Self {
            bits: BitVec::repeat(true, piece_count as usize),
            ones: piece_count,
        }
    }

    /// Parses a peer's BITFIELD payload: exact length, spare bits zero.
    pub fn from_wire(bytes: &[u8], piece_count: u32) -> Result<Self, BitfieldError> {
        let expected = (piece_count as usize).div_ceil(8);
        if bytes.len() != expected {
            return Err(BitfieldError::WrongLength {
                got: bytes.len(),
                expected,
            });
        }
        let mut bits: BitVec<u8, Msb0> = BitVec::from_slice(bytes);
        if bits[piece_count as usize..].any() {
            return Err(BitfieldError::SpareBitsSet);
        }
        bits.truncate(piece_count as usize);
        let ones = bits.count_ones() as u32;
        Ok(Self { bits, ones })
    }

    /// The BITFIELD payload, spare bits zero.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut bits = self.bits.clone();
        bits.set_uninitialized(false);
        bits.into_vec()
    }

    pub fn len(&self) -> u32 {
        self.bits.len() as u32
    }
    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }
    pub fn count(&self) -> u32 {
        self.ones
    }
    pub fn is_complete(&self) -> bool {
        self.ones as usize == self.bits.len()
    }
    pub fn has(&self, piece: PieceIndex) -> bool {
        self.bits.get(piece.as_usize()).is_some_and(|b| *b)
    }

    /// Sets a bit; returns whether it was newly set.
    pub fn set(&mut self, piece: PieceIndex) -> bool {
        let i = piece.as_usize();
        if i >= self.bits.len() || self.bits[i] {
            return false;
        }
        self.bits.set(i, true);
        self.ones += 1;
        true
    }

    /// Clears a bit; returns whether it was set.
    pub fn clear(&mut self, piece: PieceIndex) -> bool {
        let i = piece.as_usize();
        if i >= self.bits.len() || !self.bits[i] {
            return false;
        }
        self.bits.set(i, false);
        self.ones -= 1;
        true
    }

    /// Indices of the set bits, ascending.
    pub fn ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.bits.iter_ones().map(|i| i as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::geometry::Geometry;

    #[test]
    fn wire_round_trip_and_msb_first() {
        let g = Geometry::new(1, &[10]).unwrap();
        let mut b = Bitfield::empty(10);
        b.set(g.piece(0).unwrap());
        b.set(g.piece(9).unwrap());
        assert_eq!(b.to_wire(), vec![0b1000_0000, 0b0100_0000]);
        assert_eq!(Bitfield::from_wire(&b.to_wire(), 10).unwrap(), b);
        assert_eq!(b.count(), 2);
    }

    #[test]
    fn spare_bits_and_wrong_length_are_refused() {
        assert_eq!(
            Bitfield::from_wire(&[0xff, 0xff], 10),
            Err(BitfieldError::SpareBitsSet)
        );
        assert_eq!(
            Bitfield::from_wire(&[0xff], 10),
            Err(BitfieldError::WrongLength {
                got: 1,
                expected: 2
            })
        );
        assert!(
            Bitfield::from_wire(&[0xff, 0xc0], 10)
                .unwrap()
                .is_complete()
        );
    }

    #[test]
    fn set_and_clear_keep_the_count() {
        let g = Geometry::new(1, &[3]).unwrap();
        let mut b = Bitfield::empty(3);
        let p = g.piece(1).unwrap();
        assert!(b.set(p));
        assert!(!b.set(p));
        assert_eq!(b.count(), 1);
        assert!(b.clear(p));
        assert_eq!(b.count(), 0);
        assert_eq!(Bitfield::full(3).ones().collect::<Vec<_>>(), vec![0, 1, 2]);
    }
}
