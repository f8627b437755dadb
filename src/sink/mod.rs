//! smtp-sink: the SMTP/LMTP test server. OWNER: sink helper (in progress).
