//! The UDP tracker client (BEP 15): a connection id per tracker, kept for its minute; each
//! request sent again after 15 × 2^n seconds until the configured number of retransmissions;
//! replies that answer another transaction are logged and waited past.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout_at};
use url::Url;

use super::TrackerError;
use crate::proto::tracker::udp::{
    CONNECTION_ID_TTL, MAX_PACKET, UdpAnnounce, UdpReply, UdpRequest, retransmit_after,
};
use crate::proto::tracker::{AnnounceRequest, AnnounceResponse, TrackerProtoError};

/// Connection ids by tracker address, with when each was given.
#[derive(Default)]
pub(super) struct UdpClient {
    connections: Mutex<HashMap<SocketAddr, (u64, Instant)>>,
}

/// How patient the client is: BEP 15 waits 15 s before the first retransmission.
#[derive(Debug, Clone, Copy)]
pub(super) struct UdpTiming {
    pub first_timeout: Duration,
    pub retransmits: u32,
}

impl UdpClient {
    pub(super) async fn announce(
        &self,
        url: &Url,
        req: &AnnounceRequest,
        timing: UdpTiming,
    ) -> Result<AnnounceResponse, TrackerError> {
        let (socket, tracker) = open(url).await?;
        let connection = self.connection(&socket, tracker, timing).await?;
        let announce = UdpRequest::Announce {
            connection,
            transaction: rand::random(),
            announce: UdpAnnounce::from_request(req),
        };
        match exchange(&socket, &announce, tracker.is_ipv6(), timing).await {
            Ok(reply) => {
                reply
                    .into_response()
                    .ok_or(TrackerError::Protocol(TrackerProtoError::BadField(
                        "action",
                    )))
            }
            Err(e) => {
                // The id may have expired early at the tracker: get a fresh one next time.
                self.forget(tracker);
                Err(e)
            }
        }
    }

    async fn connection(
        &self,
        socket: &UdpSocket,
        tracker: SocketAddr,
        timing: UdpTiming,
    ) -> Result<u64, TrackerError> {
        let cached = self.lock().get(&tracker).copied();
        if let Some((id, at)) = cached
            && at.elapsed() < CONNECTION_ID_TTL
        {
            return Ok(id);
        }
        let request = UdpRequest::Connect {
            transaction: rand::random(),
        };
        match exchange(socket, &request, tracker.is_ipv6(), timing).await? {
            UdpReply::Connect { connection, .. } => {
                self.lock().insert(tracker, (connection, Instant::now()));
                Ok(connection)
            }
            _ => Err(TrackerError::Protocol(TrackerProtoError::BadField(
                "action",
            ))),
        }
    }

    fn forget(&self, tracker: SocketAddr) {
        self.lock().remove(&tracker);
    }

    /// Held for a map lookup only, never across an `.await`.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, (u64, Instant)>> {
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A socket connected to the tracker `url` names.
async fn open(url: &Url) -> Result<(UdpSocket, SocketAddr), TrackerError> {
    let (Some(host), Some(port)) = (url.host_str(), url.port()) else {
        return Err(TrackerError::Protocol(TrackerProtoError::BadField("url")));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let tracker = tokio::net::lookup_host((host, port))
        .await
        .map_err(TrackerError::Udp)?
        .next()
        .ok_or_else(|| TrackerError::Udp(std::io::Error::other("the host has no address")))?;
    let local: SocketAddr = match tracker {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await.map_err(TrackerError::Udp)?;
    socket.connect(tracker).await.map_err(TrackerError::Udp)?;
    Ok((socket, tracker))
}

/// Sends `request` and waits for its reply, sending it again on BEP 15's schedule. An error
/// packet becomes the tracker's refusal.
async fn exchange(
    socket: &UdpSocket,
    request: &UdpRequest,
    v6: bool,
    timing: UdpTiming,
) -> Result<UdpReply, TrackerError> {
    let packet = request.encode();
    let mut buf = vec![0u8; MAX_PACKET];
    let mut waited = Duration::ZERO;
    for n in 0..=timing.retransmits {
        socket.send(&packet).await.map_err(TrackerError::Udp)?;
        let wait = retransmit_after(timing.first_timeout, n);
        waited += wait;
        let deadline = Instant::now() + wait;
        loop {
            let len = match timeout_at(deadline, socket.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(TrackerError::Udp(e)),
                Ok(Ok(len)) => len,
            };
            match UdpReply::parse(&buf[..len], request.transaction(), v6) {
                Ok(UdpReply::Error { message, .. }) => {
                    return Err(TrackerError::Protocol(TrackerProtoError::Failure(message)));
                }
                Ok(reply) => return Ok(reply),
                Err(error) => {
                    tracing::info!(%error, "ignoring a UDP tracker packet");
                }
            }
        }
    }
    Err(TrackerError::Timeout(waited))
}
