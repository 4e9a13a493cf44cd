//! Your aggregates: one module each, registered in [`register`]. This file and the modules beside it are
//! the only places that name an aggregate type; the store, the functions, the API document and the deploy
//! tool derive everything else from the registry (see docs/domain.md).

pub mod account;
pub mod user;

use crate::registry::Registry;

/// Registers every aggregate type of the application: one line per aggregate.
pub fn register(registry: Registry) -> Registry {
    registry.with::<user::User>().with::<account::Account>()
}
