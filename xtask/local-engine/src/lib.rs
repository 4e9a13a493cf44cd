//! local-engine crate (skeleton; filled in by its issue).
