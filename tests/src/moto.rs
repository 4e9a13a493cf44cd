//! One local AWS endpoint (moto) shared by the tests of one test binary: moto is slow to start, so tests hold
//! it through a reference count and it stops when the last running test drops its handle. Each test uses its
//! own tables, buckets or log groups on it.

use std::sync::{Arc, Weak};

use local_engine::endpoint::Endpoint;

static SHARED: tokio::sync::Mutex<Weak<SharedMoto>> = tokio::sync::Mutex::const_new(Weak::new());

/// A running moto and its state directory (removed with it).
pub struct SharedMoto {
    pub endpoint: Endpoint,
    _dir: tempfile::TempDir,
}

/// The shared moto, started when no running test holds it.
pub async fn shared() -> Arc<SharedMoto> {
    let mut shared = SHARED.lock().await;
    if let Some(m) = shared.upgrade() {
        return m;
    }
    let dir = tempfile::tempdir().unwrap();
    let endpoint = Endpoint::start_fresh(dir.path())
        .await
        .expect("the local AWS endpoint starts");
    let m = Arc::new(SharedMoto {
        endpoint,
        _dir: dir,
    });
    *shared = Arc::downgrade(&m);
    m
}
