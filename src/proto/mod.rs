//! Sans-IO SMTP pieces: bytes in, events or bytes out. Nothing here imports
//! tokio or touches a socket, so every rule can be unit tested by feeding
//! bytes whole, in pieces and one at a time.

pub mod auth;
pub mod auth_client;
pub mod bdat;
pub mod bdat_send;
pub mod data;
pub mod date;
pub mod ehlo;
pub mod hostname;
pub mod line;
pub mod pipeline;
pub mod reply;
pub mod starttls;
