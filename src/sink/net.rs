//! The sink's sockets and privileges: the TCP or UNIX-domain listener,
//! accepting clients, the open-file limit, and the switch to the `-u` user
//! (docs/smtp-sink.md §3 steps 5–7).

use std::net::SocketAddr;
use std::path::Path;

use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite};

use super::SinkConfig;
use crate::diag::{self, errno_text, Error, Result};
use crate::endpoint::{self, Endpoint};

/// A listener bound before the runtime runs (start-up is synchronous).
pub(super) enum StdListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

pub(super) fn io_fatal(what: &str, err: &std::io::Error) -> Error {
    Error::fatal(format!("{what}: {}", errno_text(err)))
}

fn nix_fatal(what: &str, err: nix::errno::Errno) -> Error {
    Error::fatal(format!("{what}: {}", diag::strerror(err as i32)))
}

/// Raise the open-file limit to the hard limit, for many concurrent sessions.
pub(super) fn raise_nofile_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

pub(super) fn tcp_listener(
    config: &SinkConfig,
    endpoint: &Endpoint,
) -> Result<(StdListener, SocketAddr)> {
    let addr = endpoint::resolve(endpoint, config.family, true)?;
    if config.verbose > 0 {
        diag::info(&format!("trying... [{}]:{}", addr.ip(), addr.port()));
    }
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)
        .map_err(|e| io_fatal("socket", &e))?;
    if addr.is_ipv6() {
        socket
            .set_only_v6(true)
            .map_err(|e| io_fatal("setsockopt(IPV6_V6ONLY)", &e))?;
    }
    socket
        .set_reuse_address(true)
        .map_err(|e| io_fatal("setsockopt(SO_REUSEADDR)", &e))?;
    socket
        .set_reuse_port(true)
        .map_err(|e| io_fatal("setsockopt(SO_REUSEPORT)", &e))?;
    socket.bind(&addr.into()).map_err(|e| {
        Error::fatal(format!(
            "bind {} port {}: {}",
            addr.ip(),
            addr.port(),
            errno_text(&e)
        ))
    })?;
    if let Some(size) = config.window {
        let size = size as usize;
        if let Err(e) = socket.set_send_buffer_size(size) {
            diag::warning(&format!("setsockopt SO_SNDBUF {size}: {}", errno_text(&e)));
        }
        if let Err(e) = socket.set_recv_buffer_size(size) {
            diag::warning(&format!("setsockopt SO_RCVBUF {size}: {}", errno_text(&e)));
        }
    }
    listen(&socket, config.backlog)?;
    let listener: std::net::TcpListener = socket.into();
    let local = listener.local_addr().unwrap_or(addr);
    Ok((StdListener::Tcp(listener), local))
}

/// Listen with the operand's backlog, non-blocking for the runtime.
fn listen(socket: &Socket, backlog: i32) -> Result<()> {
    socket.listen(backlog).map_err(|e| io_fatal("listen", &e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| io_fatal("fcntl(O_NONBLOCK)", &e))
}

/// Listen on `path`, taken from [`Endpoint::Unix`]: `endpoint::parse_sink`
/// has already refused a path of [`endpoint::UNIX_PATH_MAX`] bytes or more.
pub(super) fn unix_listener(config: &SinkConfig, path: &Path) -> Result<StdListener> {
    let shown = diag::show_path(path);
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_fatal(&format!("remove {shown}"), &e)),
    }
    let socket =
        Socket::new(Domain::UNIX, Type::STREAM, None).map_err(|e| io_fatal("socket", &e))?;
    let addr =
        endpoint::unix_sockaddr(path).map_err(|e| io_fatal(&format!("bind: {shown}"), &e))?;
    socket
        .bind(&addr)
        .map_err(|e| io_fatal(&format!("bind: {shown}"), &e))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| io_fatal(&format!("chmod socket {shown}"), &e))?;
    }
    listen(&socket, config.backlog)?;
    Ok(StdListener::Unix(socket.into()))
}

/// Switch to the `-u` user, with `-R` chroot (docs/smtp-sink.md §3 step 7).
pub(super) fn drop_privileges(config: &SinkConfig) -> Result<()> {
    use nix::unistd::{chdir, chroot, initgroups, setgid, setuid, User};
    if config.verbose > 1 {
        let root = config
            .root_dir
            .as_deref()
            .map(diag::show_path)
            .unwrap_or_else(|| "(none)".into());
        let user = config
            .user
            .as_deref()
            .map(diag::sanitize)
            .unwrap_or_else(|| "(none)".into());
        diag::info(&format!("chroot {root} user {user}"));
    }
    let Some(name) = &config.user else {
        return Ok(());
    };
    let shown = String::from_utf8_lossy(name).into_owned();
    let unknown = || Error::fatal(format!("unknown user: {}", diag::sanitize(name)));
    let pw = User::from_name(&shown)
        .map_err(|_| unknown())?
        .ok_or_else(unknown)?;
    setgid(pw.gid).map_err(|e| nix_fatal(&format!("setgid({})", pw.gid), e))?;
    let cname = std::ffi::CString::new(name.clone()).map_err(|_| unknown())?;
    initgroups(&cname, pw.gid).map_err(|e| nix_fatal("initgroups", e))?;
    if let Some(dir) = &config.root_dir {
        chroot(dir.as_path())
            .map_err(|e| nix_fatal(&format!("chroot({})", diag::show_path(dir)), e))?;
        chdir("/").map_err(|e| nix_fatal("chdir(/)", e))?;
    }
    setuid(pw.uid).map_err(|e| nix_fatal(&format!("setuid({})", pw.uid), e))?;
    Ok(())
}

/// The listener, registered with the runtime.
pub(super) enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

/// An accepted client.
pub(super) enum Accepted {
    Tcp(tokio::net::TcpStream, SocketAddr),
    Unix(tokio::net::UnixStream),
}

impl Listener {
    /// The next client. TCP sessions get `TCP_NODELAY`: every reply batch is
    /// already one write, so Nagle's algorithm could only hold a small reply
    /// behind an unacknowledged earlier one (meeting the client's delayed
    /// ACK); it changes timing, never bytes.
    pub(super) async fn accept(&self) -> std::io::Result<Accepted> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                if let Err(e) = s.set_nodelay(true) {
                    diag::warning(&format!("setsockopt TCP_NODELAY: {}", errno_text(&e)));
                }
                Ok(Accepted::Tcp(s, peer))
            }
            Listener::Unix(l) => {
                let (s, _) = l.accept().await?;
                Ok(Accepted::Unix(s))
            }
        }
    }
}

/// An accepted stream that can move to another event loop (`--threads`).
pub(super) trait Movable: AsyncRead + AsyncWrite + Unpin + Send + Sized + 'static {
    type Std: Send + 'static;
    /// Take the stream off this loop's reactor.
    fn detach(self) -> std::io::Result<Self::Std>;
    /// Register it with the current loop's reactor.
    fn attach(stream: Self::Std) -> std::io::Result<Self>;
}

impl Movable for tokio::net::TcpStream {
    type Std = std::net::TcpStream;
    fn detach(self) -> std::io::Result<Self::Std> {
        self.into_std()
    }
    fn attach(stream: Self::Std) -> std::io::Result<Self> {
        tokio::net::TcpStream::from_std(stream)
    }
}

impl Movable for tokio::net::UnixStream {
    type Std = std::os::unix::net::UnixStream;
    fn detach(self) -> std::io::Result<Self::Std> {
        self.into_std()
    }
    fn attach(stream: Self::Std) -> std::io::Result<Self> {
        tokio::net::UnixStream::from_std(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepted TCP sessions have Nagle's algorithm off.
    #[tokio::test]
    async fn accepted_tcp_has_nodelay() {
        let std = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std.set_nonblocking(true).expect("nonblocking");
        let addr = std.local_addr().expect("addr");
        let listener = Listener::Tcp(tokio::net::TcpListener::from_std(std).expect("listener"));
        let client = tokio::net::TcpStream::connect(addr);
        let (accepted, client) = tokio::join!(listener.accept(), client);
        let _client = client.expect("connect");
        match accepted.expect("accept") {
            Accepted::Tcp(stream, _) => assert!(stream.nodelay().expect("getsockopt")),
            Accepted::Unix(_) => panic!("TCP listener gave a unix stream"),
        }
    }
}
