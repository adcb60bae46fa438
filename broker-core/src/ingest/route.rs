//! The second step of ingest: route each prepared item and make it the message that is
//! stored.
//!
//! The recipients of every item routed by MPAN come from one appointment query for the
//! whole request. A routed item gets its transaction id, its correlation id, the
//! recipients the platform added (`A0`) and the `D0` transaction wrapper; its envelope is
//! then sealed for the archive when its channel's security category asks for it. An item
//! that cannot be routed is refused like one that failed preparation after authorisation.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::prepare::{Key, Prepared};
use super::{IngestReply, ItemResult, unavailable};
use crate::broker::Broker;
use crate::envelope;
use crate::model::{Appointment, RoutingMode};
use crate::registry::Registry;
use crate::routing::{self, Decision};
use crate::security::signature::SignatureRecord;
use crate::store::{Delivery, NewMessage};

/// The messages to commit and, for each, the index of its item in the request.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) messages: Vec<NewMessage>,
    pub(super) indices: Vec<usize>,
}

impl Broker {
    /// Routes and seals the `ready` items, filling in their transaction and correlation
    /// ids in `results`; an item that cannot be routed gets its errors there and joins
    /// `authorised_rejects`.
    pub(super) async fn route_and_seal(
        &self,
        ready: Vec<(usize, Prepared<'_>)>,
        registry: &Registry,
        received: chrono::DateTime<chrono::Utc>,
        signature: Option<&SignatureRecord>,
        results: &mut [ItemResult],
        authorised_rejects: &mut Vec<(usize, Key)>,
    ) -> Result<Batch, IngestReply> {
        // One appointment query for every MPAN the request routes by.
        let mpans: Vec<String> = ready
            .iter()
            .filter(|(_, p)| p.channel.channel.routes_by(RoutingMode::Mpan))
            .filter_map(|(_, p)| p.header.mpan.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut appointments: HashMap<String, Vec<Appointment>> = HashMap::new();
        if !mpans.is_empty() {
            match self.directory().appointments(&mpans).await {
                Ok(rows) => rows
                    .into_iter()
                    .for_each(|a| appointments.entry(a.mpan.clone()).or_default().push(a)),
                Err(e) => return Err(unavailable(&e)),
            }
        }

        let mut batch = Batch::default();
        for (index, p) in ready {
            let rows = p
                .header
                .mpan
                .as_ref()
                .and_then(|m| appointments.get(m))
                .map_or(&[][..], Vec::as_slice);
            match routing::route(p.channel, &p.header, registry, rows, p.date.clone()) {
                Ok(decision) => {
                    let category = p.channel.channel.security_category;
                    let mut message = p.into_message(decision, received, &self.config().environment);
                    message.receipt_signature = signature.cloned();
                    message.envelope =
                        self.seal_envelope(category, &message.transaction_id, std::mem::take(&mut message.envelope));
                    results[index].transaction_id = Some(message.transaction_id.clone());
                    results[index].initial_correlation_id = message.correlation_id.clone();
                    batch.messages.push(message);
                    batch.indices.push(index);
                }
                Err(errors) => {
                    results[index].errors = errors;
                    authorised_rejects.push((index, p.key));
                }
            }
        }
        Ok(batch)
    }
}

impl Prepared<'_> {
    fn into_message(
        mut self,
        decision: Decision,
        received: chrono::DateTime<chrono::Utc>,
        environment: &str,
    ) -> NewMessage {
        let def = &self.channel.channel;
        let transaction_id = uuid::Uuid::now_v7().to_string();
        let correlation_id = if def.workflow_start {
            Some(uuid::Uuid::new_v4().to_string())
        } else {
            self.header.sender_correlation_id.clone()
        };
        if let Some(cb) = self.payload.get_mut("CommonBlock").and_then(Value::as_object_mut) {
            let a0 = cb.entry("A0").or_insert_with(|| json!({}));
            if let Some(a0) = a0.as_object_mut() {
                a0.entry("primaryRecipients").or_insert_with(|| json!([]));
                a0.insert("secondaryRecipients".into(), json!(decision.reached_by(&["mpan"])));
                a0.insert(
                    "always".into(),
                    json!(decision.reached_by(&["always-role", "always-participant"])),
                );
            }
            cb.insert(
                "D0".into(),
                envelope::transaction_wrapper(
                    &transaction_id,
                    received,
                    def,
                    correlation_id.as_deref(),
                    false,
                    environment,
                ),
            );
        }
        let received_at = received.timestamp_micros();
        let deliveries = decision
            .recipients
            .iter()
            .map(|r| Delivery {
                queue_id: r.queue.clone(),
                recipient_dip_id: r.dip_id.clone(),
                recipient_role: r.role.clone(),
                hidden: r.hidden.clone(),
            })
            .collect();
        for a in &mut self.appointments {
            a.source_transaction_id = Some(transaction_id.clone());
        }
        NewMessage {
            sender_dip_id: self.header.sender_dip_id,
            sender_unique_reference: self.header.sender_unique_reference,
            content_hash: self.key.content_hash,
            interface_id: def.id.clone(),
            schema_version: self.header.schema_version,
            event_code: self.header.event_codes.first().cloned().unwrap_or_default(),
            sender_role: self.header.sender_role,
            dcp_dip_id: self.header.dcp_dip_id,
            mpan: self.header.mpan,
            correlation_id,
            received_at,
            retain_until: received_at.saturating_add(i64::from(def.retention_days) * 86_400_000_000),
            routing: serde_json::to_string(&decision).unwrap_or_default(),
            envelope: serde_json::to_string(&self.payload).unwrap_or_default(),
            deliveries,
            appointments: self.appointments,
            receipt_signature: None,
            transaction_id,
        }
    }
}
