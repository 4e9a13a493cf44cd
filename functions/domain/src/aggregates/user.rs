//! The seed article's user: free-form events, kept exactly as the seed stores them.
//!
//! The state shape follows the seed's `replayEvents`: `{}` before anything happened, then
//! `{"user": {...}}` where `user_created` sets the user and `user_updated` merges fields into it. The seed
//! has no delete; we add `user_deleted`, which keeps the last known user and sets `"deleted": true`.
//! The `users_by_email` view lists users under their `email` field, when it is a string.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::aggregate::{Aggregate, DomainError, Event, View};
use crate::schema::FreeForm;

pub const USER_CREATED: &str = "user_created";
pub const USER_UPDATED: &str = "user_updated";
pub const USER_DELETED: &str = "user_deleted";

/// `user_created`: any JSON object (the seed's `eventData`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct UserCreated(pub FreeForm);

impl Event for UserCreated {
    const TYPE: &'static str = USER_CREATED;
}

/// `user_updated`: the fields to merge into the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct UserUpdated(pub FreeForm);

impl Event for UserUpdated {
    const TYPE: &'static str = USER_UPDATED;
}

/// `user_deleted`: its data is kept but not used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct UserDeleted(pub FreeForm);

impl Event for UserDeleted {
    const TYPE: &'static str = USER_DELETED;
}

crate::events! {
    /// The user's events.
    pub enum UserEvent {
        Created(UserCreated),
        Updated(UserUpdated),
        Deleted(UserDeleted),
    }
}

/// The user aggregate's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// `None` until `user_created`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl Aggregate for User {
    const NAME: &'static str = "user";
    const DESCRIPTION: &'static str =
        "The seed article's user: free-form fields, created, updated (merged) and deleted.";
    type Event = UserEvent;

    fn check(&self, event: &UserEvent) -> Result<(), DomainError> {
        if self.deleted {
            return Err(DomainError::rule(
                "the user was deleted; no further events are accepted",
            ));
        }
        match event {
            UserEvent::Created(_) if self.user.is_some() => Err(DomainError::rule(
                "user_created must be the first event of a user; this user already exists",
            )),
            UserEvent::Updated(_) | UserEvent::Deleted(_) if self.user.is_none() => Err(
                DomainError::rule("the user does not exist; append user_created first"),
            ),
            _ => Ok(()),
        }
    }

    fn apply(&mut self, event: UserEvent) {
        match event {
            UserEvent::Created(UserCreated(FreeForm(data))) => self.user = Some(data),
            UserEvent::Updated(UserUpdated(FreeForm(data))) => {
                // Like the seed's `{ ...state.user, ...event.event_data }`: later fields win.
                let user = self.user.get_or_insert_with(Map::new);
                for (k, v) in data {
                    user.insert(k, v);
                }
            }
            UserEvent::Deleted(_) => self.deleted = true,
        }
    }

    fn example() -> Vec<UserEvent> {
        let data = |v: Value| FreeForm(v.as_object().cloned().unwrap_or_default());
        vec![
            UserEvent::Created(UserCreated(data(
                serde_json::json!({"name": "Ada", "email": "ada@example.com"}),
            ))),
            UserEvent::Updated(UserUpdated(data(
                serde_json::json!({"email": "ada@lovelace.org"}),
            ))),
        ]
    }

    fn views() -> Vec<View<Self>> {
        vec![View {
            name: "users_by_email",
            version: 1,
            description: "Users by their `email` field (deleted users are left out).",
            key: |u| {
                u.user
                    .as_ref()
                    .filter(|_| !u.deleted)
                    .and_then(|u| u.get("email"))
                    .and_then(Value::as_str)
                    .filter(|e| !e.is_empty())
                    .map(str::to_string)
            },
            row: |u| Value::Object(u.user.clone().unwrap_or_default()),
        }]
    }
}

#[cfg(test)]
mod tests {
    //! given/when/then: given these events, when this event is appended, then this state or this error.
    use super::*;
    use crate::registry::{State, registry};
    use crate::testing::{self, when};
    use serde_json::json;

    fn given(events: &[(&str, Value)]) -> Box<dyn State> {
        testing::given("user", events)
    }

    #[test]
    fn restore_inverts_state() {
        let user = given(&[
            (USER_CREATED, json!({"name": "Ann"})),
            (USER_DELETED, json!({})),
        ]);
        let kind = registry().kind("user").unwrap();
        assert_eq!(kind.restore(&user.state()).unwrap().state(), user.state());
        assert_eq!(kind.restore(&json!({})).unwrap().state(), json!({}));
    }

    #[test]
    fn empty_history_has_empty_state() {
        assert_eq!(given(&[]).state(), json!({}));
    }

    #[test]
    fn created_first_sets_the_user() {
        assert_eq!(
            when(given(&[]), USER_CREATED, json!({"name": "Ann"})),
            Ok(json!({"user": {"name": "Ann"}}))
        );
    }

    #[test]
    fn created_twice_is_a_rule_violation() {
        let err = when(
            given(&[(USER_CREATED, json!({"name": "Ann"}))]),
            USER_CREATED,
            json!({}),
        )
        .unwrap_err();
        assert_eq!(err.code(), "rule_violation");
    }

    #[test]
    fn updated_merges_fields() {
        let user = given(&[(USER_CREATED, json!({"name": "Ann", "age": 30}))]);
        assert_eq!(
            when(user, USER_UPDATED, json!({"age": 31, "city": "Oslo"})),
            Ok(json!({"user": {"name": "Ann", "age": 31, "city": "Oslo"}}))
        );
    }

    #[test]
    fn updated_or_deleted_before_created_is_a_rule_violation() {
        for t in [USER_UPDATED, USER_DELETED] {
            assert_eq!(
                when(given(&[]), t, json!({"a": 1})).unwrap_err().code(),
                "rule_violation"
            );
        }
    }

    #[test]
    fn deleted_marks_the_state_and_refuses_everything_after() {
        let user = given(&[(USER_CREATED, json!({"name": "Ann"}))]);
        assert_eq!(
            when(user, USER_DELETED, json!({})),
            Ok(json!({"user": {"name": "Ann"}, "deleted": true}))
        );
        let deleted = given(&[
            (USER_CREATED, json!({"name": "Ann"})),
            (USER_DELETED, json!({})),
        ]);
        for t in [USER_CREATED, USER_UPDATED, USER_DELETED] {
            assert_eq!(
                when(deleted.clone(), t, json!({})).unwrap_err().code(),
                "rule_violation",
                "{t}"
            );
        }
    }

    #[test]
    fn free_form_data_must_still_be_storable() {
        let err = when(given(&[]), USER_CREATED, json!({"a": {"": 1}})).unwrap_err();
        assert_eq!(err.code(), "invalid_request");
        assert!(
            err.to_string().contains("`eventData.a` has an empty key"),
            "{err}"
        );
    }

    #[test]
    fn users_are_listed_by_email_until_deleted() {
        let user = given(&[(
            USER_CREATED,
            json!({"name": "Ann", "email": "ann@example.com"}),
        )]);
        let rows = user.view_rows();
        assert_eq!(rows[0].view, "users_by_email");
        assert_eq!(rows[0].key.as_deref(), Some("ann@example.com"));
        assert_eq!(
            rows[0].row,
            json!({"name": "Ann", "email": "ann@example.com"})
        );
        let deleted = given(&[
            (USER_CREATED, json!({"email": "ann@example.com"})),
            (USER_DELETED, json!({})),
        ]);
        assert_eq!(deleted.view_rows()[0].key, None);
    }
}
