//! The transport under a peer connection: TCP, or uTP (BEP 29, the `librqbit-utp` crate) over
//! the torrent's UDP socket, and the order `--utp` says to dial them in. Both carry the same
//! bytes; everything above (MSE, the wire protocol, rate limits) is the same for either.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use librqbit_utp::{UtpSocketUdp, UtpStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What `--utp` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UtpPolicy {
    /// Accept uTP; dial uTP first, then TCP.
    Prefer,
    /// Accept uTP; dial TCP first, then uTP.
    #[default]
    Enable,
    /// TCP only: no UDP socket for peers.
    Disable,
}

/// Which transport a dial tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Utp,
}

/// The transports to try for one dial, in order (uTP only when there is a socket for it).
pub fn dial_order(policy: UtpPolicy, utp: bool) -> &'static [Transport] {
    match (policy, utp) {
        (UtpPolicy::Prefer, true) => &[Transport::Utp, Transport::Tcp],
        (UtpPolicy::Enable, true) => &[Transport::Tcp, Transport::Utp],
        _ => &[Transport::Tcp],
    }
}

pub enum Link {
    Tcp(TcpStream),
    Utp(UtpStream),
}

impl Link {
    /// Connects over `transport` (`utp` is the torrent's uTP socket, if it has one).
    pub async fn connect(
        transport: Transport,
        addr: SocketAddr,
        utp: Option<&Arc<UtpSocketUdp>>,
    ) -> io::Result<Self> {
        match (transport, utp) {
            (Transport::Tcp, _) => {
                let tcp = TcpStream::connect(addr).await?;
                let _ = tcp.set_nodelay(true);
                Ok(Self::Tcp(tcp))
            }
            (Transport::Utp, Some(socket)) => socket
                .connect(addr)
                .await
                .map(Self::Utp)
                .map_err(|e| io::Error::other(format!("uTP: {e}"))),
            (Transport::Utp, None) => Err(io::Error::other("uTP is off")),
        }
    }

    pub fn is_utp(&self) -> bool {
        matches!(self, Self::Utp(_))
    }
}

impl AsyncRead for Link {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Utp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Link {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, data),
            Self::Utp(s) => Pin::new(s).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Utp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Utp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
