//! projector binary (skeleton; filled in by its issue).
fn main() {}
