//! smtp-source: the SMTP/LMTP load generator. OWNER: source helper (in progress).
