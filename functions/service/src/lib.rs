//! service crate (skeleton; filled in by its issue).
