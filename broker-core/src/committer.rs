//! The group committer: makes accepted messages durable before the answer is sent.
//!
//! Ingest validates and routes requests concurrently; their messages then go to a
//! bounded queue that committer tasks drain, committing everything waiting (up to a batch
//! limit) in one transaction. Under load many requests share one commit, which is what
//! lets a one-message-per-request workload scale. When the queue stays full ingest
//! refuses the request with 503 rather than accept it and put it at risk.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::store::{CommitOutcome, NewMessage, Store, StoreError};

/// One request's messages and where their outcomes go (in the same order).
pub(crate) struct Job {
    pub(crate) messages: Vec<NewMessage>,
    pub(crate) reply: oneshot::Sender<Result<Vec<CommitOutcome>, Arc<StoreError>>>,
}

/// Starts `committers` committer tasks (one on SQLite, which serialises writes anyway),
/// each committing up to `batch` messages at once, and returns the queue of `queue` jobs
/// they drain.
pub(crate) fn start(store: &Arc<dyn Store>, queue: usize, committers: usize, batch: usize) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel(queue.max(1));
    let rx = Arc::new(Mutex::new(rx));
    let committers = match store.backend() {
        crate::store::Backend::Sqlite => 1,
        crate::store::Backend::Postgres => committers.max(1),
    };
    for _ in 0..committers {
        tokio::spawn(commit_loop(store.clone(), rx.clone(), batch.max(1)));
    }
    tx
}

/// Takes every job waiting (up to `max` messages) and commits them together.
async fn commit_loop(store: Arc<dyn Store>, rx: Arc<Mutex<mpsc::Receiver<Job>>>, max: usize) {
    loop {
        let mut jobs = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(job) = rx.recv().await else { return };
            let mut n = job.messages.len();
            jobs.push(job);
            while n < max {
                match rx.try_recv() {
                    Ok(job) => {
                        n += job.messages.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
        }
        let batch: Vec<NewMessage> = jobs.iter().flat_map(|j| j.messages.iter().cloned()).collect();
        let mut result = store.commit_messages(&batch).await;
        // Concurrent committers on PostgreSQL can still meet a deadlock or serialisation
        // failure; the transaction rolled back, so trying again is safe.
        for _ in 0..3 {
            match &result {
                Err(e) if is_retryable(e) => result = store.commit_messages(&batch).await,
                _ => break,
            }
        }
        match result {
            Ok(outcomes) => {
                let mut outcomes = outcomes.into_iter();
                for job in jobs {
                    let mine: Vec<CommitOutcome> = outcomes.by_ref().take(job.messages.len()).collect();
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for job in jobs {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

fn is_retryable(e: &StoreError) -> bool {
    match e {
        StoreError::Database(sqlx::Error::Database(d)) => matches!(d.code().as_deref(), Some("40P01" | "40001")),
        _ => false,
    }
}
