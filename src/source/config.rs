//! smtp-source command line → checked [`SourceConfig`].
//!
//! Options are checked left to right as Postfix does, so order-dependent
//! conflicts (`-l`/`-F`, `-w`/`-R`) and `-M` validation happen during option
//! parsing, before the operand count is checked. This module owns every
//! option-validation message; the exact texts come from docs/smtp-source.md §2.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use crate::args::{self, Key, LongOpt, Occurrence, Parsed, ShortOpt, ToolSpec};
use crate::diag::{self, Error, Result};
use crate::endpoint::Family;
use crate::measure::options::{SourceOptions, SOURCE_LONGS};
use crate::proto::bdat_send;
use crate::proto::ehlo::Mechanism;
use crate::proto::hostname;
use crate::workers;

/// Per-operation I/O limit on an established connection (Postfix's
/// `smtp-source` uses 300 s; per deviation D2 (docs/deviations.md) it also covers the wait for the
/// first byte of a reply).
pub const IO_TIMEOUT: Duration = Duration::from_secs(300);

/// The usage text after `usage: ` (PROG is filled in at run time).
pub fn usage() -> String {
    format!(
        "{} -cdLNov -s sess -l msglen -m msgs -C count -M myhostname -f from -t to -r rcptcount -R delay -w delay host[:port]",
        diag::prog()
    )
}

const SHORTS: &[ShortOpt] = &[
    ShortOpt {
        letter: '4',
        value: None,
        help: "Connect with IPv4 only",
    },
    ShortOpt {
        letter: '6',
        value: None,
        help: "Connect with IPv6 only",
    },
    ShortOpt {
        letter: 'A',
        value: None,
        help: "Do not abort on unexpected replies: warn and continue",
    },
    ShortOpt {
        letter: 'c',
        value: None,
        help: "Show a running message counter on stdout",
    },
    ShortOpt {
        letter: 'C',
        value: Some("count"),
        help: "Connect attempts per session before giving up (default 1)",
    },
    ShortOpt {
        letter: 'd',
        value: None,
        help: "Keep the connection open and send the next message over it",
    },
    ShortOpt {
        letter: 'f',
        value: Some("from"),
        help: "Envelope sender and From: header (default foo@HOSTNAME)",
    },
    ShortOpt {
        letter: 'F',
        value: Some("file"),
        help: "Send the file's content as the whole message (no generated headers)",
    },
    ShortOpt {
        letter: 'l',
        value: Some("length"),
        help: "Send a generated body of length bytes (plus CRLF)",
    },
    ShortOpt {
        letter: 'L',
        value: None,
        help: "Speak LMTP instead of SMTP",
    },
    ShortOpt {
        letter: 'm',
        value: Some("count"),
        help: "Total number of messages over all sessions (default 1)",
    },
    ShortOpt {
        letter: 'M',
        value: Some("myhostname"),
        help: "Hostname for HELO/LHLO, default addresses and Message-Id",
    },
    ShortOpt {
        letter: 'N',
        value: None,
        help: "Number the recipients (foo0@host, foo1@host, ...)",
    },
    ShortOpt {
        letter: 'o',
        value: None,
        help: "Old mode: no HELO/LHLO and no generated headers",
    },
    ShortOpt {
        letter: 'r',
        value: Some("count"),
        help: "Recipients per transaction (implies -N) (default 1)",
    },
    ShortOpt {
        letter: 'R',
        value: Some("interval"),
        help: "Random pause of 0..interval seconds before each next message",
    },
    ShortOpt {
        letter: 's',
        value: Some("count"),
        help: "Number of parallel sessions (default 1)",
    },
    ShortOpt {
        letter: 'S',
        value: Some("subject"),
        help: "Add a Subject: header",
    },
    ShortOpt {
        letter: 't',
        value: Some("to"),
        help: "Recipient address (default foo@HOSTNAME)",
    },
    ShortOpt {
        letter: 'T',
        value: Some("window"),
        help: "TCP send and receive buffer size in bytes",
    },
    ShortOpt {
        letter: 'v',
        value: None,
        help: "Verbose: log commands and replies to stderr (repeatable)",
    },
    ShortOpt {
        letter: 'w',
        value: Some("interval"),
        help: "Fixed pause of interval seconds before each next message",
    },
];

/// The smtp-source command line.
pub const SPEC: ToolSpec = ToolSpec {
    name: "smtp-source",
    about: "SMTP/LMTP load generator, a drop-in replacement for Postfix's smtp-source",
    operands: "[inet:]host[:port] | unix:pathname",
    shorts: SHORTS,
    longs: &LONGS,
    after_help: "Numeric arguments follow C atoi() rules. Exit status: 0 when all messages \
were processed, 1 on any fatal error.",
};

/// Checked smtp-source settings. Every field is valid; nothing here does I/O.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// `-4` / `-6`.
    pub family: Family,
    /// `-A`: warn and continue on unexpected replies.
    pub ignore_errors: bool,
    /// `-c`: running counter on stdout.
    pub counter: bool,
    /// `-C`: connect attempts per session (≥ 1).
    pub connect_attempts: u32,
    /// `-d`: keep the connection for the next message.
    pub reuse: bool,
    /// `-f`: sender (`None` = `foo@HOSTNAME`).
    pub sender: Option<Vec<u8>>,
    /// `-F`: message file (last one wins).
    pub file: Option<PathBuf>,
    /// `-l`: generated body length (≥ 1).
    pub length: Option<usize>,
    /// `-L`: LMTP.
    pub lmtp: bool,
    /// `-m`: total messages (≥ 1).
    pub messages: i32,
    /// `-M`: validated hostname (`None` = system hostname).
    pub hostname: Option<Vec<u8>>,
    /// `-N` or `-r`: number the recipients.
    pub numbering: bool,
    /// `-o`: old mode.
    pub old_mode: bool,
    /// `-r`: recipients per transaction (≥ 1).
    pub recipients: u32,
    /// `-R`: random delay bound in seconds.
    pub random_delay: Option<u32>,
    /// `-w`: fixed delay in seconds.
    pub fixed_delay: Option<u32>,
    /// `-s`: parallel sessions (≥ 1).
    pub sessions: u32,
    /// `--threads`: event loops the sessions are split over (1 ..= the
    /// sessions this process runs).
    pub threads: u32,
    /// `-S`: subject.
    pub subject: Option<Vec<u8>>,
    /// `-t`: recipient (`None` = `foo@HOSTNAME`).
    pub recipient: Option<Vec<u8>>,
    /// `-T`: socket buffer sizes.
    pub window: Option<u32>,
    /// `-v` count.
    pub verbose: u32,
    /// The endpoint operand, unparsed (parsed at run time, after the
    /// message body is prepared, as Postfix does).
    pub endpoint: Vec<u8>,
    /// Per-operation I/O limit ([`IO_TIMEOUT`]); library users (tests) may
    /// lower it. Not reachable from the command line.
    pub io_timeout: Duration,
    /// The ESMTP/TLS extension options; all off by default, and
    /// then the session is exactly Postfix's.
    pub ext: Extensions,
    /// The measurement long options; all off by default.
    pub measure: SourceOptions,
}

/// What the command line asks for: run, or print `--help`/`--version`.
pub type Command = args::Command<SourceConfig>;

/// `atoi(value)`, which must be > 0, else `fatal: WHAT: ARG`.
fn positive(opt: &Occurrence, what: &str) -> Result<i32> {
    let n = args::atoi(opt.bytes());
    if n <= 0 {
        return Err(Error::fatal(format!(
            "{what}: {}",
            diag::sanitize(opt.bytes())
        )));
    }
    Ok(n)
}

impl SourceConfig {
    /// Parse `argv` (with `argv[0]`): a checked configuration, or the text
    /// of `--help`/`--version`. Validation warnings (`-M`) are printed to
    /// stderr as they happen; errors come back as [`Error`].
    pub fn from_args(argv: &[OsString]) -> Result<Command> {
        match args::parse(&SPEC, argv)? {
            Parsed::Help(text) | Parsed::Version(text) => Ok(Command::Print(text)),
            Parsed::Run { opts, operands } => {
                Self::from_parsed(&opts, &operands).map(|c| Command::Run(Box::new(c)))
            }
        }
    }

    /// Check the ordered options and the operands.
    pub fn from_parsed(opts: &[Occurrence], operands: &[OsString]) -> Result<SourceConfig> {
        let mut c = SourceConfig {
            family: Family::Any,
            ignore_errors: false,
            counter: false,
            connect_attempts: 1,
            reuse: false,
            sender: None,
            file: None,
            length: None,
            lmtp: false,
            messages: 1,
            hostname: None,
            numbering: false,
            old_mode: false,
            recipients: 1,
            random_delay: None,
            fixed_delay: None,
            sessions: 1,
            threads: 1,
            subject: None,
            recipient: None,
            window: None,
            verbose: 0,
            endpoint: Vec::new(),
            io_timeout: IO_TIMEOUT,
            ext: Extensions::default(),
            measure: SourceOptions::default(),
        };
        for opt in opts {
            let letter = match opt.key {
                Key::Short(letter) => letter,
                Key::Long("threads") => {
                    c.threads = workers::parse_threads(opt.bytes())?;
                    continue;
                }
                Key::Long(name) => {
                    if !c.measure.apply(name, opt.bytes())? {
                        c.ext.set(name, opt)?;
                    }
                    continue;
                }
            };
            c.short_option(letter, opt)?;
        }
        c.ext.check(c.old_mode)?;
        c.measure.count_given = opts.iter().any(|o| o.key == Key::Short('m'));
        c.measure.check(c.counter)?;
        if c.measure.merge {
            c.measure.files = operands.to_vec();
            return Ok(c);
        }
        let sessions = c.measure.session_count(c.sessions);
        if c.threads > sessions {
            // Every loop runs at least one session.
            return Err(Error::fatal(format!(
                "--threads {} is more than the {sessions} sessions to run",
                c.threads
            )));
        }
        if operands.len() != 1 {
            return Err(Error::Usage);
        }
        c.endpoint = operands[0].as_bytes().to_vec();
        Ok(c)
    }

    /// One short option, checked as Postfix checks it: left to right, so
    /// the order-dependent checks (`-l`/`-F`, `-w`/`-R`) see what came
    /// before.
    fn short_option(&mut self, letter: char, opt: &Occurrence) -> Result<()> {
        match letter {
            '4' => self.family = Family::V4,
            '6' => self.family = Family::V6,
            'A' => self.ignore_errors = true,
            'c' => self.counter = true,
            'C' => self.connect_attempts = positive(opt, "bad connection count")? as u32,
            'd' => self.reuse = true,
            'f' => self.sender = Some(opt.bytes().to_vec()),
            'F' => {
                if self.length.is_some() {
                    return Err(Error::fatal("-l option cannot be used with -F"));
                }
                self.file = Some(PathBuf::from(std::ffi::OsStr::from_bytes(opt.bytes())));
            }
            'l' => {
                if self.file.is_some() {
                    return Err(Error::fatal("-l option cannot be used with -F"));
                }
                self.length = Some(positive(opt, "bad message length")? as usize);
            }
            'L' => self.lmtp = true,
            'm' => self.messages = positive(opt, "bad message count")?,
            'M' => {
                let name = opt.bytes();
                if name.first() == Some(&b'[') {
                    if let Err(w) = hostname::check_address_literal(name) {
                        diag::warning(&w);
                        return Err(Error::fatal(format!(
                            "bad address literal: {}",
                            diag::sanitize(name)
                        )));
                    }
                } else if let Err(w) = hostname::check_hostname(name) {
                    diag::warning(&w);
                    return Err(Error::fatal(format!(
                        "bad hostname: {}",
                        diag::sanitize(name)
                    )));
                }
                self.hostname = Some(name.to_vec());
            }
            'N' => self.numbering = true,
            'o' => self.old_mode = true,
            'r' => {
                self.recipients = positive(opt, "bad recipient count")? as u32;
                self.numbering = true;
            }
            'R' => {
                if self.fixed_delay.is_some() {
                    return Err(Error::fatal(
                        "do not use -w and -R options at the same time",
                    ));
                }
                self.random_delay = Some(positive(opt, "bad random delay")? as u32);
            }
            's' => self.sessions = positive(opt, "bad session count")? as u32,
            'S' => self.subject = Some(opt.bytes().to_vec()),
            't' => self.recipient = Some(opt.bytes().to_vec()),
            'T' => self.window = Some(positive(opt, "bad TCP window size")? as u32),
            'v' => self.verbose += 1,
            'w' => {
                if self.random_delay.is_some() {
                    return Err(Error::fatal(
                        "do not use -w and -R options at the same time",
                    ));
                }
                self.fixed_delay = Some(positive(opt, "bad fixed delay")? as u32);
            }
            _ => return Err(Error::Usage),
        }
        Ok(())
    }
}

/// The extension options. None has a short form, so a Postfix
/// command line never reaches them.
const EXT_LONGS: &[LongOpt] = &[
    workers::THREADS_OPT,
    LongOpt {
        name: "ehlo",
        value: None,
        help: "Send EHLO instead of HELO and read the server's extensions (LMTP: LHLO as always)",
    },
    LongOpt {
        name: "pipelining",
        value: None,
        help: "RFC 2920: send MAIL, all RCPTs and DATA (or the BDAT chunks) in one write; \
with -d the next message's commands travel with the previous content (needs --ehlo)",
    },
    LongOpt {
        name: "starttls",
        value: None,
        help: "RFC 3207: upgrade to TLS with STARTTLS after EHLO, then EHLO again (implies --ehlo)",
    },
    LongOpt {
        name: "tls",
        value: None,
        help: "RFC 8314 implicit TLS: TLS from the first byte; no port in the endpoint means 465 (submissions)",
    },
    LongOpt {
        name: "tls-verify",
        value: None,
        help: "Verify the server certificate against --tls-ca and the host name (default: not verified)",
    },
    LongOpt {
        name: "tls-ca",
        value: Some("FILE"),
        help: "PEM file of trusted CA certificates for --tls-verify",
    },
    LongOpt {
        name: "tls-resume",
        value: None,
        help: "Resume TLS sessions across connections (default: a full handshake each time)",
    },
    LongOpt {
        name: "auth",
        value: Some("MECH"),
        help: "RFC 4954: authenticate with PLAIN or LOGIN after EHLO (and TLS) (needs --ehlo)",
    },
    LongOpt {
        name: "auth-user",
        value: Some("USER"),
        help: "User name for --auth",
    },
    LongOpt {
        name: "auth-password",
        value: Some("PASSWORD"),
        help: "Password for --auth",
    },
    LongOpt {
        name: "auth-plaintext",
        value: None,
        help: "Allow --auth without --starttls or --tls",
    },
    LongOpt {
        name: "bdat",
        value: Some("[SIZE]"),
        help: "RFC 3030: send the message in BDAT chunks of SIZE bytes (default 65536), \
no dot-stuffing (needs --ehlo)",
    },
    LongOpt {
        name: "smtputf8",
        value: None,
        help: "RFC 6531: add SMTPUTF8 to MAIL FROM (UTF-8 in -f/-t) (needs --ehlo)",
    },
    LongOpt {
        name: "8bitmime",
        value: None,
        help: "RFC 6152: add BODY=8BITMIME to MAIL FROM (needs --ehlo)",
    },
    LongOpt {
        name: "size",
        value: None,
        help: "RFC 1870: add SIZE=n (the message size) to MAIL FROM (needs --ehlo)",
    },
];

/// Every long option: the extensions, then the measurements
/// ([`SOURCE_LONGS`]).
const LONGS: [LongOpt; EXT_LONGS.len() + SOURCE_LONGS.len()] =
    args::join_longs(EXT_LONGS, SOURCE_LONGS);

/// How TLS is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Plain text throughout.
    #[default]
    Off,
    /// STARTTLS after EHLO (RFC 3207).
    Starttls,
    /// TLS from the first byte (RFC 8314).
    Implicit,
}

/// SMTP AUTH settings (RFC 4954).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The SASL mechanism.
    pub mech: Mechanism,
    /// `--auth-user`.
    pub user: Vec<u8>,
    /// `--auth-password`.
    pub password: Vec<u8>,
}

/// Checked extension options. `Default` is "none": Postfix's behaviour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// `--ehlo` (or implied by `--starttls`): EHLO and a capability check.
    pub ehlo: bool,
    /// `--pipelining`.
    pub pipelining: bool,
    /// `--starttls` / `--tls`.
    pub tls: TlsMode,
    /// `--tls-verify --tls-ca FILE`: the trust anchors.
    pub tls_ca: Option<PathBuf>,
    /// `--tls-resume`.
    pub tls_resume: bool,
    /// `--auth` with user and password.
    pub auth: Option<AuthConfig>,
    /// `--bdat[=SIZE]`: chunk size.
    pub bdat: Option<usize>,
    /// `--smtputf8`.
    pub smtputf8: bool,
    /// `--8bitmime`.
    pub eightbitmime: bool,
    /// `--size`.
    pub size: bool,
    // Raw option state, checked by `check`.
    verify: bool,
    auth_mech: Option<Mechanism>,
    auth_user: Option<Vec<u8>>,
    auth_password: Option<Vec<u8>>,
    auth_plaintext: bool,
}

impl Extensions {
    /// True when any extension option is on (the session then takes the
    /// ESMTP path; otherwise it is byte-for-byte Postfix's).
    pub fn active(&self) -> bool {
        self.ehlo || self.tls != TlsMode::Off
    }

    /// Record one long option (values are checked here, combinations in
    /// [`Extensions::check`]).
    fn set(&mut self, name: &str, opt: &Occurrence) -> Result<()> {
        let value = opt.bytes();
        match name {
            "ehlo" => self.ehlo = true,
            "pipelining" => self.pipelining = true,
            "starttls" | "tls" => {
                let mode = if name == "tls" {
                    TlsMode::Implicit
                } else {
                    TlsMode::Starttls
                };
                if self.tls != TlsMode::Off && self.tls != mode {
                    return Err(Error::fatal("--tls and --starttls cannot be used together"));
                }
                self.tls = mode;
            }
            "tls-verify" => self.verify = true,
            "tls-ca" => {
                if value.is_empty() {
                    return Err(Error::fatal("--tls-ca: empty file name"));
                }
                self.tls_ca = Some(PathBuf::from(std::ffi::OsStr::from_bytes(value)));
            }
            "tls-resume" => self.tls_resume = true,
            "auth" => match Mechanism::parse(value) {
                Some(m) => self.auth_mech = Some(m),
                None => {
                    return Err(Error::fatal(format!(
                        "unsupported --auth mechanism: {} (use PLAIN or LOGIN)",
                        diag::sanitize(value)
                    )))
                }
            },
            "auth-user" => self.auth_user = Some(value.to_vec()),
            "auth-password" => self.auth_password = Some(value.to_vec()),
            "auth-plaintext" => self.auth_plaintext = true,
            "bdat" => {
                let size = match &opt.value {
                    None => bdat_send::DEFAULT_CHUNK,
                    Some(_) => std::str::from_utf8(value)
                        .ok()
                        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|v| v.parse::<usize>().ok())
                        .filter(|&n| n > 0)
                        .ok_or_else(|| {
                            Error::fatal(format!("bad BDAT chunk size: {}", diag::sanitize(value)))
                        })?,
                };
                self.bdat = Some(size);
            }
            "smtputf8" => self.smtputf8 = true,
            "8bitmime" => self.eightbitmime = true,
            "size" => self.size = true,
            _ => return Err(Error::Usage),
        }
        Ok(())
    }

    /// Check the combinations, once every option is known.
    fn check(&mut self, old_mode: bool) -> Result<()> {
        let need = |cond: bool, msg: &str| {
            if cond {
                Err(Error::fatal(msg))
            } else {
                Ok(())
            }
        };
        // RFC 3207: STARTTLS is only known from an EHLO reply, and the
        // client must EHLO again inside TLS.
        if self.tls == TlsMode::Starttls {
            need(old_mode, "--starttls cannot be used with -o")?;
            self.ehlo = true;
        }
        need(self.ehlo && old_mode, "--ehlo cannot be used with -o")?;
        let tls = self.tls != TlsMode::Off;
        need(
            self.verify && !tls,
            "--tls-verify requires --starttls or --tls",
        )?;
        need(
            self.tls_resume && !tls,
            "--tls-resume requires --starttls or --tls",
        )?;
        need(
            self.tls_ca.is_some() && !self.verify,
            "--tls-ca requires --tls-verify",
        )?;
        need(
            self.verify && self.tls_ca.is_none(),
            "--tls-verify requires --tls-ca FILE",
        )?;
        need(
            self.auth_user.is_some() && self.auth_mech.is_none(),
            "--auth-user requires --auth",
        )?;
        need(
            self.auth_password.is_some() && self.auth_mech.is_none(),
            "--auth-password requires --auth",
        )?;
        need(
            self.auth_plaintext && self.auth_mech.is_none(),
            "--auth-plaintext requires --auth",
        )?;
        if let Some(mech) = self.auth_mech {
            let (Some(user), Some(password)) = (self.auth_user.take(), self.auth_password.take())
            else {
                return Err(Error::fatal(
                    "--auth requires --auth-user and --auth-password",
                ));
            };
            // RFC 4954 §4: mechanisms that send passwords in the clear need
            // a protected channel; only an explicit opt-in goes without.
            need(
                !tls && !self.auth_plaintext,
                "--auth requires --starttls or --tls (or --auth-plaintext)",
            )?;
            self.auth = Some(AuthConfig {
                mech,
                user,
                password,
            });
        }
        for (on, name) in [
            (self.pipelining, "--pipelining"),
            (self.auth.is_some(), "--auth"),
            (self.bdat.is_some(), "--bdat"),
            (self.smtputf8, "--smtputf8"),
            (self.eightbitmime, "--8bitmime"),
            (self.size, "--size"),
        ] {
            need(on && !self.ehlo, &format!("{name} requires --ehlo"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<SourceConfig> {
        let argv: Vec<OsString> = std::iter::once("smtp-source")
            .chain(argv.iter().copied())
            .map(OsString::from)
            .collect();
        match SourceConfig::from_args(&argv)? {
            Command::Run(config) => Ok(*config),
            Command::Print(_) => Err(Error::Usage),
        }
    }

    fn fatal(argv: &[&str]) -> String {
        match parse(argv) {
            Err(Error::Fatal(t)) => t,
            other => panic!("{argv:?}: expected fatal, got {other:?}"),
        }
    }

    #[test]
    fn fatal_texts() {
        let cases: &[(&[&str], &str)] = &[
            (&["-C", "0", "h"], "bad connection count: 0"),
            (&["-C", "abc", "h"], "bad connection count: abc"),
            (&["-l", "0", "h"], "bad message length: 0"),
            (&["-l", "-5", "h"], "bad message length: -5"),
            (&["-m", "0", "h"], "bad message count: 0"),
            (&["-r", "0", "h"], "bad recipient count: 0"),
            (&["-R", "0", "h"], "bad random delay: 0"),
            (&["-w", "0", "h"], "bad fixed delay: 0"),
            (&["-s", "0", "h"], "bad session count: 0"),
            (&["-T", "0", "h"], "bad TCP window size: 0"),
            (
                &["-w", "1", "-R", "1", "h"],
                "do not use -w and -R options at the same time",
            ),
            (
                &["-R", "1", "-w", "1", "h"],
                "do not use -w and -R options at the same time",
            ),
            (
                &["-l", "10", "-F", "f", "h"],
                "-l option cannot be used with -F",
            ),
            (
                &["-F", "f", "-l", "10", "h"],
                "-l option cannot be used with -F",
            ),
            (
                &["-F", "f", "-l", "0", "h"],
                "-l option cannot be used with -F",
            ),
            // Checked before the operand count.
            (&["-m", "0"], "bad message count: 0"),
            (&["-m", "0", "a", "b"], "bad message count: 0"),
        ];
        for (argv, want) in cases {
            assert_eq!(fatal(argv), *want, "{argv:?}");
        }
    }

    #[test]
    fn extension_options() {
        let c = parse(&["h"]).unwrap();
        assert_eq!(c.ext, Extensions::default());
        assert!(!c.ext.active(), "no option: Postfix's dialogue");
        let c = parse(&["--starttls", "h"]).unwrap();
        assert!(c.ext.ehlo, "--starttls implies EHLO");
        assert_eq!(c.ext.tls, TlsMode::Starttls);
        let c = parse(&["--tls", "--tls", "h"]).unwrap();
        assert_eq!(c.ext.tls, TlsMode::Implicit);
        assert!(!c.ext.ehlo && c.ext.active());
        let c = parse(&["--ehlo", "--bdat", "h"]).unwrap();
        assert_eq!(c.ext.bdat, Some(bdat_send::DEFAULT_CHUNK));
        let c = parse(&["--ehlo", "--bdat=100", "--bdat=7", "h"]).unwrap();
        assert_eq!(c.ext.bdat, Some(7), "last one wins");
        let c = parse(&[
            "--tls",
            "--ehlo",
            "--auth",
            "login",
            "--auth-user",
            "u",
            "--auth-password",
            "",
            "--tls-verify",
            "--tls-ca",
            "ca.pem",
            "--tls-resume",
            "--pipelining",
            "--smtputf8",
            "--8bitmime",
            "--size",
            "h",
        ])
        .unwrap();
        assert_eq!(
            c.ext.auth,
            Some(AuthConfig {
                mech: Mechanism::Login,
                user: b"u".to_vec(),
                password: Vec::new(),
            })
        );
        assert_eq!(c.ext.tls_ca, Some(PathBuf::from("ca.pem")));
        assert!(c.ext.tls_resume && c.ext.pipelining && c.ext.smtputf8);
        assert!(c.ext.eightbitmime && c.ext.size);
        // Checked before the operand count, like Postfix's own options.
        assert_eq!(fatal(&["--pipelining"]), "--pipelining requires --ehlo");
    }

    #[test]
    fn usage_errors() {
        for argv in [&[][..], &["a", "b"], &["h", "-m", "2"], &["-x", "h"]] {
            assert!(matches!(parse(argv), Err(Error::Usage)), "{argv:?}");
        }
    }

    #[test]
    fn values_and_defaults() {
        let c = parse(&["h"]).unwrap();
        assert_eq!((c.sessions, c.messages, c.recipients), (1, 1, 1));
        assert_eq!(c.connect_attempts, 1);
        assert!(!c.numbering && !c.reuse && !c.lmtp && !c.old_mode);
        assert_eq!(c.endpoint, b"h");
        let c = parse(&[
            "-m5abc", "-cd", "-s", " 20", "-r", "1", "-F", "a", "-F", "b", "h",
        ])
        .unwrap();
        assert_eq!(c.messages, 5);
        assert_eq!(c.sessions, 20);
        assert!(c.counter && c.reuse && c.numbering);
        assert_eq!(c.file, Some(PathBuf::from("b")));
        let c = parse(&["-l", "10", "-l", "20", "-vv", "-f", "", "h"]).unwrap();
        assert_eq!(c.length, Some(20));
        assert_eq!(c.verbose, 2);
        assert_eq!(c.sender, Some(Vec::new()));
    }
}
