//! A bank account: the example whose rules need state. An account is opened by an owner, takes deposits and
//! withdrawals in minor units (cents), may never be overdrawn, and closes only at a zero balance; nothing
//! happens to a closed account. The `accounts_by_owner` view lists each owner's accounts.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::aggregate::{Aggregate, DomainError, Event, View};

/// The largest amount and balance: 2^53 - 1 minor units, which every JSON client reads exactly.
pub const MAX_AMOUNT: u64 = (1 << 53) - 1;

/// `account_opened`: the first event of an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountOpened {
    /// Who owns the account (listed by the `accounts_by_owner` view).
    #[schemars(length(min = 1, max = 256))]
    pub owner: String,
}

impl Event for AccountOpened {
    const TYPE: &'static str = "account_opened";
}

/// `money_deposited`: an amount in minor units (e.g. cents), at least 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneyDeposited {
    #[schemars(range(min = 1, max = 9007199254740991u64))]
    pub amount: u64,
}

impl Event for MoneyDeposited {
    const TYPE: &'static str = "money_deposited";
}

/// `money_withdrawn`: an amount in minor units, at most the balance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneyWithdrawn {
    #[schemars(range(min = 1, max = 9007199254740991u64))]
    pub amount: u64,
}

impl Event for MoneyWithdrawn {
    const TYPE: &'static str = "money_withdrawn";
}

/// `account_closed`: only at a zero balance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountClosed {}

impl Event for AccountClosed {
    const TYPE: &'static str = "account_closed";
}

crate::events! {
    /// The account's events.
    pub enum AccountEvent {
        Opened(AccountOpened),
        Deposited(MoneyDeposited),
        Withdrawn(MoneyWithdrawn),
        Closed(AccountClosed),
    }
}

/// Where an account is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    New,
    Open,
    Closed,
}

/// The account aggregate's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default)]
    pub balance: u64,
}

impl Aggregate for Account {
    const NAME: &'static str = "account";
    const DESCRIPTION: &'static str =
        "A bank account: opened by an owner, never overdrawn, closed only at a zero balance.";
    type Event = AccountEvent;

    fn check(&self, event: &AccountEvent) -> Result<(), DomainError> {
        match (self.status, event) {
            (Status::Closed, _) => Err(DomainError::rule(
                "the account is closed; no further events are accepted",
            )),
            (Status::New, AccountEvent::Opened(_)) => Ok(()),
            (Status::New, _) => Err(DomainError::rule(
                "the account is not open; append account_opened first",
            )),
            (Status::Open, AccountEvent::Opened(_)) => {
                Err(DomainError::rule("the account is already open"))
            }
            (Status::Open, AccountEvent::Deposited(d)) if self.balance + d.amount > MAX_AMOUNT => {
                Err(DomainError::rule(format!(
                    "a deposit of {} would take the balance of {} over the largest balance, {MAX_AMOUNT}",
                    d.amount, self.balance
                )))
            }
            (Status::Open, AccountEvent::Withdrawn(w)) if w.amount > self.balance => {
                Err(DomainError::rule(format!(
                    "insufficient funds: the balance is {} and the withdrawal {}; an account may not be overdrawn",
                    self.balance, w.amount
                )))
            }
            (Status::Open, AccountEvent::Closed(_)) if self.balance != 0 => {
                Err(DomainError::rule(format!(
                    "the balance is {}; withdraw it before closing the account",
                    self.balance
                )))
            }
            (Status::Open, _) => Ok(()),
        }
    }

    fn apply(&mut self, event: AccountEvent) {
        match event {
            AccountEvent::Opened(o) => {
                self.status = Status::Open;
                self.owner = Some(o.owner);
            }
            // Stored events are facts: saturate rather than panic on a log written under looser rules.
            AccountEvent::Deposited(d) => self.balance = self.balance.saturating_add(d.amount),
            AccountEvent::Withdrawn(w) => self.balance = self.balance.saturating_sub(w.amount),
            AccountEvent::Closed(_) => self.status = Status::Closed,
        }
    }

    fn example() -> Vec<AccountEvent> {
        vec![
            AccountEvent::Opened(AccountOpened {
                owner: "ada".into(),
            }),
            AccountEvent::Deposited(MoneyDeposited { amount: 100 }),
        ]
    }

    fn views() -> Vec<View<Self>> {
        vec![View {
            name: "accounts_by_owner",
            version: 1,
            description: "Each owner's accounts, with balance and status.",
            key: |a| a.owner.clone(),
            row: |a| json!({ "balance": a.balance, "status": a.status }),
        }]
    }
}

#[cfg(test)]
mod tests {
    //! given/when/then through the registry, as the functions run it.
    use super::*;
    use crate::registry::{State, registry};
    use crate::testing::{self, when};
    use serde_json::Value;

    fn given(events: &[(&str, Value)]) -> Box<dyn State> {
        testing::given("account", events)
    }

    fn open_with(balance: u64) -> Box<dyn State> {
        let mut events = vec![("account_opened", json!({"owner": "ann"}))];
        if balance > 0 {
            events.push(("money_deposited", json!({"amount": balance})));
        }
        given(&events)
    }

    #[test]
    fn an_account_opens_takes_money_and_closes_at_zero() {
        let account = open_with(0);
        let state = when(account.clone(), "money_deposited", json!({"amount": 150})).unwrap();
        assert_eq!(
            state,
            json!({"status": "open", "owner": "ann", "balance": 150})
        );
        let account = given(&[
            ("account_opened", json!({"owner": "ann"})),
            ("money_deposited", json!({"amount": 150})),
            ("money_withdrawn", json!({"amount": 150})),
        ]);
        assert_eq!(
            when(account, "account_closed", json!({})).unwrap(),
            json!({"status": "closed", "owner": "ann", "balance": 0})
        );
    }

    #[test]
    fn an_account_may_not_be_overdrawn() {
        let err = when(open_with(100), "money_withdrawn", json!({"amount": 101})).unwrap_err();
        assert_eq!(err.code(), "rule_violation");
        assert!(err.to_string().contains("insufficient funds"), "{err}");
        assert!(when(open_with(100), "money_withdrawn", json!({"amount": 100})).is_ok());
    }

    #[test]
    fn an_account_closes_only_at_zero_and_then_accepts_nothing() {
        let err = when(open_with(1), "account_closed", json!({})).unwrap_err();
        assert!(
            err.to_string().contains("withdraw it before closing"),
            "{err}"
        );
        let closed = given(&[
            ("account_opened", json!({"owner": "ann"})),
            ("account_closed", json!({})),
        ]);
        for (t, d) in [
            ("money_deposited", json!({"amount": 1})),
            ("account_opened", json!({"owner": "bob"})),
            ("account_closed", json!({})),
        ] {
            assert_eq!(
                when(closed.clone(), t, d).unwrap_err().code(),
                "rule_violation",
                "{t}"
            );
        }
    }

    #[test]
    fn nothing_happens_before_opening_and_opening_happens_once() {
        for (t, d) in [
            ("money_deposited", json!({"amount": 1})),
            ("account_closed", json!({})),
        ] {
            assert_eq!(
                when(
                    open_with(0).clone(),
                    "account_opened",
                    json!({"owner": "x"})
                )
                .unwrap_err()
                .code(),
                "rule_violation"
            );
            let new = registry().kind("account").unwrap().initial();
            assert_eq!(when(new, t, d).unwrap_err().code(), "rule_violation", "{t}");
        }
    }

    #[test]
    fn bad_data_names_the_field() {
        let cases = [
            (
                json!({"amount": "12"}),
                "`eventData.amount` must be an integer",
            ),
            (
                json!({"amount": 0}),
                "`eventData.amount` must be at least 1",
            ),
            (json!({}), "`eventData.amount` is required"),
            (
                json!({"amount": 1, "currency": "EUR"}),
                "`eventData.currency` is not a field",
            ),
        ];
        for (data, expected) in cases {
            let err = when(open_with(5), "money_deposited", data.clone()).unwrap_err();
            assert_eq!(err.code(), "invalid_request", "{data}");
            assert!(err.to_string().starts_with(expected), "{data}: {err}");
        }
    }

    #[test]
    fn a_deposit_may_not_overflow_the_largest_balance() {
        let err = when(
            open_with(MAX_AMOUNT),
            "money_deposited",
            json!({"amount": 1}),
        )
        .unwrap_err();
        assert_eq!(err.code(), "rule_violation");
    }

    #[test]
    fn accounts_are_listed_by_owner() {
        let rows = open_with(7).view_rows();
        assert_eq!(rows[0].view, "accounts_by_owner");
        assert_eq!(rows[0].key.as_deref(), Some("ann"));
        assert_eq!(rows[0].row, json!({"balance": 7, "status": "open"}));
    }
}
