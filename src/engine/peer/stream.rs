//! A peer connection's byte stream: a TCP or uTP link, with RC4 on both directions when the
//! MSE handshake selected it, and the bytes that handshake read past its end served first.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::link::Link;
use crate::proto::mse::Ciphers;

pub struct PeerStream {
    link: Link,
    /// Plaintext already read (and decrypted) by the handshake, read before the socket.
    unread: BytesMut,
    ciphers: Option<Ciphers>,
    /// Encrypted bytes accepted by `poll_write` and not yet on the socket (the keystream has
    /// moved past them, so they must go out as they are).
    unsent: BytesMut,
}

impl PeerStream {
    pub fn plain(link: Link, unread: BytesMut) -> Self {
        Self {
            link,
            unread,
            ciphers: None,
            unsent: BytesMut::new(),
        }
    }

    /// After an MSE handshake: `ciphers` when RC4 was selected, else plaintext from here on.
    pub fn after_handshake(link: Link, unread: BytesMut, ciphers: Option<Ciphers>) -> Self {
        Self {
            ciphers,
            ..Self::plain(link, unread)
        }
    }

    /// The payload is RC4-encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.ciphers.is_some()
    }

    /// It runs over uTP.
    pub fn is_utp(&self) -> bool {
        self.link.is_utp()
    }

    /// Writes out `unsent` until it is empty or the socket would block.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.unsent.is_empty() {
            let n = ready!(Pin::new(&mut self.link).poll_write(cx, &self.unsent))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.unsent.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.unread.is_empty() {
            let n = this.unread.len().min(buf.remaining());
            buf.put_slice(&this.unread.split_to(n));
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.link).poll_read(cx, buf))?;
        if let Some(c) = &mut this.ciphers {
            c.decrypt.apply(&mut buf.filled_mut()[before..]);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.ciphers.is_none() {
            return Pin::new(&mut this.link).poll_write(cx, data);
        }
        // Earlier bytes first; only then are these taken (and their keystream used), so at
        // most one write's bytes wait here.
        ready!(this.poll_drain(cx))?;
        let start = this.unsent.len();
        this.unsent.extend_from_slice(data);
        if let Some(c) = &mut this.ciphers {
            c.encrypt.apply(&mut this.unsent[start..]);
        }
        // Start sending now; what the socket does not take yet goes with the next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.link).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.link).poll_shutdown(cx)
    }
}
