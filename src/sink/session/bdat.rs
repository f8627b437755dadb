//! BDAT in a sink session (RFC 3030), only with `--chunking`: without it
//! BDAT is an unknown command, as in Postfix.

use std::io::Write as _;

use tokio::io::{AsyncRead, AsyncWrite};

use super::{done, reply, Cmd, End, Flow, Mode, Session};
use crate::proto::bdat::{self, Chunk};

/// What ends a BDAT chunk once all its bytes are read.
#[derive(Debug, Default, Clone, Copy)]
enum ChunkEnd<'a> {
    /// Accepted: `250 ... bytes`, or for LAST the end of the message.
    #[default]
    Accept,
    /// No transaction with a recipient: `503`, the bytes are skipped.
    NeedRcpt,
    /// `-f`/`-r bdat`: this reply, the bytes are skipped. For LAST in
    /// LMTP the reply is repeated once per recipient, as for `.`.
    Refuse(&'a [u8]),
}

/// Room for `250 2.0.0 Ok: <u64> bytes` CR LF.
const CHUNK_REPLY_MAX: usize = 64;

/// Per-session BDAT state.
#[derive(Debug, Default)]
pub(super) struct BdatState<'a> {
    /// The current transaction has accepted a BDAT chunk (no DATA then,
    /// RFC 3030 §2; the Received lines are written).
    pub used: bool,
    chunk: Option<Chunk>,
    size: u64,
    last: bool,
    end: ChunkEnd<'a>,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Session<'a, S> {
    /// BDAT (RFC 3030): start reading the chunk. `refused` is the `-f`/`-r`
    /// reply, given after the chunk.
    pub(super) async fn bdat(&mut self, args: &[u8], refused: Option<&'a [u8]>) -> Flow {
        let Ok(parsed) = bdat::parse_args(args) else {
            // The chunk size is unknown: what follows is read as commands.
            return done(self.reply(Cmd::Bdat, bdat::SYNTAX).await);
        };
        let end = match refused {
            Some(text) => ChunkEnd::Refuse(text),
            None if !self.in_tx || self.rcpts == 0 => ChunkEnd::NeedRcpt,
            None => {
                if !self.chunks.used {
                    self.chunks.used = true;
                    self.start_content();
                }
                ChunkEnd::Accept
            }
        };
        self.chunks.chunk = Some(Chunk::new(parsed.size));
        self.chunks.size = parsed.size;
        self.chunks.last = parsed.last;
        self.chunks.end = end;
        self.mode = Mode::Chunk;
        Flow::Continue
    }

    /// Take the buffered bytes that belong to the chunk (exact count, no
    /// dot-unstuffing); at its end, reply.
    pub(super) async fn chunk_input(&mut self) -> Flow {
        let Some(chunk) = &mut self.chunks.chunk else {
            self.mode = Mode::Command;
            return Flow::Continue;
        };
        let rbuf = self.conn.read_buf();
        let n = chunk.take(rbuf.len());
        if let ChunkEnd::Accept = self.chunks.end {
            let content = &rbuf[..n];
            if let Some(dump) = &mut self.dump {
                bdat::dump_transform(content, |run| dump.write(run));
            }
            // Measurements see BDAT content as they see DATA.
            if let Some(m) = &self.shared.measure {
                m.bytes(content.len());
                if let Some(t) = self.track.as_mut().filter(|t| !t.is_done()) {
                    t.feed(content);
                }
            }
        }
        self.conn.consume(n);
        if !chunk.is_complete() {
            return Flow::Continue;
        }
        self.chunks.chunk = None;
        self.mode = Mode::Command;
        match std::mem::take(&mut self.chunks.end) {
            ChunkEnd::NeedRcpt => done(self.reply(Cmd::Bdat, reply::NEED_RCPT).await),
            ChunkEnd::Refuse(text) => {
                let times = if self.chunks.last && self.config().lmtp {
                    self.rcpts.max(1)
                } else {
                    1
                };
                for _ in 0..times {
                    if let Err(flow) = self.reply(Cmd::Bdat, text).await {
                        return flow;
                    }
                }
                Flow::Continue
            }
            ChunkEnd::Accept if !self.chunks.last => {
                let mut text = [0u8; CHUNK_REPLY_MAX];
                let mut w = &mut text[..];
                let _ = write!(w, "250 2.0.0 Ok: {} bytes\r\n", self.chunks.size);
                let len = CHUNK_REPLY_MAX - w.len();
                done(self.reply(Cmd::Bdat, &text[..len]).await)
            }
            // The message is complete, answered like the end of DATA.
            ChunkEnd::Accept => self.message_done(End::LastChunk).await,
        }
    }
}
