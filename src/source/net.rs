//! Client sockets as smtp-source makes them: `SO_LINGER 0`, optional `-T`
//! buffer sizes, `SO_KEEPALIVE` for IPv4 only, then a non-blocking connect
//! (docs/smtp-source.md §5, in that order).

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::{Domain, SockRef, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream, UnixStream};

use crate::diag::{self, errno_text};
use crate::endpoint;

/// Where sessions connect to (resolved once at start-up).
#[derive(Debug, Clone)]
pub enum Target {
    /// A TCP address (the first one `getaddrinfo` returned).
    Inet(SocketAddr),
    /// A UNIX-domain stream socket.
    Unix(PathBuf),
}

/// Why a connect failed.
#[derive(Debug)]
pub enum ConnectError {
    /// `socket()` failed: always fatal (`socket: ERRNO`).
    Socket(io::Error),
    /// The connect itself failed: retried per `-C` (`connect: ERRNO`).
    Connect(io::Error),
}

/// A connected client stream.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// UNIX-domain.
    Unix(UnixStream),
}

impl Stream {
    /// The socket's file descriptor (it appears in the Message-Id).
    pub fn fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }
}

fn tune(sock: SockRef<'_>, window: Option<u32>, keepalive: bool) {
    // SO_LINGER {on, 0}: closing resets the connection, as Postfix does.
    if let Err(e) = sock.set_linger(Some(Duration::ZERO)) {
        diag::warning(&format!("setsockopt SO_LINGER 0: {}", errno_text(&e)));
    }
    if let Some(size) = window {
        let _ = sock.set_send_buffer_size(size as usize);
        let _ = sock.set_recv_buffer_size(size as usize);
    }
    if keepalive {
        let _ = sock.set_keepalive(true);
    }
}

/// Make one connection to `target`.
pub async fn connect(target: &Target, window: Option<u32>) -> Result<Stream, ConnectError> {
    match target {
        Target::Inet(addr) => {
            let sock = match addr {
                SocketAddr::V4(_) => TcpSocket::new_v4(),
                SocketAddr::V6(_) => TcpSocket::new_v6(),
            }
            .map_err(ConnectError::Socket)?;
            tune(SockRef::from(&sock), window, addr.is_ipv4());
            // No Nagle delay: every write is a whole protocol batch, so a
            // short one (a command, or the rest of a message behind a full
            // send buffer) must not wait for the ACK of the previous one
            // (RFC 1122 §4.2.3.4 meets delayed ACKs). Timing only: the bytes
            // on the wire are the same.
            // Best effort, like the -T sizes: a socket without it still works.
            let _ = sock.set_nodelay(true);
            let stream = sock.connect(*addr).await.map_err(ConnectError::Connect)?;
            Ok(Stream::Tcp(stream))
        }
        Target::Unix(path) => {
            let sock =
                Socket::new(Domain::UNIX, Type::STREAM, None).map_err(ConnectError::Socket)?;
            tune(SockRef::from(&sock), window, false);
            sock.set_nonblocking(true).map_err(ConnectError::Socket)?;
            let addr = endpoint::unix_sockaddr(path).map_err(ConnectError::Connect)?;
            match sock.connect(&addr) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => return Err(ConnectError::Connect(e)),
            }
            let fd: OwnedFd = sock.into();
            let std_stream = std::os::unix::net::UnixStream::from(fd);
            let stream = UnixStream::from_std(std_stream).map_err(ConnectError::Connect)?;
            stream.writable().await.map_err(ConnectError::Connect)?;
            if let Some(e) = stream.take_error().map_err(ConnectError::Connect)? {
                return Err(ConnectError::Connect(e));
            }
            Ok(Stream::Unix(stream))
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_connections_disable_nagle_and_reset_on_close() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let target = Target::Inet(addr);
        let connecting = connect(&target, None);
        let stream = tokio::time::timeout(Duration::from_secs(10), connecting)
            .await
            .expect("connect in time")
            .expect("connect");
        let Stream::Tcp(tcp) = &stream else {
            panic!("a TCP target gives a TCP stream");
        };
        let sock = SockRef::from(tcp);
        assert!(sock.nodelay().expect("getsockopt TCP_NODELAY"));
        assert_eq!(
            sock.linger().expect("getsockopt SO_LINGER"),
            Some(Duration::ZERO)
        );
        assert!(sock.keepalive().expect("getsockopt SO_KEEPALIVE"));
    }
}
