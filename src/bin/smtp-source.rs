//! `smtp-source`: thin wrapper (in progress).
fn main() {
    eprintln!("smtp-source: fatal: not implemented yet");
    std::process::exit(1);
}
