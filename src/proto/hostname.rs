//! Postfix's `valid_hostname` and `valid_mailhost_literal` (used by `-M`).
//!
//! OWNER: foundation helper. Signatures are the contract; bodies pending.

/// `Ok(())` or `Err(warning)` where warning is the text after
/// `PROG: warning: `, e.g. `valid_hostname: misplaced delimiter: a..b`.
pub fn check_hostname(name: &[u8]) -> Result<(), String> {
    let _ = name;
    todo!("hostname::check_hostname")
}

/// Check an address literal `[1.2.3.4]` / `[IPv6:::1]`; `Err(warning)` as
/// for [`check_hostname`], e.g. `valid_mailhost_literal: ']' expected at end: [1.2.3.4`.
pub fn check_address_literal(literal: &[u8]) -> Result<(), String> {
    let _ = literal;
    todo!("hostname::check_address_literal")
}
