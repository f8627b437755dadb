//! `smtp-sink`: thin wrapper (in progress).
fn main() {
    eprintln!("smtp-sink: fatal: not implemented yet");
    std::process::exit(1);
}
