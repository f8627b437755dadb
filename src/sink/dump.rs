//! `-d` / `-D` dump files (docs/smtp-sink.md §16): complete or absent.
//!
//! A transaction's dump is streamed to disk through a buffered writer from
//! the accepted MAIL on. `-d` writes straight into its final, exclusively
//! created file and deletes it if the transaction is aborted. `-D` writes into
//! an anonymous temporary file (created from the same template, then
//! unlinked) and appends its whole content to the shared file only at the end
//! of data, so an aborted transaction appends nothing and concurrent
//! transactions never interleave.
//!
//! Failures here are fatal for the whole sink, as in Postfix; they are
//! returned as the fatal text.

use std::ffi::OsStr;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use rand::Rng;

use super::config::DumpMode;
use crate::diag::{errno_text, show_path};
use crate::proto::date;

/// Mode of dump files (Postfix 3.12 forces it regardless of umask, deviation S8, docs/deviations.md).
const FILE_MODE: u32 = 0o644;
/// Mode of directories created for dump files.
const DIR_MODE: u32 = 0o755;
/// Postfix's `mail_file_open` gives up after this many name clashes.
const MAX_NAME_TRIES: usize = 100;
/// Write buffer per open dump: few write(2) calls for large messages while
/// staying modest for many concurrent transactions.
const DUMP_BUFFER: usize = 32 * 1024;

/// Whether the process umask would strip bits of 0644 (then created dump
/// files get an explicit chmod, deviation S8, docs/deviations.md). Read once.
fn umask_strips() -> bool {
    static STRIPS: OnceLock<bool> = OnceLock::new();
    *STRIPS.get_or_init(|| process_umask() & FILE_MODE != 0)
}

/// The process umask. Read from `/proc/self/status` (Linux 4.7+) so that a
/// `mkdir` in another session's thread never runs under a temporarily
/// changed mask; elsewhere set and restored at once.
fn process_umask() -> u32 {
    let from_proc = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Umask:"))?;
            u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
        });
    from_proc.unwrap_or_else(|| {
        use nix::sys::stat::{umask, Mode};
        let old = umask(Mode::from_bits_truncate(0o022));
        umask(old);
        old.bits()
    })
}

/// Create the parent directories of `path` (mode 0755).
fn make_parents(path: &Path) -> Result<(), String> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => make_dirs(dir),
        _ => Ok(()),
    }
}

/// Create `dir` and its missing parents with mkdir(2) mode 0755, so they get
/// 0755 less the process umask exactly as Postfix's directories do; only
/// dump files are forced to 0644.
fn make_dirs(dir: &Path) -> Result<(), String> {
    let mkdir = |dir: &Path| match DirBuilder::new().mode(DIR_MODE).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    };
    let failed = |e: io::Error| format!("mkdir {}: {}", show_path(dir), errno_text(&e));
    match mkdir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            make_parents(dir)?;
            mkdir(dir).map_err(failed)
        }
        result => result.map_err(failed),
    }
}

fn force_mode(file: &File) {
    if umask_strips() {
        let _ = file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE));
    }
}

/// Exclusively create `prefix` + 8 random hex digits (31-bit id, OS-seeded
/// generator: deviation S7, docs/deviations.md).
fn create_unique(prefix: &[u8]) -> Result<(File, PathBuf, u32), String> {
    let mut rng = rand::thread_rng();
    let mut made_dirs = false;
    for _ in 0..MAX_NAME_TRIES {
        let id: u32 = rng.gen::<u32>() & 0x7fff_ffff;
        let mut name = prefix.to_vec();
        name.extend_from_slice(format!("{id:08x}").as_bytes());
        let path = PathBuf::from(OsStr::from_bytes(&name));
        let open = || {
            OpenOptions::new()
                .write(true)
                .read(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&path)
        };
        let mut result = open();
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::NotFound) && !made_dirs {
            make_parents(&path)?;
            made_dirs = true;
            result = open();
        }
        match result {
            Ok(file) => {
                force_mode(&file);
                return Ok((file, path, id));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("open {}: {}", show_path(&path), errno_text(&e))),
        }
    }
    Err("mail_file_open: something is looping".to_string())
}

/// Who the client is, as dumps show it.
#[derive(Debug, Clone)]
pub(crate) struct ClientAddr {
    /// `ipv6:` for IPv6 clients, else empty.
    pub prefix: &'static str,
    /// Numeric address, or `local`.
    pub addr: String,
}

/// Everything about one transaction the dump header needs.
pub(crate) struct Header<'a> {
    pub start: Option<&'a [u8]>,
    pub client: &'a ClientAddr,
    pub proto: &'a str,
    pub helo: Option<&'a [u8]>,
    /// The authenticated user (`--auth`), sanitised.
    pub auth_user: Option<&'a [u8]>,
    pub mail_args: &'a [u8],
}

/// One transaction's open dump.
pub(crate) struct Dump {
    out: BufWriter<File>,
    /// `-d`: the file itself (deleted on abort); `-D`: the unlinked temp name.
    path: PathBuf,
    /// `-D`: the shared file to append to.
    shared: Option<PathBuf>,
    id: u32,
    time: i64,
    error: Option<io::Error>,
}

impl Dump {
    /// Open the dump at an accepted MAIL at time `now` and write the
    /// MAIL-time header lines (docs/smtp-sink.md §16.1, §16.2).
    pub fn begin(mode: &DumpMode, now: i64, header: &Header<'_>) -> Result<Dump, String> {
        let expanded = date::strftime_local(mode.template(), now);
        let (file, path, id) = create_unique(&expanded)?;
        let shared = match mode {
            DumpMode::PerMessage(_) => None,
            DumpMode::Shared(_) => {
                std::fs::remove_file(&path)
                    .map_err(|e| format!("unlink {}: {}", show_path(&path), errno_text(&e)))?;
                Some(PathBuf::from(OsStr::from_bytes(&expanded)))
            }
        };
        let mut dump = Dump {
            out: BufWriter::with_capacity(DUMP_BUFFER, file),
            path,
            shared,
            id,
            time: now,
            error: None,
        };
        let mut head = Vec::with_capacity(256);
        if let Some(start) = header.start {
            head.extend_from_slice(start);
        }
        head.extend_from_slice(b"X-Client-Addr: ");
        head.extend_from_slice(header.client.prefix.as_bytes());
        head.extend_from_slice(header.client.addr.as_bytes());
        head.extend_from_slice(b"\nX-Client-Proto: ");
        head.extend_from_slice(header.proto.as_bytes());
        head.push(b'\n');
        if let Some(helo) = header.helo {
            head.extend_from_slice(b"X-Helo-Args: ");
            head.extend_from_slice(helo);
            head.push(b'\n');
        }
        // Only after a successful AUTH, which needs --auth.
        if let Some(user) = header.auth_user {
            head.extend_from_slice(b"X-Auth-User: ");
            head.extend_from_slice(user);
            head.push(b'\n');
        }
        head.extend_from_slice(b"X-Mail-Args: ");
        head.extend_from_slice(header.mail_args);
        head.push(b'\n');
        dump.write(&head);
        Ok(dump)
    }

    /// Record a write failure; reported when the dump is completed.
    pub fn write(&mut self, bytes: &[u8]) {
        if self.error.is_none() {
            if let Err(e) = self.out.write_all(bytes) {
                self.error = Some(e);
            }
        }
    }

    /// An accepted RCPT.
    pub fn rcpt(&mut self, args: &[u8]) {
        let mut line = Vec::with_capacity(args.len() + 16);
        line.extend_from_slice(b"X-Rcpt-Args: ");
        line.extend_from_slice(args);
        line.push(b'\n');
        self.write(&line);
    }

    /// The Received block, written when DATA is accepted.
    pub fn received(
        &mut self,
        helo: Option<&[u8]>,
        client: &ClientAddr,
        hostname: &[u8],
        proto: &str,
    ) {
        let mut block = Vec::with_capacity(256);
        block.extend_from_slice(b"Received: from ");
        match helo {
            Some(h) => block.extend_from_slice(h),
            None => {
                block.push(b'[');
                block.extend_from_slice(client.prefix.as_bytes());
                block.extend_from_slice(client.addr.as_bytes());
                block.push(b']');
            }
        }
        block.extend_from_slice(b" ([");
        block.extend_from_slice(client.prefix.as_bytes());
        block.extend_from_slice(client.addr.as_bytes());
        block.extend_from_slice(b"])\n\tby ");
        block.extend_from_slice(hostname);
        block.extend_from_slice(b" (smtp-sink) with ");
        block.extend_from_slice(proto.as_bytes());
        block.extend_from_slice(format!(" id {:08x};\n\t", self.id).as_bytes());
        block.extend_from_slice(date::rfc2822(self.time).as_bytes());
        block.push(b'\n');
        self.write(&block);
    }

    /// Successful end of data: keep the file (`-d`) or append it to the
    /// shared file (`-D`).
    pub fn complete(mut self) -> Result<(), String> {
        if self.error.is_none() {
            if let Err(e) = self.out.flush() {
                self.error = Some(e);
            }
        }
        if let Some(e) = self.error.take() {
            return Err(format!(
                "write {}: {}",
                show_path(&self.path),
                errno_text(&e)
            ));
        }
        let Some(shared) = self.shared.take() else {
            return Ok(());
        };
        let mut temp = match self.out.into_inner() {
            Ok(f) => f,
            Err(e) => {
                return Err(format!(
                    "write {}: {}",
                    show_path(&self.path),
                    errno_text(e.error())
                ))
            }
        };
        append(&mut temp, &self.path, &shared)
    }

    /// Discard the transaction: delete the `-d` file; `-D` appends nothing.
    pub fn abort(self) {
        if self.shared.is_none() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Serialises appends to shared dump files within this process, so that two
/// sessions (on a multi-threaded runtime) never interleave their dumps.
static APPEND_LOCK: Mutex<()> = Mutex::new(());

fn append(temp: &mut File, temp_path: &Path, shared: &Path) -> Result<(), String> {
    temp.seek(SeekFrom::Start(0))
        .map_err(|e| format!("seek file {}: {}", show_path(temp_path), errno_text(&e)))?;
    let open = || {
        OpenOptions::new()
            .append(true)
            .create(true)
            .mode(FILE_MODE)
            .open(shared)
    };
    let _guard = APPEND_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let mut result = open();
    if matches!(&result, Err(e) if e.kind() == io::ErrorKind::NotFound) {
        make_parents(shared)?;
        result = open();
    }
    let mut target =
        result.map_err(|e| format!("open {}: {}", show_path(shared), errno_text(&e)))?;
    if target.metadata().is_ok_and(|m| m.len() == 0) {
        force_mode(&target); // newly created: exactly 0644 (deviation S8, docs/deviations.md)
    }
    let mut buf = vec![0u8; DUMP_BUFFER];
    loop {
        let n = match temp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(format!(
                    "read file {}: {}",
                    show_path(temp_path),
                    errno_text(&e)
                ))
            }
        };
        target
            .write_all(&buf[..n])
            .map_err(|e| format!("append file {}: {}", show_path(shared), errno_text(&e)))?;
    }
    Ok(())
}
