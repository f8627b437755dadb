//! smtp-sink options: the raw ordered argv list, checked once into a
//! [`SinkConfig`]. This module owns every option validation message
//! (docs/smtp-sink.md §1–§3).

use std::ffi::OsString;
use std::path::PathBuf;

use std::os::unix::ffi::OsStrExt;

use crate::args::{self, atoi, Command, Key, LongOpt, Occurrence, Parsed, ShortOpt, ToolSpec};
use crate::diag::{self, Error, Result};
use crate::endpoint::Family;
use crate::measure::options::{SinkOptions, SINK_LONGS};

/// The commands the sink knows, in Postfix's table order. `Connect` is the
/// pseudo-command run when a client connects (the greeting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Cmd {
    /// Pseudo-command: a client connected (greeting).
    Connect,
    /// `HELO`.
    Helo,
    /// `EHLO`.
    Ehlo,
    /// `LHLO` (LMTP, RFC 2033 §4.1).
    Lhlo,
    /// `XCLIENT`.
    Xclient,
    /// `XFORWARD`.
    Xforward,
    /// `AUTH`.
    Auth,
    /// `MAIL`.
    Mail,
    /// `RCPT`.
    Rcpt,
    /// `DATA`.
    Data,
    /// `.`: end of data (or typed as a command).
    Dot,
    /// `RSET`.
    Rset,
    /// `NOOP`.
    Noop,
    /// `VRFY`.
    Vrfy,
    /// `QUIT`.
    Quit,
    /// `STARTTLS` (RFC 3207): a command name only with a TLS certificate
    /// (`--tls-cert`/`--tls-self-signed`).
    Starttls,
    /// `BDAT` (RFC 3030): a command name only with `--chunking`.
    Bdat,
}

impl Cmd {
    /// Number of commands (size of per-command tables).
    pub const COUNT: usize = 17;

    /// Every command, in table order (Postfix's, then the TLS and CHUNKING
    /// extensions).
    pub const ALL: [Cmd; Cmd::COUNT] = [
        Cmd::Connect,
        Cmd::Helo,
        Cmd::Ehlo,
        Cmd::Lhlo,
        Cmd::Xclient,
        Cmd::Xforward,
        Cmd::Auth,
        Cmd::Mail,
        Cmd::Rcpt,
        Cmd::Data,
        Cmd::Dot,
        Cmd::Rset,
        Cmd::Noop,
        Cmd::Vrfy,
        Cmd::Quit,
        Cmd::Starttls,
        Cmd::Bdat,
    ];

    /// The lower-case name used in option values.
    pub fn name(self) -> &'static str {
        match self {
            Cmd::Connect => "connect",
            Cmd::Helo => "helo",
            Cmd::Ehlo => "ehlo",
            Cmd::Lhlo => "lhlo",
            Cmd::Xclient => "xclient",
            Cmd::Xforward => "xforward",
            Cmd::Auth => "auth",
            Cmd::Mail => "mail",
            Cmd::Rcpt => "rcpt",
            Cmd::Data => "data",
            Cmd::Dot => ".",
            Cmd::Rset => "rset",
            Cmd::Noop => "noop",
            Cmd::Vrfy => "vrfy",
            Cmd::Quit => "quit",
            Cmd::Starttls => "starttls",
            Cmd::Bdat => "bdat",
        }
    }

    /// Case-insensitive lookup by name.
    pub fn lookup(name: &[u8]) -> Option<Cmd> {
        Cmd::ALL
            .into_iter()
            .find(|c| c.name().as_bytes().eq_ignore_ascii_case(name))
    }

    /// Whether the name of `self` is known with these extensions: Postfix's
    /// commands always, `starttls` and `bdat` only with their feature, so
    /// that without the new options `-q bdat` is still Postfix's
    /// `unknown command: bdat`.
    pub fn known(self, ext: Extensions) -> bool {
        match self {
            Cmd::Starttls => ext.starttls,
            Cmd::Bdat => ext.bdat,
            _ => true,
        }
    }

    /// Index into per-command tables.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Which extension command names exist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extensions {
    /// `starttls`: a certificate is configured.
    pub starttls: bool,
    /// `bdat`: `--chunking`.
    pub bdat: bool,
}

/// Where the TLS certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsIdentity {
    /// `--tls-cert FILE [--tls-key FILE]`: PEM files; the key defaults to
    /// the certificate file.
    Files { cert: PathBuf, key: PathBuf },
    /// `--tls-self-signed`: a certificate for the `-h` name, generated at
    /// start-up.
    SelfSigned,
}

/// TLS service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// The certificate.
    pub identity: TlsIdentity,
    /// `--tls`: TLS from the first byte (implicit TLS, RFC 8314) instead
    /// of STARTTLS.
    pub implicit: bool,
}

/// SMTP AUTH service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthOptions {
    /// `--auth-fail`: answer every exchange with 535.
    pub fail: bool,
    /// `--auth-required`: refuse MAIL before a successful AUTH.
    pub required: bool,
}

/// A reply delay from `-w` / `-W cmd:delay[:odds]` (docs/smtp-sink.md §12.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    /// Seconds per unit of delay.
    pub secs: u32,
    /// 0: always exactly `secs`; 1–99: `secs` times the number of
    /// consecutive random draws below `odds` percent.
    pub odds: u32,
}

/// Failure injection and logging flags of one command (docs/smtp-sink.md §11).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CmdFlags {
    /// `-s`: syslog the command.
    pub syslog: bool,
    /// `-q`: close without a reply.
    pub drop: bool,
    /// `-Q`: `421 4.0.0 Server closing connection`, then close.
    pub close_421: bool,
    /// `-f`: hard-error reply.
    pub hard_error: bool,
    /// `-r`: soft-error reply.
    pub soft_error: bool,
    /// `-W`/`-w`: delay the reply.
    pub delay: Option<Delay>,
}

/// How transactions are dumped (`-d` / `-D`, docs/smtp-sink.md §16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DumpMode {
    /// `-d`: one file per transaction, named from the template plus 8 hex digits.
    PerMessage(Vec<u8>),
    /// `-D`: append each transaction to the file named by the template.
    Shared(Vec<u8>),
}

impl DumpMode {
    /// The strftime template.
    pub fn template(&self) -> &[u8] {
        match self {
            DumpMode::PerMessage(t) | DumpMode::Shared(t) => t,
        }
    }
}

/// A checked smtp-sink configuration. Fields are public so that library
/// users (tests, the control experiment) can build one directly; the
/// defaults are Postfix's ([`SinkConfig::default`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    /// The endpoint operand as given (`[inet:][host]:port` or `unix:PATH`);
    /// parsed and resolved when binding, after the root check (docs/smtp-sink.md §3).
    pub endpoint: Vec<u8>,
    /// listen(2) backlog (> 0).
    pub backlog: i32,
    /// `-4` / `-6`.
    pub family: Family,
    /// Announce `8BITMIME` (cleared by `-8`).
    pub announce_8bitmime: bool,
    /// Announce `AUTH PLAIN LOGIN` (cleared by `-a`).
    pub announce_auth: bool,
    /// `-A`: abort after 354 with `550 This violates SMTP` after this delay.
    pub abort_delay: Option<u32>,
    /// `-b`: soft-error reply text (no CR LF).
    pub soft_reply: Vec<u8>,
    /// `-B`: hard-error reply text (no CR LF).
    pub hard_reply: Vec<u8>,
    /// `-c`: counters on stdout.
    pub counters: bool,
    /// XCLIENT enabled and announced (cleared by `-C`).
    pub xclient: bool,
    /// `-d` / `-D`.
    pub dump: Option<DumpMode>,
    /// `ESMTP` in the greeting and EHLO enabled (cleared by `-e` and `-P`).
    pub esmtp: bool,
    /// Announce `ENHANCEDSTATUSCODES` (cleared by `-E`).
    pub announce_enhanced: bool,
    /// XFORWARD enabled and announced (cleared by `-F`).
    pub xforward: bool,
    /// `-h`: host name in greeting, HELO/EHLO and Received.
    pub hostname: Vec<u8>,
    /// `-H`: stop reading for this many seconds after 354.
    pub read_hold: Option<u32>,
    /// `-L`: LMTP.
    pub lmtp: bool,
    /// `-m`: maximum simultaneous sessions.
    pub max_sessions: usize,
    /// `--threads`: event loops the sessions are spread over.
    pub threads: u32,
    /// `-M`: exit 0 after this many messages.
    pub message_quit: Option<u64>,
    /// `-n`: exit 0 after this many QUIT sessions (works without `-c`, deviation S3, docs/deviations.md).
    pub quit_count: Option<u64>,
    /// Announce `DSN` (cleared by `-N`).
    pub announce_dsn: bool,
    /// Announce `PIPELINING` (cleared by `-p`, `-f`, `-r`).
    pub announce_pipelining: bool,
    /// `-P`: greeting `220 ********`.
    pub paranoid: bool,
    /// `-R`: chroot directory (only with `-u`).
    pub root_dir: Option<PathBuf>,
    /// Per-command flags, indexed by [`Cmd::index`].
    pub commands: [CmdFlags; Cmd::COUNT],
    /// `-S`: start string with escapes already expanded.
    pub start_string: Option<Vec<u8>>,
    /// `-t`: idle timeout and write time limit, seconds.
    pub timeout: u32,
    /// `-T`: SO_SNDBUF/SO_RCVBUF on the TCP listener.
    pub window: Option<u32>,
    /// `-u`: user to switch to after binding.
    pub user: Option<Vec<u8>>,
    /// `-v` count.
    pub verbose: u32,
    /// Refuse to run as root without `-u` (Postfix does; library users that
    /// embed the sink in a root process may turn this off).
    pub require_user_as_root: bool,
    /// `--tls-cert`/`--tls-key`/`--tls-self-signed`/`--tls`: STARTTLS or
    /// implicit TLS.
    pub tls: Option<TlsOptions>,
    /// `--auth`/`--auth-fail`/`--auth-required`: a real AUTH exchange
    /// instead of Postfix's one-line `250`.
    pub auth: Option<AuthOptions>,
    /// `--chunking`: announce CHUNKING and accept BDAT.
    pub chunking: bool,
    /// `--smtputf8`: announce SMTPUTF8; dumps keep UTF-8 arguments.
    pub smtputf8: bool,
    /// `--policy FILE`: the policy file, read and checked by
    /// [`Server::bind`](super::Server::bind) before binding.
    pub policy: Option<PathBuf>,
    /// `--seed N`: fixes the policy's random choices (default: random).
    pub seed: Option<u64>,
    /// The measurement long options; all off by default.
    pub measure: SinkOptions,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            endpoint: Vec::new(),
            backlog: 100,
            family: Family::Any,
            announce_8bitmime: true,
            announce_auth: true,
            abort_delay: None,
            soft_reply: DEFAULT_SOFT_REPLY.as_bytes().to_vec(),
            hard_reply: DEFAULT_HARD_REPLY.as_bytes().to_vec(),
            counters: false,
            xclient: true,
            dump: None,
            esmtp: true,
            announce_enhanced: true,
            xforward: true,
            hostname: b"smtp-sink".to_vec(),
            read_hold: None,
            lmtp: false,
            max_sessions: 256,
            threads: 1,
            message_quit: None,
            quit_count: None,
            announce_dsn: true,
            announce_pipelining: true,
            paranoid: false,
            root_dir: None,
            commands: [CmdFlags::default(); Cmd::COUNT],
            start_string: None,
            timeout: 100,
            window: None,
            user: None,
            verbose: 0,
            require_user_as_root: true,
            tls: None,
            auth: None,
            chunking: false,
            smtputf8: false,
            policy: None,
            seed: None,
            measure: SinkOptions::default(),
        }
    }
}

/// Default `-b` reply.
pub const DEFAULT_SOFT_REPLY: &str = "450 4.3.0 Error: command failed";
/// Default `-B` reply.
pub const DEFAULT_HARD_REPLY: &str = "500 5.3.0 Error: command failed";

/// The usage text after `usage: ` (docs/smtp-sink.md §1), with PROG as invoked.
pub fn usage() -> String {
    format!(
        "{prog} [-468acCeEFLpPv] [-A abort_delay] [-b soft_bounce_reply] \
         [-B hard_bounce_reply] [-d dump-template] [-D dump-template] [-f commands] \
         [-h hostname] [-m max_concurrency] [-M message_quit_count] [-n quit_count] \
         [-q commands] [-r commands] [-R root-dir] [-s commands] [-S start-string] \
         [-u user_privs] [-w delay] [host]:port backlog",
        prog = diag::prog()
    )
}

const fn flag(letter: char, help: &'static str) -> ShortOpt {
    ShortOpt {
        letter,
        value: None,
        help,
    }
}

const fn valued(letter: char, value: &'static str, help: &'static str) -> ShortOpt {
    ShortOpt {
        letter,
        value: Some(value),
        help,
    }
}

const SHORTS: &[ShortOpt] = &[
    flag('4', "Listen on IPv4 only"),
    flag('6', "Listen on IPv6 only"),
    flag('8', "Do not announce 8BITMIME"),
    flag('a', "Do not announce AUTH PLAIN LOGIN (AUTH stays enabled)"),
    valued(
        'A',
        "delay",
        "After 354, wait DELAY s, reply 550 This violates SMTP, disconnect",
    ),
    valued(
        'b',
        "soft_bounce_reply",
        "Soft-error reply text (4XX), default '450 4.3.0 Error: command failed'",
    ),
    valued(
        'B',
        "hard_bounce_reply",
        "Hard-error reply text (5XX), default '500 5.3.0 Error: command failed'",
    ),
    flag('c', "Show sess/quit/mesg counters on stdout"),
    flag('C', "Disable and do not announce XCLIENT"),
    valued(
        'd',
        "dump-template",
        "Dump each transaction to a new file: strftime(TEMPLATE) + 8 hex digits",
    ),
    valued(
        'D',
        "dump-template",
        "Append each transaction to the file strftime(TEMPLATE)",
    ),
    flag('e', "Plain SMTP: no ESMTP in the greeting, EHLO disabled"),
    flag('E', "Do not announce ENHANCEDSTATUSCODES"),
    valued(
        'f',
        "commands",
        "Reply with the hard error to these commands (and drop PIPELINING)",
    ),
    flag('F', "Disable and do not announce XFORWARD"),
    valued(
        'h',
        "hostname",
        "Host name in greeting, HELO/EHLO reply and Received (default smtp-sink)",
    ),
    valued('H', "delay", "After 354, stop reading for DELAY s"),
    flag(
        'L',
        "Speak LMTP (LHLO, one reply per recipient after the dot)",
    ),
    valued(
        'm',
        "max_concurrency",
        "Maximum simultaneous sessions (default 256)",
    ),
    valued('M', "message_quit_count", "Exit 0 after this many messages"),
    valued(
        'n',
        "quit_count",
        "Exit 0 after this many sessions ended with QUIT",
    ),
    flag('N', "Do not announce DSN"),
    flag('p', "Do not announce PIPELINING"),
    flag('P', "Greeting 220 ******** (implies -e)"),
    valued(
        'q',
        "commands",
        "Disconnect without reply on these commands",
    ),
    valued(
        'Q',
        "commands",
        "Reply 421 and disconnect on these commands",
    ),
    valued(
        'r',
        "commands",
        "Reply with the soft error to these commands (and drop PIPELINING)",
    ),
    valued('R', "root-dir", "chroot to this directory (only with -u)"),
    valued('s', "commands", "Log these commands to syslog (mail.info)"),
    valued(
        'S',
        "start-string",
        "Write this (C escapes allowed) at the start of each dump",
    ),
    valued(
        't',
        "timeout",
        "Idle timeout and write time limit in seconds (default 100)",
    ),
    valued('T', "window", "SO_SNDBUF/SO_RCVBUF of the TCP listener"),
    valued(
        'u',
        "user_privs",
        "Switch to this user after creating the listener (required as root)",
    ),
    flag('v', "Verbose output on stderr (repeatable)"),
    valued(
        'w',
        "delay",
        "Delay the reply to DATA by DELAY s (same as -W data:DELAY)",
    ),
    valued(
        'W',
        "cmd:delay[:odds]",
        "Delay the reply to CMD by DELAY s; with ODDS 1-99 a random multiple",
    ),
];

/// The command-line description (`--help` documents every option).
const fn long(name: &'static str, value: Option<&'static str>, help: &'static str) -> LongOpt {
    LongOpt { name, value, help }
}

/// Long options (TLS, AUTH, CHUNKING, SMTPUTF8, policy); none of them exists in Postfix, so without
/// them every byte stays Postfix's.
const LONGS: &[LongOpt] = &[
    crate::workers::THREADS_OPT,
    long(
        "tls-cert",
        Some("FILE"),
        "Offer STARTTLS with this PEM certificate chain",
    ),
    long(
        "tls-key",
        Some("FILE"),
        "PEM private key for --tls-cert (default: the --tls-cert file)",
    ),
    long(
        "tls-self-signed",
        None,
        "Offer STARTTLS with a certificate for the -h name generated at start-up",
    ),
    long(
        "tls",
        None,
        "Implicit TLS: handshake at connect, no STARTTLS (needs a certificate)",
    ),
    long(
        "auth",
        None,
        "Real AUTH PLAIN/LOGIN exchange (235 for any credentials) instead of 250",
    ),
    long(
        "auth-fail",
        None,
        "Answer every AUTH exchange with 535 (implies --auth)",
    ),
    long(
        "auth-required",
        None,
        "Refuse MAIL before a successful AUTH with 530 (implies --auth)",
    ),
    long(
        "chunking",
        None,
        "Announce CHUNKING and accept BDAT (RFC 3030)",
    ),
    long(
        "smtputf8",
        None,
        "Announce SMTPUTF8 (RFC 6531); dumps keep UTF-8",
    ),
    long(
        "policy",
        Some("FILE"),
        "Defer, bounce, rate-limit, greylist and tarpit by the rules of this TOML file",
    ),
    long(
        "seed",
        Some("N"),
        "Seed of the --policy random choices (same seed and input: same replies)",
    ),
];

/// The extension options, then the measurement options.
const ALL_LONGS: [LongOpt; LONGS.len() + SINK_LONGS.len()] = args::join_longs(LONGS, SINK_LONGS);

pub const SPEC: ToolSpec = ToolSpec {
    name: "smtp-sink",
    about: "SMTP/LMTP test server that accepts mail and discards it, or dumps it \
            to files (a drop-in replacement for Postfix's smtp-sink)",
    operands: "[inet:][host]:port backlog | unix:pathname backlog",
    shorts: SHORTS,
    longs: &ALL_LONGS,
    after_help: "COMMANDS lists are names separated by comma, space or tab: connect, helo, \
                 ehlo, lhlo, xclient, xforward, auth, mail, rcpt, data, ., rset, noop, vrfy, quit; \
                 also starttls with a TLS certificate and bdat with --chunking.\n\
                 Exit status: 0 after -M/-n conditions, 1 on any fatal error.",
};

/// Check a `-b`/`-B` reply: first digit `first`, exactly three leading digits.
fn valid_reply(reply: &[u8], first: u8) -> bool {
    let digits = reply.iter().take_while(|b| b.is_ascii_digit()).count();
    reply.first() == Some(&first) && digits == 3
}

/// A `-b`/`-B` reply, or Postfix's `error:` line and the usage fatal.
fn error_reply(v: &[u8], first: u8, kind: &str) -> Result<Vec<u8>> {
    if !valid_reply(v, first) {
        diag::error(&format!("bad {kind} error reply: {}", diag::sanitize(v)));
        return Err(Error::Usage);
    }
    Ok(v.to_vec())
}

/// Split a command list (comma, space, TAB, CR, LF) and look every name up.
fn command_list(value: &[u8], ext: Extensions) -> Result<Vec<Cmd>> {
    value
        .split(|b| matches!(b, b',' | b' ' | b'\t' | b'\r' | b'\n'))
        .filter(|name| !name.is_empty())
        .map(|name| {
            Cmd::lookup(name)
                .filter(|c| c.known(ext))
                .ok_or_else(|| Error::fatal(format!("unknown command: {}", diag::sanitize(name))))
        })
        .collect()
}

/// Parse `-W cmd:delay[:odds]` the way Postfix's `mystrtok` does.
fn parse_delay(value: &[u8], ext: Extensions) -> Result<(Cmd, Delay)> {
    let mut rest = value;
    let mut field = || -> Option<&[u8]> {
        let start = rest.iter().position(|&b| b != b':')?;
        let tail = &rest[start..];
        let end = tail.iter().position(|&b| b == b':').unwrap_or(tail.len());
        let token = &tail[..end];
        rest = if end < tail.len() {
            &tail[end + 1..]
        } else {
            &tail[end..]
        };
        Some(token)
    };
    let (Some(name), Some(delay)) = (field(), field()) else {
        return Err(Error::fatal(format!(
            "invalid command delay argument: {}",
            diag::sanitize(value)
        )));
    };
    let odds = rest;
    let cmd = Cmd::lookup(name)
        .filter(|c| c.known(ext))
        .ok_or_else(|| Error::fatal(format!("unknown command: {}", diag::sanitize(name))))?;
    let secs = atoi(delay);
    if secs <= 0 {
        return Err(Error::fatal(format!(
            "non-positive '{}' delay",
            diag::sanitize(name)
        )));
    }
    let odds = atoi(odds);
    if !(0..=99).contains(&odds) {
        return Err(Error::fatal(format!(
            "delay odds for '{}' out of range",
            diag::sanitize(name)
        )));
    }
    Ok((
        cmd,
        Delay {
            secs: secs as u32,
            odds: odds as u32,
        },
    ))
}

/// Expand the C escapes of `-S` (docs/smtp-sink.md §16.3); a NUL ends the string.
pub fn unescape(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        i += 1;
        let ch = if b != b'\\' {
            b
        } else {
            let Some(&e) = value.get(i) else {
                break; // trailing lone backslash is dropped
            };
            i += 1;
            match e {
                b'a' => 0x07,
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'v' => 0x0b,
                b'0'..=b'7' => {
                    let mut v = u32::from(e - b'0');
                    let mut n = 1;
                    while n < 3 && matches!(value.get(i), Some(b'0'..=b'7')) {
                        v = v * 8 + u32::from(value[i] - b'0');
                        i += 1;
                        n += 1;
                    }
                    v as u8
                }
                other => other,
            }
        };
        if ch == 0 {
            break;
        }
        out.push(ch);
    }
    out
}

/// `-d`/`-D` as given, checked together at the end.
#[derive(Debug, Default)]
struct DumpArgs {
    single: Option<Vec<u8>>,
    shared: Option<Vec<u8>>,
}

impl DumpArgs {
    fn check(self) -> Result<Option<DumpMode>> {
        let dump = match (self.single, self.shared) {
            (Some(_), Some(_)) => {
                return Err(Error::fatal("use only one of -d or -D, but not both"))
            }
            (Some(t), None) => DumpMode::PerMessage(t),
            (None, Some(t)) => DumpMode::Shared(t),
            (None, None) => return Ok(None),
        };
        // Deviation S6 (docs/deviations.md): Postfix loops forever on an empty template.
        if dump.template().is_empty() {
            return Err(Error::fatal("empty dump template"));
        }
        Ok(Some(dump))
    }
}

/// The TLS long options as given, checked together at the end.
#[derive(Debug, Default)]
struct TlsArgs {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    self_signed: bool,
    implicit: bool,
}

impl TlsArgs {
    fn check(self) -> Result<Option<TlsOptions>> {
        let identity = match (self.cert, self.key, self.self_signed) {
            (None, Some(_), _) => return Err(Error::fatal("--tls-key requires --tls-cert")),
            (Some(_), _, true) => {
                return Err(Error::fatal(
                    "use only one of --tls-cert or --tls-self-signed",
                ))
            }
            (Some(cert), key, false) => TlsIdentity::Files {
                key: key.unwrap_or_else(|| cert.clone()),
                cert,
            },
            (None, None, true) => TlsIdentity::SelfSigned,
            (None, None, false) if self.implicit => {
                return Err(Error::fatal(
                    "--tls requires --tls-cert or --tls-self-signed",
                ))
            }
            (None, None, false) => return Ok(None),
        };
        Ok(Some(TlsOptions {
            identity,
            implicit: self.implicit,
        }))
    }
}

impl SinkConfig {
    /// Parse `argv` (including `argv[0]`; call [`diag::set_prog`] first).
    ///
    /// Returns [`Command::Print`] for `--help` / `--version`. Errors are [`Error::Usage`] (print the usage fatal with
    /// [`usage`]) or [`Error::Fatal`]; lines that Postfix prints before the
    /// usage fatal (`invalid option`, `error: bad soft error reply`) have
    /// already been printed.
    pub fn from_args(argv: &[OsString]) -> Result<Command<SinkConfig>> {
        match args::parse(&SPEC, argv)? {
            Parsed::Help(text) | Parsed::Version(text) => Ok(Command::Print(text)),
            Parsed::Run { opts, operands } => {
                Ok(Command::Run(Box::new(Self::from_opts(&opts, &operands)?)))
            }
        }
    }

    /// Check the ordered options and the operands (docs/smtp-sink.md §2, §3 steps 1–3).
    pub fn from_opts(opts: &[Occurrence], operands: &[OsString]) -> Result<SinkConfig> {
        let mut c = SinkConfig::default();
        let mut dumps = DumpArgs::default();
        let mut tls = TlsArgs::default();
        // Command names of the extensions are known wherever their option
        // appears on the command line.
        let ext = Extensions {
            starttls: opts
                .iter()
                .any(|o| matches!(o.key, Key::Long("tls-cert" | "tls-self-signed"))),
            bdat: opts.iter().any(|o| o.key == Key::Long("chunking")),
        };
        for opt in opts {
            let v = opt.bytes();
            match opt.key {
                Key::Short(letter) => c.short_option(letter, opt, ext, &mut dumps)?,
                Key::Long("threads") => c.threads = crate::workers::parse_threads(v)?,
                Key::Long(name) => {
                    if !c.measure.apply(name, v)? && !c.policy_option(name, v)? {
                        c.long_option(name, v, &mut tls);
                    }
                }
            }
        }
        c.measure.check(c.counters)?;
        c.operands(operands)?;
        c.dump = dumps.check()?;
        c.tls = tls.check()?;
        if c.seed.is_some() && c.policy.is_none() {
            return Err(Error::fatal("--seed requires --policy"));
        }
        Ok(c)
    }

    /// `--policy`/`--seed`; false for any other option.
    fn policy_option(&mut self, name: &str, v: &[u8]) -> Result<bool> {
        match name {
            "policy" => self.policy = Some(PathBuf::from(std::ffi::OsStr::from_bytes(v))),
            "seed" => {
                let seed = std::str::from_utf8(v)
                    .ok()
                    .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| {
                        Error::fatal(format!("bad --seed value: {}", diag::sanitize(v)))
                    })?;
                self.seed = Some(seed);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// One short option, in command-line order.
    fn short_option(
        &mut self,
        letter: char,
        opt: &Occurrence,
        ext: Extensions,
        dumps: &mut DumpArgs,
    ) -> Result<()> {
        let v = opt.bytes();
        match letter {
            'A' | 'H' | 'm' | 'M' | 'n' | 't' | 'T' | 'w' => self.number_option(letter, v)?,
            'b' => self.soft_reply = error_reply(v, b'4', "soft")?,
            'B' => self.hard_reply = error_reply(v, b'5', "hard")?,
            'f' | 'q' | 'Q' | 'r' | 's' | 'W' => self.command_option(letter, v, ext)?,
            'd' => dumps.single = Some(v.to_vec()),
            'D' => dumps.shared = Some(v.to_vec()),
            'h' => self.hostname = v.to_vec(),
            'R' => self.root_dir = Some(PathBuf::from(opt.value.clone().unwrap_or_default())),
            'S' => self.start_string = Some(unescape(v)),
            'u' => self.user = Some(v.to_vec()),
            _ => self.switch(letter),
        }
        Ok(())
    }

    /// The options without a value.
    fn switch(&mut self, letter: char) {
        match letter {
            '4' => self.family = Family::V4,
            '6' => self.family = Family::V6,
            '8' => self.announce_8bitmime = false,
            'a' => self.announce_auth = false,
            'c' => self.counters = true,
            'C' => self.xclient = false,
            'e' => self.esmtp = false,
            'E' => self.announce_enhanced = false,
            'F' => self.xforward = false,
            'L' => self.lmtp = true,
            'N' => self.announce_dsn = false,
            'p' => self.announce_pipelining = false,
            'P' => {
                self.paranoid = true;
                self.esmtp = false;
            }
            'v' => self.verbose += 1,
            _ => {}
        }
    }

    /// The numeric options: `-A` digits only and not negative as a C int
    /// (docs/smtp-sink.md §2), the others positive.
    fn number_option(&mut self, letter: char, v: &[u8]) -> Result<()> {
        let positive = |what: &str| -> Result<u32> {
            let n = atoi(v);
            if n <= 0 {
                return Err(Error::fatal(format!("bad {what}: {}", diag::sanitize(v))));
            }
            Ok(n as u32)
        };
        match letter {
            'A' => {
                // All digits, yet atoi wraps: 2147483648 is negative (usage),
                // 4294967296 is 0 (accepted).
                let n = atoi(v);
                if v.is_empty() || !v.iter().all(u8::is_ascii_digit) || n < 0 {
                    return Err(Error::Usage);
                }
                self.abort_delay = Some(n as u32);
            }
            'H' => self.read_hold = Some(positive("data read delay")?),
            'm' => self.max_sessions = positive("concurrency limit")? as usize,
            'M' => self.message_quit = Some(u64::from(positive("message quit count")?)),
            'n' => self.quit_count = Some(u64::from(positive("quit count")?)),
            't' => self.timeout = positive("timeout")?,
            'T' => self.window = Some(positive("TCP window size")?),
            'w' => {
                let n = atoi(v);
                if n <= 0 {
                    return Err(Error::Usage);
                }
                self.commands[Cmd::Data.index()].delay = Some(Delay {
                    secs: n as u32,
                    odds: 0,
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// The options naming commands: failure injection, syslog, delays.
    fn command_option(&mut self, letter: char, v: &[u8], ext: Extensions) -> Result<()> {
        if letter == 'W' {
            let (cmd, delay) = parse_delay(v, ext)?;
            self.commands[cmd.index()].delay = Some(delay);
            return Ok(());
        }
        if matches!(letter, 'f' | 'r') {
            self.announce_pipelining = false;
        }
        for cmd in command_list(v, ext)? {
            let flags = &mut self.commands[cmd.index()];
            match letter {
                'f' => flags.hard_error = true,
                'q' => flags.drop = true,
                'Q' => flags.close_421 = true,
                'r' => flags.soft_error = true,
                's' => flags.syslog = true,
                _ => {}
            }
        }
        Ok(())
    }

    /// The operands: endpoint and backlog.
    fn operands(&mut self, operands: &[OsString]) -> Result<()> {
        let [endpoint, backlog] = operands else {
            return Err(Error::Usage);
        };
        self.backlog = atoi(backlog.as_bytes());
        if self.backlog <= 0 {
            return Err(Error::Usage);
        }
        self.endpoint = endpoint.as_bytes().to_vec();
        Ok(())
    }

    /// One TLS, AUTH, CHUNKING or SMTPUTF8 long option.
    fn long_option(&mut self, name: &str, v: &[u8], tls: &mut TlsArgs) {
        let path = || PathBuf::from(std::ffi::OsStr::from_bytes(v));
        match name {
            "tls-cert" => tls.cert = Some(path()),
            "tls-key" => tls.key = Some(path()),
            "tls-self-signed" => tls.self_signed = true,
            "tls" => tls.implicit = true,
            "auth" => {
                self.auth.get_or_insert_with(AuthOptions::default);
            }
            "auth-fail" => self.auth.get_or_insert_with(AuthOptions::default).fail = true,
            "auth-required" => {
                self.auth.get_or_insert_with(AuthOptions::default).required = true;
            }
            "chunking" => self.chunking = true,
            "smtputf8" => self.smtputf8 = true,
            _ => {}
        }
    }

    /// The command names known with this configuration's extensions.
    pub fn extensions(&self) -> Extensions {
        Extensions {
            starttls: self.tls.is_some(),
            bdat: self.chunking,
        }
    }

    /// Flags of `cmd`.
    pub fn flags(&self, cmd: Cmd) -> &CmdFlags {
        &self.commands[cmd.index()]
    }

    /// Whether any command is logged to syslog.
    pub fn uses_syslog(&self) -> bool {
        self.commands.iter().any(|f| f.syslog)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<SinkConfig> {
        let argv: Vec<OsString> = std::iter::once("smtp-sink")
            .chain(argv.iter().copied())
            .map(OsString::from)
            .collect();
        match SinkConfig::from_args(&argv)? {
            Command::Run(c) => Ok(*c),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let c = parse(&[":25", "10"]).unwrap();
        assert_eq!(c.backlog, 10);
        assert_eq!(c.endpoint, b":25");
        assert_eq!(c.max_sessions, 256);
        assert_eq!(c.timeout, 100);
        assert_eq!(c.hostname, b"smtp-sink");
        assert!(c.announce_pipelining && c.esmtp && c.xclient && c.xforward);
        assert_eq!(parse(&[":25", "10x"]).unwrap().backlog, 10);
    }

    #[test]
    fn validation_table() {
        let fatal = |s: &str| Err(Error::fatal(s));
        let cases: Vec<(Vec<&str>, Result<()>)> = vec![
            (vec![":25"], Err(Error::Usage)),
            (vec![":25", "1", "x"], Err(Error::Usage)),
            (vec![":25", "0"], Err(Error::Usage)),
            (vec![":25", "abc"], Err(Error::Usage)),
            (vec![":25", "-5"], Err(Error::Usage)),
            (vec!["-A", "1x", ":25", "1"], Err(Error::Usage)),
            (vec!["-A", "", ":25", "1"], Err(Error::Usage)),
            (vec!["-A", " 1", ":25", "1"], Err(Error::Usage)),
            (vec!["-A", "-1", ":25", "1"], Err(Error::Usage)),
            (vec!["-A", "2147483648", ":25", "1"], Err(Error::Usage)),
            (vec!["-A", "4294967295", ":25", "1"], Err(Error::Usage)),
            (
                vec!["-A", "99999999999999999999", ":25", "1"],
                Err(Error::Usage),
            ),
            (vec!["-b", "550", ":25", "1"], Err(Error::Usage)),
            (vec!["-b", "4501", ":25", "1"], Err(Error::Usage)),
            (vec!["-b", "45", ":25", "1"], Err(Error::Usage)),
            (vec!["-B", "450", ":25", "1"], Err(Error::Usage)),
            (vec!["-w", "0", ":25", "1"], Err(Error::Usage)),
            (vec!["-f", "FOO", ":25", "1"], fatal("unknown command: FOO")),
            (
                vec!["-s", "conNect,bogus", ":25", "1"],
                fatal("unknown command: bogus"),
            ),
            (
                vec!["-W", "Bogus:1", ":25", "1"],
                fatal("unknown command: Bogus"),
            ),
            (
                vec!["-W", "data", ":25", "1"],
                fatal("invalid command delay argument: data"),
            ),
            (
                vec!["-W", "DATA:0", ":25", "1"],
                fatal("non-positive 'DATA' delay"),
            ),
            (
                vec!["-W", "data:1:100", ":25", "1"],
                fatal("delay odds for 'data' out of range"),
            ),
            (
                vec!["-W", "data:1:-1", ":25", "1"],
                fatal("delay odds for 'data' out of range"),
            ),
            (vec!["-t", "0", ":25", "1"], fatal("bad timeout: 0")),
            (
                vec!["-T", "-1", ":25", "1"],
                fatal("bad TCP window size: -1"),
            ),
            (
                vec!["-m", "x", ":25", "1"],
                fatal("bad concurrency limit: x"),
            ),
            (
                vec!["-M", "0", ":25", "1"],
                fatal("bad message quit count: 0"),
            ),
            (vec!["-n", "0", ":25", "1"], fatal("bad quit count: 0")),
            (vec!["-H", "0", ":25", "1"], fatal("bad data read delay: 0")),
            (
                vec!["-d", "a", "-D", "b", ":25", "1"],
                fatal("use only one of -d or -D, but not both"),
            ),
            (vec!["-d", "", ":25", "1"], fatal("empty dump template")),
            (vec!["-D", "", ":25", "1"], fatal("empty dump template")),
            (vec!["-b", "450-foo", "-B", "554", ":25", "1"], Ok(())),
            (vec!["-f", "", ":25", "1"], Ok(())),
            (vec!["-W", "data::2", ":25", "1"], Ok(())),
        ];
        for (argv, want) in cases {
            assert_eq!(parse(&argv).map(|_| ()), want, "argv {argv:?}");
        }
    }

    #[test]
    fn option_effects() {
        let c = parse(&["-f", "MAIL,Rcpt", "-W", "rcpt:2:50", "-w", "3", ":25", "1"]).unwrap();
        assert!(!c.announce_pipelining);
        assert!(c.flags(Cmd::Mail).hard_error && c.flags(Cmd::Rcpt).hard_error);
        assert_eq!(c.flags(Cmd::Rcpt).delay, Some(Delay { secs: 2, odds: 50 }));
        assert_eq!(c.flags(Cmd::Data).delay, Some(Delay { secs: 3, odds: 0 }));
        let c = parse(&["-W", "data:1:5", "-W", "data:4", ":25", "1"]).unwrap();
        assert_eq!(c.flags(Cmd::Data).delay, Some(Delay { secs: 4, odds: 0 }));
        let c = parse(&["-P", "-q", ". quit", "-Q", "connect", ":25", "1"]).unwrap();
        assert!(c.paranoid && !c.esmtp);
        assert!(c.flags(Cmd::Dot).drop && c.flags(Cmd::Quit).drop);
        assert!(c.flags(Cmd::Connect).close_421);
        let c = parse(&["-6", "-4", "-vv", ":25", "1"]).unwrap();
        assert_eq!(c.family, Family::V4);
        assert_eq!(c.verbose, 2);
        for (value, delay) in [("0", 0), ("2147483647", i32::MAX as u32), ("4294967296", 0)] {
            let c = parse(&["-A", value, ":25", "1"]).unwrap();
            assert_eq!(c.abort_delay, Some(delay), "-A {value}");
        }
    }

    #[test]
    fn unescape_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"A\\tB\\101\\1012\\0hidden", b"A\tBAA2"),
            (b"START\\n", b"START\n"),
            (b"a\\\\b", b"a\\b"),
            (b"a\\qb", b"aqb"),
            (b"trail\\", b"trail"),
            (b"\\a\\b\\f\\r\\v", b"\x07\x08\x0c\r\x0b"),
            (b"\\777x", b"\xffx"),
            (b"\\0", b""),
            (b"\\18", b"\x018"),
        ];
        for &(input, want) in cases {
            assert_eq!(unescape(input), want, "{input:?}");
        }
    }
}
