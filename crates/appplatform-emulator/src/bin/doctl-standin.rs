//! doctl stand-in (being written).
fn main() {}
