//! The one connection type: owns a byte stream and its read/write buffers.
//!
//! `Connection` knows framing only as "bytes in, bytes out"; SMTP rules live
//! in [`crate::proto`]. It is generic over `AsyncRead + AsyncWrite` so TCP,
//! unix sockets and (later) TLS streams slot in unchanged.
//!
//! Writes are batched: callers queue bytes in the write buffer and call
//! [`Connection::flush`] once per protocol batch, or
//! [`Connection::flush_with`] to send queued bytes plus a large borrowed
//! body in one vectored write without copying the body.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Default size of one read: large enough that a DATA stream of a megabyte
/// takes a handful of syscalls, small enough for 10,000 idle sessions
/// (the buffer is allocated lazily, on the first read).
pub const READ_CHUNK: usize = 64 * 1024;

/// A byte stream with its buffers.
#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    rbuf: BytesMut,
    wbuf: BytesMut,
    read_chunk: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wrap `stream`; each read asks for up to `read_chunk` bytes.
    pub fn new(stream: S, read_chunk: usize) -> Self {
        Connection {
            stream,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            read_chunk: read_chunk.max(1),
        }
    }

    /// Bytes received and not yet consumed.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        &mut self.rbuf
    }

    /// Bytes queued for the next flush.
    pub fn write_buf(&mut self) -> &mut BytesMut {
        &mut self.wbuf
    }

    /// The underlying stream.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// The underlying stream, mutably.
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Unwrap into the stream, dropping the buffers.
    pub fn into_inner(self) -> S {
        self.stream
    }

    fn reserve_for_read(&mut self) {
        if self.rbuf.capacity() - self.rbuf.len() < self.read_chunk / 4 {
            self.rbuf.reserve(self.read_chunk);
        }
    }

    /// Read more bytes into the read buffer. Returns the number read; 0 means
    /// end of stream.
    pub async fn fill(&mut self) -> io::Result<usize> {
        self.reserve_for_read();
        self.stream.read_buf(&mut self.rbuf).await
    }

    /// Try to read without waiting: `None` when nothing is available now.
    /// Used to decide whether the peer has more pipelined input pending
    /// (Postfix flushes replies only when it does not).
    pub fn try_fill(&mut self) -> Option<io::Result<usize>> {
        self.reserve_for_read();
        let mut cx = Context::from_waker(Waker::noop());
        let spare = self.rbuf.spare_capacity_mut();
        let mut buf = ReadBuf::uninit(spare);
        match Pin::new(&mut self.stream).poll_read(&mut cx, &mut buf) {
            Poll::Pending => None,
            Poll::Ready(Err(e)) => Some(Err(e)),
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len();
                // SAFETY: poll_read initialised the first `n` spare bytes.
                unsafe { self.rbuf.set_len(self.rbuf.len() + n) };
                Some(Ok(n))
            }
        }
    }

    /// Write everything queued in the write buffer.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        self.stream.flush().await
    }

    /// Write the queued bytes, then `body`, then `tail`, with vectored writes
    /// (no copy of `body`), and clear the write buffer.
    pub async fn flush_with(&mut self, body: &[u8], tail: &[u8]) -> io::Result<()> {
        let mut parts: [&[u8]; 3] = [&self.wbuf[..], body, tail];
        let mut first = 0;
        while first < parts.len() {
            if parts[first].is_empty() {
                first += 1;
                continue;
            }
            let slices = [
                IoSlice::new(parts[first]),
                IoSlice::new(parts.get(first + 1).copied().unwrap_or(&[])),
                IoSlice::new(parts.get(first + 2).copied().unwrap_or(&[])),
            ];
            let n =
                poll_fn(|cx| Pin::new(&mut self.stream).poll_write_vectored(cx, &slices)).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            let mut left = n;
            while left > 0 && first < parts.len() {
                let take = left.min(parts[first].len());
                parts[first] = &parts[first][take..];
                left -= take;
                if parts[first].is_empty() {
                    first += 1;
                }
            }
        }
        self.wbuf.clear();
        self.stream.flush().await
    }

    /// Drop `n` consumed bytes from the front of the read buffer.
    pub fn consume(&mut self, n: usize) {
        self.rbuf.advance(n);
    }

    /// Shut down the write side (for a clean close).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.stream.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn flush_with_sends_all_parts_in_order() {
        let (a, mut b) = tokio::io::duplex(7); // tiny pipe: many partial writes
        let mut conn = Connection::new(a, 16);
        conn.write_buf().extend_from_slice(b"HEAD ");
        let body = vec![b'x'; 100];
        let writer = async move {
            conn.flush_with(&body, b" TAIL").await.unwrap();
            conn.shutdown().await.unwrap();
        };
        let reader = async {
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            got
        };
        let ((), got) = tokio::join!(writer, reader);
        let mut want = b"HEAD ".to_vec();
        want.extend(std::iter::repeat_n(b'x', 100));
        want.extend_from_slice(b" TAIL");
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn try_fill_reports_pending_and_data() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut conn = Connection::new(a, 16);
        assert!(conn.try_fill().is_none());
        b.write_all(b"NOOP\r\n").await.unwrap();
        let n = conn.try_fill().unwrap().unwrap();
        assert_eq!(n, 6);
        assert_eq!(&conn.read_buf()[..], b"NOOP\r\n");
        drop(b);
        assert_eq!(conn.try_fill().unwrap().unwrap(), 0);
    }
}
