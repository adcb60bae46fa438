//! The last step of ingest: settle each item that got this far as accepted, duplicate
//! or conflicting.
//!
//! An item refused after its sender was authorised is still a duplicate when it is the
//! resend of a message accepted earlier (before the directory or catalogue changed), so a
//! sender's retry never turns into a rejection. The routed messages go to the group
//! committer ([`crate::committer`]) and wait until they are durable; the store answers
//! for each whether it was new, a retry of the same payload, or a reused reference.

use tokio::sync::oneshot;

use super::prepare::Key;
use super::route::Batch;
use super::{IngestReply, ItemResult, ItemStatus, unavailable};
use crate::broker::Broker;
use crate::committer::Job;
use crate::envelope::PAYLOAD;
use crate::error::{ApiError, ErrorCode};
use crate::store::{CommitOutcome, NewMessage};

impl Broker {
    /// Marks as duplicates the refused items that resend an accepted message.
    pub(super) async fn settle_resends(
        &self,
        authorised_rejects: Vec<(usize, Key)>,
        results: &mut [ItemResult],
    ) -> Result<(), IngestReply> {
        // A resend of an accepted message is a duplicate even if it would now be refused.
        for (index, key) in authorised_rejects {
            match self.messages().original(&key.sender, &key.reference).await {
                Ok(Some(original)) if original.content_hash == key.content_hash => {
                    let r = &mut results[index];
                    r.status = ItemStatus::Duplicate;
                    r.transaction_id = Some(original.transaction_id);
                    r.initial_correlation_id = original.correlation_id;
                    r.errors.clear();
                }
                Ok(_) => {}
                Err(e) => return Err(unavailable(&e)),
            }
        }
        Ok(())
    }

    /// Commits the batch and records each item's outcome in `results`.
    pub(super) async fn commit_batch(&self, batch: Batch, results: &mut [ItemResult]) -> Result<(), IngestReply> {
        if batch.messages.is_empty() {
            return Ok(());
        }
        let hashes: Vec<String> = batch.messages.iter().map(|m| m.content_hash.clone()).collect();
        let outcomes = self.commit(batch.messages).await?;
        for ((index, outcome), hash) in batch.indices.into_iter().zip(outcomes).zip(hashes) {
            let r = &mut results[index];
            match outcome {
                CommitOutcome::Accepted => r.status = ItemStatus::Accepted,
                CommitOutcome::Duplicate {
                    transaction_id,
                    correlation_id,
                    content_hash,
                } if content_hash == hash => {
                    r.status = ItemStatus::Duplicate;
                    r.transaction_id = Some(transaction_id);
                    r.initial_correlation_id = correlation_id;
                }
                CommitOutcome::Duplicate { transaction_id, .. } => {
                    r.transaction_id = None;
                    r.initial_correlation_id = None;
                    r.errors = vec![ApiError::new(
                        ErrorCode::DuplicateReferenceConflict,
                        format!("{PAYLOAD}/CommonBlock/S1/senderUniqueReference"),
                        format!("this reference was used for a different payload (transaction {transaction_id})"),
                    )];
                }
            }
        }
        Ok(())
    }

    /// Hands the messages to the group committer and waits until they are durable;
    /// refused with 503 when the committer's queue stays full.
    async fn commit(&self, messages: Vec<NewMessage>) -> Result<Vec<CommitOutcome>, IngestReply> {
        let (reply, answer) = oneshot::channel();
        let busy = || IngestReply::Failed {
            status: 503,
            error: ApiError::new(
                ErrorCode::Unavailable,
                "",
                "the platform is at capacity; nothing was accepted; retry",
            ),
        };
        self.commits()
            .send_timeout(Job { messages, reply }, self.config().commit_wait)
            .await
            .map_err(|_| busy())?;
        match answer.await {
            Ok(Ok(outcomes)) => Ok(outcomes),
            Ok(Err(e)) => Err(unavailable(&e)),
            Err(_) => Err(busy()),
        }
    }
}
