//! The local AWS endpoint manager: a fresh moto answers AWS APIs and is gone when its handle drops,
//! and the background mode is reused and stopped through its pid file.

use std::net::TcpStream;

use local_engine::endpoint::Endpoint;

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
        Endpoint::stop_background(dir.path()).unwrap(),
        "the pid file named a live process"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on {port} after stop"
    );
    assert!(
        !Endpoint::stop_background(dir.path()).unwrap(),
        "stopping twice is harmless"
    );
}
