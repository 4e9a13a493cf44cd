//! The local AWS endpoint manager: a fresh moto answers AWS APIs and is gone when its handle drops,
//! the background mode is reused and stopped through its pid file, and a moto it did not start is never reused.

use std::net::TcpStream;

use local_engine::endpoint::{Endpoint, EndpointError};
use local_engine::process::Stopped;

#[tokio::test]
async fn fresh_endpoint_serves_dynamodb_and_stops_with_its_handle() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Endpoint::start_fresh(dir.path())
        .await
        .expect("moto starts");
    let port = moto.port();
    let ddb = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    let tables = ddb
        .list_tables()
        .send()
        .await
        .expect("moto answers DynamoDB");
    assert!(
        tables.table_names().is_empty(),
        "a fresh endpoint has no tables"
    );
    moto.stop();
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on {port} after stop"
    );
}

#[tokio::test]
async fn background_endpoint_is_reused_then_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let port = local_engine::endpoint::free_port().unwrap();
    let (first, started) = Endpoint::ensure_running(dir.path(), port)
        .await
        .expect("moto starts in the background");
    assert!(started);
    drop(first); // a background endpoint outlives its handle
    let (again, started_again) = Endpoint::ensure_running(dir.path(), port).await.unwrap();
    assert!(!started_again, "the running endpoint is reused");
    assert_eq!(again.port(), port);
    assert!(
        Endpoint::stop_background(dir.path()).was_running(),
        "the pid file named the moto this tool started"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on {port} after stop"
    );
    assert_eq!(
        Endpoint::stop_background(dir.path()),
        Stopped::NotRunning,
        "stopping twice is harmless"
    );
}

#[tokio::test]
async fn another_moto_on_the_port_is_never_taken_for_the_background_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    // A moto this state directory did not start (another checkout's, or the user's own) holds the port.
    let foreign = Endpoint::start_fresh(&dir.path().join("other"))
        .await
        .expect("moto starts");
    let port = foreign.port();
    assert!(
        Endpoint::running(dir.path(), port).await.is_none(),
        "status and teardown do not adopt it"
    );
    let err = Endpoint::ensure_running(dir.path(), port)
        .await
        .expect_err("deploy refuses to reuse it");
    assert!(
        matches!(err, EndpointError::PortTaken { port: p, .. } if p == port)
            && err.to_string().contains("did not start"),
        "{err}"
    );
    assert!(!Endpoint::pid_file(dir.path()).exists());
    let ddb = aws_sdk_dynamodb::Client::new(&foreign.sdk_config().await);
    assert!(
        ddb.list_tables().send().await.is_ok(),
        "the other moto is left alone"
    );
}
