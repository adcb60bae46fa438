//! The one handle type of the platform's background tasks (delivery, the analytics pump,
//! the alarm evaluator): a task that watches a stop signal and is awaited when stopped.

use std::future::Future;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running background task.
pub struct TaskHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl TaskHandle {
    /// Spawns `run`, which is given the stop signal: it becomes `true` (and `changed()`
    /// returns) when [`TaskHandle::stop`] is called.
    pub fn spawn<F, Fut>(run: F) -> Self
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, signal) = watch::channel(false);
        Self {
            stop,
            task: tokio::spawn(run(signal)),
        }
    }

    /// Signals the task to stop and waits until it has (it finishes the work in hand).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
