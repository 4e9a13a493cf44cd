//! tests crate (skeleton; filled in by its issue).
