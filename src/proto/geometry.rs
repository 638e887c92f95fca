//! Piece, block and file byte arithmetic of one torrent: the only place piece indices and block
//! references are made, so every index held elsewhere is known to be in range.

use std::ops::Range;

/// Every request btvod makes is one 16 KiB block (the last block of a piece may be shorter).
pub const BLOCK_LEN: u32 = 16 * 1024;

/// Index of a piece that exists in the torrent it was made for (see [`Geometry::piece`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PieceIndex(u32);

impl PieceIndex {
    pub fn get(self) -> u32 {
        self.0
    }
    pub fn as_usize(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Display for PieceIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A byte span inside one piece: `len` bytes at `offset`, 1..=16 KiB, never past the piece end.
/// Spans made by [`Geometry::blocks`] are aligned blocks; peers may ask for any valid span.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRef {
    piece: PieceIndex,
    offset: u32,
    len: u32,
}

// A span is never empty (1..=16 KiB), so `is_empty` would always be false.
#[allow(clippy::len_without_is_empty)]
impl BlockRef {
    pub fn piece(self) -> PieceIndex {
        self.piece
    }
    pub fn offset(self) -> u32 {
        self.offset
    }
    pub fn len(self) -> u32 {
        self.len
    }
    /// Block number within the piece (meaningful for aligned blocks).
    pub fn index(self) -> u32 {
        self.offset / BLOCK_LEN
    }
    pub fn is_aligned(self) -> bool {
        self.offset.is_multiple_of(BLOCK_LEN)
    }
}

/// One file's place in the torrent's concatenated byte stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileExtent {
    pub offset: u64,
    pub length: u64,
}

impl FileExtent {
    pub fn range(&self) -> Range<u64> {
        self.offset..self.offset + self.length
    }
}

/// A piece of file: `len` bytes of file `file` starting at `file_offset`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FileSlice {
    pub file: usize,
    pub file_offset: u64,
    pub len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeometryError {
    #[error("piece length is zero")]
    ZeroPieceLength,
    #[error("the torrent holds no bytes")]
    Empty,
    #[error("total length {total} overflows or needs more than 2^32 pieces of {piece_len} bytes")]
    TooManyPieces { total: u64, piece_len: u32 },
}

/// The shape of a torrent: total length, piece length and where each file lies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    total_len: u64,
    piece_len: u32,
    piece_count: u32,
    files: Vec<FileExtent>,
}

impl Geometry {
    /// Lays files end to end in the given order.
    pub fn new(piece_len: u32, file_lengths: &[u64]) -> Result<Self, GeometryError> {
        if piece_len == 0 {
            return Err(GeometryError::ZeroPieceLength);
        }
        let mut files = Vec::with_capacity(file_lengths.len());
        let mut offset: u64 = 0;
        for &length in file_lengths {
            files.push(FileExtent { offset, length });
            offset = offset
                .checked_add(length)
                .ok_or(GeometryError::TooManyPieces {
                    total: u64::MAX,
                    piece_len,
                })?;
        }
        if offset == 0 {
            return Err(GeometryError::Empty);
        }
        let count = offset.div_ceil(u64::from(piece_len));
        let piece_count = u32::try_from(count).map_err(|_| GeometryError::TooManyPieces {
            total: offset,
            piece_len,
        })?;
        Ok(Self {
            total_len: offset,
            piece_len,
            piece_count,
            files,
        })
    }

    pub fn total_len(&self) -> u64 {
        self.total_len
    }
    /// The nominal piece length (every piece but possibly the last).
    pub fn piece_len(&self) -> u32 {
        self.piece_len
    }
    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }
    pub fn files(&self) -> &[FileExtent] {
        &self.files
    }

    /// The piece with index `i`, if the torrent has one.
    pub fn piece(&self, i: u32) -> Option<PieceIndex> {
        (i < self.piece_count).then_some(PieceIndex(i))
    }

    pub fn pieces(&self) -> impl DoubleEndedIterator<Item = PieceIndex> + ExactSizeIterator {
        (0..self.piece_count).map(PieceIndex)
    }

    pub fn last_piece(&self) -> PieceIndex {
        PieceIndex(self.piece_count - 1)
    }

    /// Length of a given piece: the nominal length, or what is left for the last one.
    pub fn piece_size(&self, piece: PieceIndex) -> u32 {
        let start = u64::from(piece.0) * u64::from(self.piece_len);
        // Bounded by piece_len, so the cast cannot truncate.
        (self.total_len - start).min(u64::from(self.piece_len)) as u32
    }

    /// The piece's bytes in the torrent's concatenated stream.
    pub fn piece_range(&self, piece: PieceIndex) -> Range<u64> {
        let start = u64::from(piece.0) * u64::from(self.piece_len);
        start..start + u64::from(self.piece_size(piece))
    }

    /// The piece that holds torrent byte `byte`.
    pub fn piece_at(&self, byte: u64) -> Option<PieceIndex> {
        (byte < self.total_len).then(|| PieceIndex((byte / u64::from(self.piece_len)) as u32))
    }

    pub fn block_count(&self, piece: PieceIndex) -> u32 {
        self.piece_size(piece).div_ceil(BLOCK_LEN)
    }

    /// The aligned 16 KiB blocks of a piece, in order.
    pub fn blocks(&self, piece: PieceIndex) -> impl ExactSizeIterator<Item = BlockRef> + use<> {
        let size = self.piece_size(piece);
        (0..size.div_ceil(BLOCK_LEN)).map(move |i| {
            let offset = i * BLOCK_LEN;
            BlockRef {
                piece,
                offset,
                len: (size - offset).min(BLOCK_LEN),
            }
        })
    }

    /// Aligned block number `index` of a piece.
    pub fn block(&self, piece: PieceIndex, index: u32) -> Option<BlockRef> {
        let size = self.piece_size(piece);
        let offset = index.checked_mul(BLOCK_LEN)?;
        (offset < size).then(|| BlockRef {
            piece,
            offset,
            len: (size - offset).min(BLOCK_LEN),
        })
    }

    /// A span a peer asked for or sent: valid when the piece exists, `len` is 1..=16 KiB and the
    /// span ends inside the piece.
    pub fn span(&self, piece: u32, offset: u32, len: u32) -> Option<BlockRef> {
        let piece = self.piece(piece)?;
        let end = offset.checked_add(len)?;
        (len > 0 && len <= BLOCK_LEN && end <= self.piece_size(piece)).then_some(BlockRef {
            piece,
            offset,
            len,
        })
    }

    /// Pieces that hold at least one byte of file `file` (empty for an empty file).
    pub fn pieces_of_file(&self, file: usize) -> Range<u32> {
        let Some(extent) = self.files.get(file) else {
            return 0..0;
        };
        if extent.length == 0 {
            return 0..0;
        }
        let first = extent.offset / u64::from(self.piece_len);
        let last = (extent.offset + extent.length - 1) / u64::from(self.piece_len);
        first as u32..last as u32 + 1
    }

    /// Maps a byte range of the torrent stream onto file slices, in order, skipping empty files.
    pub fn file_slices(&self, range: Range<u64>) -> Vec<FileSlice> {
        let mut out = Vec::new();
        if range.start >= range.end {
            return out;
        }
        // First file whose end is past range.start.
        let first = self
            .files
            .partition_point(|f| f.offset + f.length <= range.start);
        for (file, extent) in self.files.iter().enumerate().skip(first) {
            if extent.offset >= range.end {
                break;
            }
            if extent.length == 0 {
                continue;
            }
            let start = range.start.max(extent.offset);
            let end = range.end.min(extent.offset + extent.length);
            if start < end {
                out.push(FileSlice {
                    file,
                    file_offset: start - extent.offset,
                    len: end - start,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_last_piece() {
        let g = Geometry::new(32768, &[32769]).unwrap();
        assert_eq!(g.piece_count(), 2);
        assert_eq!(g.piece_size(g.last_piece()), 1);
        let blocks: Vec<_> = g.blocks(g.last_piece()).collect();
        assert_eq!(blocks.len(), 1);
        assert_eq!((blocks[0].offset(), blocks[0].len()), (0, 1));
        assert_eq!(g.piece_range(g.last_piece()), 32768..32769);
    }

    #[test]
    fn exact_multiple_has_full_last_piece() {
        let g = Geometry::new(16384, &[16384 * 3]).unwrap();
        assert_eq!(g.piece_count(), 3);
        assert_eq!(g.piece_size(g.last_piece()), 16384);
        assert!(g.piece(3).is_none());
    }

    #[test]
    fn blocks_of_a_piece_cover_it_without_gaps() {
        let g = Geometry::new(65536, &[65536 + 40000]).unwrap();
        let p1 = g.piece(1).unwrap();
        let lens: Vec<_> = g.blocks(p1).map(|b| b.len()).collect();
        assert_eq!(lens, vec![16384, 16384, 40000 - 32768]);
        assert_eq!(g.block_count(p1), 3);
        assert_eq!(g.block(p1, 2).unwrap().len(), 40000 - 32768);
        assert!(g.block(p1, 3).is_none());
    }

    #[test]
    fn file_smaller_than_a_piece() {
        let g = Geometry::new(65536, &[100, 65536 * 2]).unwrap();
        assert_eq!(g.pieces_of_file(0), 0..1);
        assert_eq!(g.pieces_of_file(1), 0..3);
        assert_eq!(
            g.file_slices(g.piece_range(g.piece(0).unwrap())),
            vec![
                FileSlice {
                    file: 0,
                    file_offset: 0,
                    len: 100
                },
                FileSlice {
                    file: 1,
                    file_offset: 0,
                    len: 65436
                },
            ]
        );
    }

    #[test]
    fn files_spanning_piece_boundaries() {
        // Files of 10, 20, 30 bytes with 16-byte pieces: piece 1 is bytes 16..32.
        let g = Geometry::new(16, &[10, 20, 30]).unwrap();
        assert_eq!(g.piece_count(), 4);
        let slices = g.file_slices(g.piece_range(g.piece(1).unwrap()));
        assert_eq!(
            slices,
            vec![
                FileSlice {
                    file: 1,
                    file_offset: 6,
                    len: 14
                },
                FileSlice {
                    file: 2,
                    file_offset: 0,
                    len: 2
                },
            ]
        );
        assert_eq!(g.pieces_of_file(1), 0..2);
        assert_eq!(g.pieces_of_file(2), 1..4);
    }

    #[test]
    fn empty_files_hold_no_pieces_and_no_slices() {
        let g = Geometry::new(16, &[0, 20, 0, 12, 0]).unwrap();
        assert_eq!(g.pieces_of_file(0), 0..0);
        assert_eq!(g.pieces_of_file(2), 0..0);
        assert_eq!(g.pieces_of_file(4), 0..0);
        assert_eq!(g.pieces_of_file(3), 1..2);
        let all = g.file_slices(0..32);
        assert!(all.iter().all(|s| s.len > 0));
        assert_eq!(all.iter().map(|s| s.len).sum::<u64>(), 32);
        assert_eq!(all.iter().map(|s| s.file).collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn spans_from_peers_are_checked() {
        let g = Geometry::new(32768, &[40000]).unwrap();
        assert!(g.span(0, 0, 16384).is_some());
        assert!(
            g.span(0, 100, 16384).is_some(),
            "unaligned but inside the piece"
        );
        assert!(g.span(0, 0, 16385).is_none(), "over 16 KiB");
        assert!(g.span(0, 0, 0).is_none());
        assert!(g.span(1, 0, 7232).is_some());
        assert!(g.span(1, 0, 7232 + 1).is_none(), "past the last piece");
        assert!(g.span(2, 0, 1).is_none());
        assert!(g.span(0, u32::MAX, 2).is_none(), "overflow");
    }

    #[test]
    fn refuses_zero_piece_length_and_empty_torrents() {
        assert_eq!(Geometry::new(0, &[1]), Err(GeometryError::ZeroPieceLength));
        assert_eq!(Geometry::new(16, &[0, 0]), Err(GeometryError::Empty));
        assert!(matches!(
            Geometry::new(1, &[u64::from(u32::MAX) + 1]),
            Err(GeometryError::TooManyPieces { .. })
        ));
    }

    #[test]
    fn four_gib_torrent() {
        let g = Geometry::new(1 << 20, &[4 << 30, 5]).unwrap();
        assert_eq!(g.piece_count(), 4097);
        assert_eq!(
            g.piece_range(g.last_piece()),
            (4u64 << 30)..(4u64 << 30) + 5
        );
        assert_eq!(g.piece_at((4u64 << 30) + 4), Some(g.last_piece()));
    }
}
