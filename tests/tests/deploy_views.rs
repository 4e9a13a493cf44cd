//! `deployer::views` (behind `cargo xtask replay --projection <view>` and every deploy) against the local AWS
//! endpoint: a view version is filled from the log beside the live one, reads stay on the live version
//! until the new one has caught up, then switch; a log with an event that cannot be folded keeps the old
//! version live; a rebuild never moves a row the projector wrote at a later aggregate version backwards.

use deployer::ui::{Confirmation, RecordingUi};
use deployer::views::{ViewTables, catch_up, rebuild};
use serde_json::{Value, json};
use service::testing::views_table;
use service::{EventStore, ViewItem};
use tests::store::{FreshStore, append, query};

fn ids(body: &Value) -> Vec<String> {
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["aggregateId"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_view_is_rebuilt_beside_the_live_version_and_switched_only_when_caught_up() {
    let fresh = FreshStore::start("views").await;
    let (client, config, store) = (&fresh.client, &fresh.config, &fresh.store);
    let tables = ViewTables {
        events_table: config.events_table.clone(),
        projections_table: config.projections_table.clone(),
        views_table: views_table(&config.projections_table),
    };
    let ui = RecordingUi::new(Confirmation::Yes);
    let view = domain::registry()
        .view("accounts_by_owner")
        .expect("the account example declares accounts_by_owner");
    let target = view.target();

    // A log written before the view existed (no projector ran): two accounts of ann, one of bob, a user.
    for (id, owner) in [("acc-1", "ann"), ("acc-2", "ann"), ("acc-3", "bob")] {
        append(
            store,
            id,
            vec![
                ("account_opened", json!({"owner": owner})),
                ("money_deposited", json!({"amount": 5})),
            ],
        )
        .await;
    }
    append(store, "u-1", vec![("user_created", json!({"name": "x"}))]).await;

    // An older version is live (as after a deploy of the previous code): reads come from it, and it is empty
    // for ann, as that version's rows were (this build no longer computes it).
    let old = target - 1;
    store
        .set_view_live_version(&view.name, old, None)
        .await
        .unwrap();
    let (status, body) = query(store, "/views/accounts_by_owner/ann").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], old);

    // The new version is filled from the log, then reads switch to it.
    let outcome = rebuild(client, &tables, &view, target, 4, &ui)
        .await
        .unwrap();
    assert!(outcome.switched, "{outcome}");
    assert_eq!(outcome.previous, Some(old));
    assert_eq!(outcome.aggregates_seen, 4);
    assert_eq!(outcome.aggregates_in_type, 3);
    assert_eq!(outcome.rows_written, 3);
    let (status, body) = query(store, "/views/accounts_by_owner/ann").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], target);
    assert_eq!(ids(&body), ["acc-1", "acc-2"]);
    assert_eq!(body["rows"][0]["row"]["balance"], 5, "{body}");
    let (_, body) = query(store, "/views/accounts_by_owner/bob").await;
    assert_eq!(ids(&body), ["acc-3"]);

    // Paging: one row a page, the cursor leads to the next and ends.
    let (_, first) = query(store, "/views/accounts_by_owner/ann?limit=1").await;
    assert_eq!(ids(&first), ["acc-1"]);
    let cursor = first["nextCursor"]
        .as_str()
        .expect("a next cursor")
        .to_string();
    let (_, second) = query(
        store,
        &format!("/views/accounts_by_owner/ann?limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(ids(&second), ["acc-2"]);
    assert!(second["nextCursor"].is_null(), "{second}");

    // A row the projector wrote at a later aggregate version is never moved back by a rebuild.
    let newer = ViewItem {
        view: view.name.clone(),
        view_version: target,
        aggregate_id: "acc-3".into(),
        aggregate_type: "account".into(),
        aggregate_version: 99,
        key: Some("bob".into()),
        row: json!({"balance": 1234}),
        updated_at: domain::now_timestamp(),
    };
    assert!(store.put_view_row(&newer).await.unwrap());
    let again = rebuild(client, &tables, &view, target, 4, &ui)
        .await
        .unwrap();
    assert!(again.switched);
    assert_eq!(again.rows_written, 2, "acc-3's newer row is kept: {again}");
    let (_, body) = query(store, "/views/accounts_by_owner/bob").await;
    assert_eq!(body["rows"][0]["row"]["balance"], 1234);

    // Already live at the declared version: catch_up has nothing to do for it.
    let done = catch_up(client, Some(&tables), &ui).await.unwrap();
    assert!(
        done.iter().all(|r| r.view != view.name),
        "accounts_by_owner is live at {target}: {done:?}"
    );
}

#[tokio::test]
async fn a_log_that_does_not_fold_keeps_the_old_version_live() {
    let fresh = FreshStore::start("poison").await;
    let (client, config, store) = (&fresh.client, &fresh.config, &fresh.store);
    let tables = ViewTables {
        events_table: config.events_table.clone(),
        projections_table: config.projections_table.clone(),
        views_table: views_table(&config.projections_table),
    };
    let ui = RecordingUi::new(Confirmation::Yes);
    let view = domain::registry().view("accounts_by_owner").unwrap();
    append(
        store,
        "acc-ok",
        vec![("account_opened", json!({"owner": "ann"}))],
    )
    .await;
    append(
        store,
        "acc-bad",
        vec![("account_opened", json!({"owner": "ann"}))],
    )
    .await;
    // A stored event no build of the domain can read (planted past the command side's checks).
    let mut poison = store.read_events("acc-bad", 0, None, true).await.unwrap().0[0].clone();
    poison.version = 2;
    poison.event_type = "account_exploded".into();
    store.write_events(&[poison]).await.unwrap();
    let old = view.target() - 1;
    store
        .set_view_live_version(&view.name, old, None)
        .await
        .unwrap();

    let outcome = rebuild(client, &tables, &view, view.target(), 2, &ui)
        .await
        .unwrap();
    assert!(!outcome.switched, "{outcome}");
    assert_eq!(outcome.failures.len(), 1, "{outcome}");
    assert_eq!(outcome.failures[0].aggregate_id, "acc-bad");
    assert!(outcome.to_string().contains("NOT switched"), "{outcome}");
    let (status, body) = query(store, "/views/accounts_by_owner/ann").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["version"], old,
        "reads stay on the old version: {body}"
    );
}
