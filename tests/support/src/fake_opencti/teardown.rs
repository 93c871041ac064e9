//! Deletes the queues a fake OpenCTI declared when its last clone goes (test end, panics
//! included).

use std::sync::Mutex;
use std::time::Duration;

use lapin::options::QueueDeleteOptions;

use super::{BROKER_URL, FakeOpencti};

/// The connector ids whose queues the fake declared; dropped with the last fake clone.
#[derive(Default)]
pub(super) struct Teardown {
    pub(super) connector_ids: Mutex<Vec<String>>,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        let ids =
            std::mem::take(&mut *self.connector_ids.lock().unwrap_or_else(|e| e.into_inner()));
        if ids.is_empty() {
            return;
        }
        // Drop cannot await, and may run inside the test's runtime while it shuts down (or
        // unwinds from a failed assertion): delete from a thread with a runtime of its own.
        let deleting = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let connect =
                    lapin::Connection::connect(BROKER_URL, lapin::ConnectionProperties::default());
                let Ok(Ok(connection)) =
                    tokio::time::timeout(Duration::from_secs(5), connect).await
                else {
                    return;
                };
                let Ok(channel) = connection.create_channel().await else {
                    return;
                };
                for id in &ids {
                    for q in [FakeOpencti::listen_queue(id), FakeOpencti::push_queue(id)] {
                        let _ = channel
                            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                            .await;
                    }
                }
                let _ = connection.close(200, "test teardown".into()).await;
            });
        });
        let _ = deleting.join();
    }
}
