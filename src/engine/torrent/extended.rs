//! The torrent task's side of BEP 10: our extension handshake, the peer's, the metadata
//! (BEP 9) it asks us for, and where its peer exchange messages go (`pex.rs`).

use super::Torrent;
use crate::engine::peer::PeerCommand;
use crate::policy::PeerKey;
use crate::proto::extension::metadata::{MetadataMessage, piece_count, piece_of};
use crate::proto::extension::pex::{OUR_UT_PEX_ID, UT_PEX};
use crate::proto::extension::{ExtendedHandshake, HANDSHAKE_ID, OUR_UT_METADATA_ID, UT_METADATA};
use crate::proto::wire::Message;

/// Metadata pieces a peer may ask for per piece there is, past a floor: enough for a peer that
/// lost some and asks again, not a way to make us send the dictionary over and over.
const METADATA_REQUESTS_PER_PIECE: u32 = 4;
const METADATA_REQUESTS_FLOOR: u32 = 16;

impl Torrent {
    /// Ours: `ut_metadata` when we serve the metadata, with its size; `ut_pex` when peer
    /// exchange is on (neither for a private torrent).
    pub(super) fn our_extended_handshake(&self) -> Message {
        let size = self
            .metadata
            .as_ref()
            .and_then(|m| u32::try_from(m.len()).ok());
        let mut ours = ExtendedHandshake::ours(size, self.listen_port);
        if self.metadata.is_none() {
            ours.extensions.clear();
        }
        if self.pex {
            ours.extensions.insert(UT_PEX.to_owned(), OUR_UT_PEX_ID);
        }
        Message::Extended {
            id: HANDSHAKE_ID,
            payload: ours.encode().into(),
        }
    }

    /// An extended message. None of them ends the connection: a peer whose extension messages
    /// do not parse is still a fine source of blocks.
    pub(super) fn on_extended(&mut self, key: PeerKey, id: u8, payload: &[u8]) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        match id {
            HANDSHAKE_ID => match ExtendedHandshake::parse(payload) {
                Ok(theirs) => {
                    tracing::debug!(addr = %peer.addr, client = ?theirs.client, "extension handshake");
                    peer.ut_metadata = theirs.id_of(UT_METADATA);
                    peer.pex.their_id = theirs.id_of(UT_PEX);
                    peer.listen_port = theirs.listen_port;
                }
                Err(why) => {
                    tracing::info!(addr = %peer.addr, %why, "ignoring a bad extension handshake")
                }
            },
            OUR_UT_METADATA_ID => match MetadataMessage::parse(payload) {
                Ok(MetadataMessage::Request { piece }) => self.serve_metadata(key, piece),
                // We fetch metadata before the torrent starts, not here.
                Ok(_) => {}
                Err(why) => {
                    tracing::info!(addr = %peer.addr, %why, "ignoring a bad ut_metadata message")
                }
            },
            OUR_UT_PEX_ID => self.on_pex(key, payload),
            _ => {
                tracing::debug!(addr = %peer.addr, id, "ignoring an extended message we did not offer")
            }
        }
    }

    fn serve_metadata(&mut self, key: PeerKey, piece: u32) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(their_id) = peer.ut_metadata else {
            // It never said where to send the answer.
            return;
        };
        peer.metadata_requests = peer.metadata_requests.saturating_add(1);
        let answer = match &self.metadata {
            Some(info) => {
                let count = piece_count(info.len() as u32);
                let cap = METADATA_REQUESTS_FLOOR + METADATA_REQUESTS_PER_PIECE * count;
                match piece_of(info, piece) {
                    Some(data) if peer.metadata_requests <= cap => MetadataMessage::Data {
                        piece,
                        total_size: info.len() as u32,
                        data: data.to_vec(),
                    },
                    _ => MetadataMessage::Reject { piece },
                }
            }
            None => MetadataMessage::Reject { piece },
        };
        peer.send(PeerCommand::Send(Message::Extended {
            id: their_id,
            payload: answer.encode().into(),
        }));
    }
}
