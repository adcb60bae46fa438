//! Store conformance: one behaviour suite, run against both implementations of
//! [`Store`] (embedded SQLite and PostgreSQL). `both_stores!` registers every test once
//! per store, as `sqlite::<name>` and `postgres::<name>`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use broker_core::catalogue::CatalogueData;
use broker_core::model::{Appointment, Channel, Endpoint, Participant, ParticipantKind, Role, SchemaVersion};
use broker_core::seed::seed_catalogue;
use broker_core::store::{
    Ahead, ApiKeyRecord, Attempt, AttemptFailure, AuditEntry, AuditFilter, Backend, CallDetail, CommitOutcome,
    DeadLetterFilter, Delivery, EntryState, MessageRecord, MessageStore, NewMessage, Outbound, QueueEntry, QueueHealth,
    QueueStat, QueueStore, ReplayAdmission, ReplayCopy, ReplayQuota, ReplayRecord, ReplayUsage, SessionRecord,
    Settlement, StoreError, UserRecord,
};
use dip_testkit::*;
use serde_json::json;

both_stores!(
    migrating_again_is_harmless,
    an_empty_store_finds_nothing,
    seeded_catalogue_reads_back_as_the_seed_and_seeding_again_adds_nothing,
    put_role_and_put_channel_replace_edited_definitions,
    participants_round_trip_with_kind_activity_roles_and_nominations,
    replacing_a_participant_replaces_its_roles_and_nominations,
    a_second_participant_with_a_taken_mpid_is_rejected,
    endpoints_are_stored_replaced_and_listed,
    api_keys_round_trip_and_record_revocation,
    put_appointments_upserts_by_key_and_counts_rows_written,
    appointments_come_back_ordered_and_only_for_the_mpans_asked,
    appointments_for_more_mpans_than_one_chunk,
    on_one_date_an_appointment_beats_a_de_appointment_in_either_order,
    a_batch_carrying_appointment_and_de_appointment_on_one_date_keeps_the_appointment,
    an_accepted_message_writes_record_archive_deliveries_and_appointments,
    a_stored_reference_is_a_duplicate_of_the_original_and_writes_nothing,
    a_key_repeated_within_a_batch_is_a_duplicate_of_its_first_occurrence,
    a_batch_larger_than_one_chunk_commits_with_fan_out,
    queue_positions_start_at_one_and_follow_transaction_id_order_within_a_batch,
    queue_positions_continue_without_gaps_across_batches,
    positions_of_different_queues_are_independent,
    pending_entries_pages_in_fifo_order,
    queue_stats_count_pending_entries_and_the_oldest_enqueue_time,
    concurrent_batches_get_gapless_fifo_positions_per_queue,
    concurrent_commits_of_the_same_keys_accept_each_key_exactly_once,
    a_batch_failing_part_way_writes_nothing,
    a_queue_lease_is_exclusive_until_it_expires_and_only_its_holder_renews_it,
    claimable_queues_have_pending_entries_and_no_live_lease,
    next_outbound_brings_envelope_and_origin_in_fifo_order,
    settling_changes_pending_entries_once_and_commits_reports_with_it,
    failed_attempts_show_in_entry_and_queue_health,
    receipt_signatures_and_webhook_calls_are_kept_as_evidence,
    an_entry_knows_what_it_joined_behind,
    a_node_identity_is_held_by_one_holder_at_a_time,
    a_gone_node_s_leases_are_freed_and_a_live_one_s_are_not,
    dead_letters_filter_and_redrive_to_the_tail,
    replay_candidates_and_recorded_replays,
    received_by_finds_only_messages_sent_to_the_recipient_on_the_channel,
    replay_copies_join_their_queue_a_batch_at_a_time_behind_live_messages,
    replay_quota_counts_the_window_and_refuses_what_does_not_fit,
    concurrent_replays_cannot_both_pass_the_quota,
    commits_announce_their_queues,
    users_round_trip_with_unique_usernames_and_sign_in_counters,
    sessions_expire_and_end_per_user,
    the_audit_log_appends_filters_pages_and_refuses_changes,
);

// ---------------------------------------------------------------------------------------
// Builders and helpers
// ---------------------------------------------------------------------------------------

/// 2026-11-18, in microseconds since the epoch.
const BASE_TIME: i64 = 1_795_000_000_000_000;
const YEAR_MICROS: i64 = 365 * 24 * 3600 * 1_000_000;

const SUPPLIER: &str = "1000000001";
const OTHER_SUPPLIER: &str = "1000000002";
const DCP: &str = "1000000009";

/// Queues (endpoint ids); the recipient is the part before the slash.
const Q_DNO: &str = "2000000001/inbox";
const Q_MOP: &str = "2000000002/inbox";
const Q_DC: &str = "2000000003/feed";

/// Transaction id number `n`; ids sort in numeric order.
fn tx(n: u64) -> String {
    format!("TX{n:012}")
}

/// A replay quota nothing in these tests reaches.
const NO_LIMIT: ReplayQuota = ReplayQuota {
    limit: i64::MAX,
    window: YEAR_MICROS,
};

fn delivery(queue: &str) -> Delivery {
    Delivery {
        queue_id: queue.into(),
        recipient_dip_id: queue.split('/').next().expect("queue id").into(),
        recipient_role: "DNO".into(),
        hidden: vec![],
    }
}

/// Message number `n` from `sender`: transaction id `tx(n)`, reference `ref-n`, received
/// `n` µs after [`BASE_TIME`], one delivery to each of `queues`.
fn msg(n: u64, sender: &str, queues: &[&str]) -> NewMessage {
    let transaction_id = tx(n);
    let reference = format!("ref-{n:06}");
    let received_at = BASE_TIME + n as i64;
    NewMessage {
        content_hash: format!("hash-{sender}-{reference}"),
        interface_id: "IF-021".into(),
        schema_version: "001".into(),
        event_code: "[Test]".into(),
        sender_role: "SUP".into(),
        dcp_dip_id: None,
        mpan: None,
        correlation_id: Some(format!("corr-{n}")),
        received_at,
        retain_until: received_at + YEAR_MICROS,
        routing: json!({ "recipients": queues }).to_string(),
        envelope: json!({ "transactionID": transaction_id, "reference": reference }).to_string(),
        deliveries: queues.iter().map(|q| delivery(q)).collect(),
        appointments: vec![],
        receipt_signature: None,
        transaction_id,
        sender_dip_id: sender.into(),
        sender_unique_reference: reference,
    }
}

fn appt(mpan: &str, role: &str, from: &str, dip_id: Option<&str>, source: Option<&str>) -> Appointment {
    Appointment {
        mpan: mpan.into(),
        role: role.into(),
        effective_from: from.into(),
        dip_id: dip_id.map(Into::into),
        source_transaction_id: source.map(Into::into),
    }
}

/// MPAN core number `i` (13 digits).
fn mpan(i: u64) -> String {
    format!("{:013}", 1_900_000_000_000 + i)
}

fn participant(dip_id: &str, mpid: &str, kind: ParticipantKind, roles: &[&str], dcps: &[&str]) -> Participant {
    Participant {
        dip_id: dip_id.into(),
        mpid: mpid.into(),
        name: format!("{mpid} Energy"),
        kind,
        roles: roles.iter().map(|r| r.to_string()).collect(),
        nominated_dcps: dcps.iter().map(|d| d.to_string()).collect(),
        active: true,
        signatures_required: false,
    }
}

/// What `message()` must return for a committed message.
fn record_of(m: &NewMessage) -> MessageRecord {
    MessageRecord {
        transaction_id: m.transaction_id.clone(),
        sender_dip_id: m.sender_dip_id.clone(),
        sender_unique_reference: m.sender_unique_reference.clone(),
        interface_id: m.interface_id.clone(),
        schema_version: m.schema_version.clone(),
        event_code: m.event_code.clone(),
        sender_role: m.sender_role.clone(),
        dcp_dip_id: m.dcp_dip_id.clone(),
        mpan: m.mpan.clone(),
        correlation_id: m.correlation_id.clone(),
        received_at: m.received_at,
        routing: m.routing.clone(),
    }
}

/// The outcome of committing a message whose key `original` already holds.
fn duplicate_of(original: &NewMessage) -> CommitOutcome {
    CommitOutcome::Duplicate {
        transaction_id: original.transaction_id.clone(),
        correlation_id: original.correlation_id.clone(),
        content_hash: original.content_hash.clone(),
    }
}

fn all_accepted(outcomes: &[CommitOutcome]) -> bool {
    outcomes.iter().all(|o| *o == CommitOutcome::Accepted)
}

/// Every pending entry of a queue, in FIFO order.
async fn queue(store: &dyn QueueStore, queue_id: &str) -> Vec<QueueEntry> {
    store
        .pending_entries(queue_id, 0, 1_000_000)
        .await
        .expect("pending entries")
}

/// Replay copies for `queue_id`: in the queue, or held to join it.
async fn copies(store: &dyn broker_core::store::Store, queue_id: &str) -> usize {
    let held = store.held_per_queue().await.expect("held copies");
    let held = held.iter().find(|(q, _)| q == queue_id).map_or(0, |(_, n)| *n);
    queue(store, queue_id).await.len() + usize::try_from(held).expect("count")
}

fn seqs(entries: &[QueueEntry]) -> Vec<i64> {
    entries.iter().map(|e| e.seq).collect()
}

fn txns(entries: &[QueueEntry]) -> Vec<String> {
    entries.iter().map(|e| e.transaction_id.clone()).collect()
}

fn one_to(n: usize) -> Vec<i64> {
    (1..=n as i64).collect()
}

async fn commit(store: &dyn MessageStore, batch: &[NewMessage]) -> Vec<CommitOutcome> {
    store.commit_messages(batch).await.expect("commit")
}

async fn stat(store: &dyn QueueStore, queue_id: &str) -> QueueStat {
    store
        .queue_stats(&[queue_id.to_owned()])
        .await
        .expect("queue stats")
        .remove(0)
}

// ---------------------------------------------------------------------------------------
// Migrations and empty store
// ---------------------------------------------------------------------------------------

async fn migrating_again_is_harmless(db: Db) {
    let t = TestStore::new(db).await; // migrated once already
    let s = t.store.as_ref();
    let expected = match db {
        Db::Sqlite => Backend::Sqlite,
        Db::Postgres => Backend::Postgres,
    };
    assert_eq!(s.backend(), expected);
    let role = Role {
        code: "SUP".into(),
        name: "Supplier".into(),
        description: "Sells energy".into(),
    };
    s.put_role(&role).await.unwrap();
    assert_eq!(
        commit(s, &[msg(1, SUPPLIER, &[Q_DNO])]).await,
        [CommitOutcome::Accepted]
    );

    s.migrate().await.expect("second migration run");
    s.migrate().await.expect("third migration run");

    assert_eq!(
        s.catalogue().await.unwrap().roles,
        [role],
        "data survives re-running migrations"
    );
    assert_eq!(seqs(&queue(s, Q_DNO).await), [1]);
    assert_eq!(
        commit(s, &[msg(2, SUPPLIER, &[Q_DNO])]).await,
        [CommitOutcome::Accepted]
    );
    assert_eq!(seqs(&queue(s, Q_DNO).await), [1, 2]);
}

async fn an_empty_store_finds_nothing(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let cat = s.catalogue().await.unwrap();
    assert!(cat.roles.is_empty() && cat.channels.is_empty());
    assert!(s.participants().await.unwrap().is_empty());
    assert!(s.endpoints().await.unwrap().is_empty());
    assert_eq!(s.api_key("nope").await.unwrap(), None);
    assert!(s.appointments(&[mpan(1)]).await.unwrap().is_empty());
    assert!(s.appointments(&[]).await.unwrap().is_empty());
    assert_eq!(s.put_appointments(&[]).await.unwrap(), 0);
    assert_eq!(s.message(&tx(1)).await.unwrap(), None);
    assert_eq!(s.archived_envelope(&tx(1)).await.unwrap(), None);
    assert!(s.message_deliveries(&tx(1)).await.unwrap().is_empty());
    assert!(queue(s, Q_DNO).await.is_empty());
    assert!(s.commit_messages(&[]).await.unwrap().is_empty());
    assert!(s.queue_stats(&[]).await.unwrap().is_empty());
    assert_eq!(
        stat(s, Q_DNO).await,
        QueueStat {
            queue_id: Q_DNO.into(),
            pending: 0,
            oldest_enqueued_at: None
        }
    );
}

// ---------------------------------------------------------------------------------------
// Catalogue
// ---------------------------------------------------------------------------------------

fn sorted_roles(mut roles: Vec<Role>) -> Vec<Role> {
    roles.sort_by(|a, b| a.code.cmp(&b.code));
    roles
}

fn sorted_channels(mut channels: Vec<Channel>) -> Vec<Channel> {
    channels.sort_by(|a, b| a.id.cmp(&b.id));
    channels
}

async fn seeded_catalogue_reads_back_as_the_seed_and_seeding_again_adds_nothing(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let seed = CatalogueData::seed().expect("seed catalogue");
    assert!(!seed.roles.is_empty() && !seed.channels.is_empty());
    assert!(
        seed.channels
            .iter()
            .all(|c| c.schema.iter().all(|v| !v.schema.is_null())),
        "the seed inlines every schema"
    );

    assert_eq!(seed_catalogue(s, &seed).await.unwrap(), seed.channels.len());
    let stored = s.catalogue().await.unwrap();
    assert_eq!(sorted_roles(stored.roles), sorted_roles(seed.roles.clone()));
    assert_eq!(sorted_channels(stored.channels), sorted_channels(seed.channels.clone()));

    assert_eq!(seed_catalogue(s, &seed).await.unwrap(), 0, "seeding again adds nothing");
    let again = s.catalogue().await.unwrap();
    assert_eq!(sorted_roles(again.roles), sorted_roles(seed.roles.clone()));
    assert_eq!(sorted_channels(again.channels), sorted_channels(seed.channels));
}

async fn put_role_and_put_channel_replace_edited_definitions(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let seed = CatalogueData::seed().expect("seed catalogue");
    seed_catalogue(s, &seed).await.unwrap();

    let mut role = seed.roles[0].clone();
    role.name = format!("{} (renamed)", role.name);
    role.description = "edited description".into();
    s.put_role(&role).await.unwrap();

    let mut channel = seed.channels[0].clone();
    channel.name = format!("{} (edited)", channel.name);
    channel.description = "edited by an administrator".into();
    channel.retention_days += 30;
    channel.event_codes.push("[Edited]".into());
    channel.schema[0].schema = json!({ "type": "object", "required": ["edited"] });
    channel.schema.push(SchemaVersion {
        version: "999".into(),
        file: None,
        schema: json!({ "type": "object", "properties": { "x": { "type": "number", "maximum": 1.5 } } }),
    });
    s.put_channel(&channel).await.unwrap();

    let mut roles = seed.roles.clone();
    roles[0] = role;
    let mut channels = seed.channels.clone();
    channels[0] = channel;
    let stored = s.catalogue().await.unwrap();
    assert_eq!(sorted_roles(stored.roles), sorted_roles(roles.clone()));
    assert_eq!(sorted_channels(stored.channels), sorted_channels(channels.clone()));

    // Seeding leaves edited definitions alone.
    assert_eq!(seed_catalogue(s, &seed).await.unwrap(), 0);
    let stored = s.catalogue().await.unwrap();
    assert_eq!(sorted_roles(stored.roles), sorted_roles(roles));
    assert_eq!(sorted_channels(stored.channels), sorted_channels(channels));
}

// ---------------------------------------------------------------------------------------
// Directory: participants, endpoints, API keys
// ---------------------------------------------------------------------------------------

/// Participants with roles and nominations in a canonical order, for comparison.
fn canonical(mut ps: Vec<Participant>) -> Vec<Participant> {
    for p in &mut ps {
        p.roles.sort();
        p.nominated_dcps.sort();
    }
    ps.sort_by(|a, b| a.dip_id.cmp(&b.dip_id));
    ps
}

async fn participants_round_trip_with_kind_activity_roles_and_nominations(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let dcp = participant(DCP, "DCPA", ParticipantKind::Dcp, &[], &[]);
    let supplier = participant(
        SUPPLIER,
        "SUPA",
        ParticipantKind::Participant,
        &["SUP", "MOP", "DNO"],
        &[DCP],
    );
    let mut dormant = participant(OTHER_SUPPLIER, "SUPB", ParticipantKind::Participant, &["SUP"], &[]);
    dormant.active = false;
    for p in [&dcp, &supplier, &dormant] {
        s.put_participant(p).await.unwrap();
    }
    assert_eq!(
        canonical(s.participants().await.unwrap()),
        canonical(vec![dcp, supplier, dormant])
    );
}

async fn replacing_a_participant_replaces_its_roles_and_nominations(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let dcp = participant(DCP, "DCPA", ParticipantKind::Dcp, &[], &[]);
    let dcp2 = participant("1000000008", "DCPB", ParticipantKind::Dcp, &[], &[]);
    let other = participant(OTHER_SUPPLIER, "SUPB", ParticipantKind::Participant, &["SUP"], &[DCP]);
    let original = participant(SUPPLIER, "SUPA", ParticipantKind::Participant, &["SUP", "MOP"], &[DCP]);
    for p in [&dcp, &dcp2, &other, &original] {
        s.put_participant(p).await.unwrap();
    }

    let mut replaced = participant(SUPPLIER, "SUPZ", ParticipantKind::Dcp, &["DNO"], &["1000000008"]);
    replaced.name = "Renamed Ltd".into();
    replaced.active = false;
    s.put_participant(&replaced).await.unwrap();
    assert_eq!(
        canonical(s.participants().await.unwrap()),
        canonical(vec![dcp.clone(), dcp2.clone(), other.clone(), replaced.clone()]),
        "old roles and nominations are gone; other participants keep theirs"
    );

    // Replacing with no roles and no nominations clears them; reactivating works.
    let mut bare = participant(SUPPLIER, "SUPZ", ParticipantKind::Participant, &[], &[]);
    bare.active = true;
    s.put_participant(&bare).await.unwrap();
    // Replacing the DCP keeps the nominations that point at it.
    let mut dcp_renamed = dcp.clone();
    dcp_renamed.name = "Renamed DCP".into();
    s.put_participant(&dcp_renamed).await.unwrap();
    assert_eq!(
        canonical(s.participants().await.unwrap()),
        canonical(vec![dcp_renamed, dcp2, other, bare])
    );
}

async fn a_second_participant_with_a_taken_mpid_is_rejected(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let first = participant(SUPPLIER, "SUPA", ParticipantKind::Participant, &["SUP"], &[]);
    s.put_participant(&first).await.unwrap();

    let clash = participant(OTHER_SUPPLIER, "SUPA", ParticipantKind::Participant, &["MOP"], &[]);
    let err = s.put_participant(&clash).await.expect_err("MPID is unique");
    assert!(matches!(err, StoreError::Database(_)), "unexpected error {err:?}");
    assert_eq!(
        s.participants().await.unwrap(),
        std::slice::from_ref(&first),
        "nothing of the rejected participant is stored"
    );

    // The owner of an MPID may keep it, and may change it to a free one.
    s.put_participant(&first).await.unwrap();
    let mut renamed = first.clone();
    renamed.mpid = "SUPC".into();
    s.put_participant(&renamed).await.unwrap();
    s.put_participant(&clash).await.expect("SUPA is free again");
    assert_eq!(
        canonical(s.participants().await.unwrap()),
        canonical(vec![renamed, clash])
    );
}

fn sorted_endpoints(mut es: Vec<Endpoint>) -> Vec<Endpoint> {
    es.sort_by(|a, b| a.id.cmp(&b.id));
    es
}

async fn endpoints_are_stored_replaced_and_listed(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    for (dip, mpid) in [(SUPPLIER, "SUPA"), (OTHER_SUPPLIER, "SUPB")] {
        s.put_participant(&participant(dip, mpid, ParticipantKind::Participant, &["SUP"], &[]))
            .await
            .unwrap();
    }
    let endpoint = |dip: &str, name: &str, url: Option<&str>, channels: &[&str]| Endpoint {
        id: Endpoint::make_id(dip, name),
        dip_id: dip.into(),
        name: name.into(),
        url: url.map(Into::into),
        channels: channels.iter().map(|c| c.to_string()).collect(),
    };
    let pull = endpoint(SUPPLIER, "inbox", None, &[]);
    let hook = endpoint(
        SUPPLIER,
        "registration",
        Some("https://supa.example/hook"),
        &["IF-036", "IF-037"],
    );
    let other = endpoint(OTHER_SUPPLIER, "inbox", None, &["IF-021"]);
    for e in [&pull, &hook, &other] {
        s.put_endpoint(e).await.unwrap();
    }
    assert_eq!(
        sorted_endpoints(s.endpoints().await.unwrap()),
        sorted_endpoints(vec![pull.clone(), hook.clone(), other.clone()])
    );

    let hook2 = endpoint(SUPPLIER, "registration", Some("https://supa.example/v2"), &["IF-036"]);
    let pull2 = endpoint(
        SUPPLIER,
        "inbox",
        Some("https://supa.example/now-push"),
        &["IF-021", "IF-022"],
    );
    s.put_endpoint(&hook2).await.unwrap();
    s.put_endpoint(&pull2).await.unwrap();
    assert_eq!(
        sorted_endpoints(s.endpoints().await.unwrap()),
        sorted_endpoints(vec![pull2, hook2, other])
    );
}

async fn api_keys_round_trip_and_record_revocation(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    s.put_participant(&participant(
        SUPPLIER,
        "SUPA",
        ParticipantKind::Participant,
        &["SUP"],
        &[],
    ))
    .await
    .unwrap();
    let key = ApiKeyRecord {
        key_id: "k_supa".into(),
        secret_hash: "ab".repeat(32),
        dip_id: Some(SUPPLIER.into()),
        name: "SUPA key".into(),
        created_at: BASE_TIME,
        revoked_at: None,
    };
    let operator = ApiKeyRecord {
        key_id: "k_ops".into(),
        secret_hash: "cd".repeat(32),
        dip_id: None,
        name: "operator".into(),
        created_at: BASE_TIME + 1,
        revoked_at: None,
    };
    s.put_api_key(&key).await.unwrap();
    s.put_api_key(&operator).await.unwrap();
    assert_eq!(s.api_key("k_supa").await.unwrap(), Some(key.clone()));
    assert_eq!(s.api_key("k_ops").await.unwrap(), Some(operator.clone()));
    assert_eq!(s.api_key("k_unknown").await.unwrap(), None);

    let revoked = ApiKeyRecord {
        revoked_at: Some(BASE_TIME + 5_000_000),
        ..key.clone()
    };
    s.put_api_key(&revoked).await.unwrap();
    assert_eq!(s.api_key("k_supa").await.unwrap(), Some(revoked));
    assert_eq!(
        s.api_key("k_ops").await.unwrap(),
        Some(operator),
        "other keys are untouched"
    );
}

// ---------------------------------------------------------------------------------------
// Appointments
// ---------------------------------------------------------------------------------------

async fn put_appointments_upserts_by_key_and_counts_rows_written(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let (m1, m2) = (mpan(1), mpan(2));
    let rows = [
        appt(&m1, "SUP", "2026-01-01", Some(SUPPLIER), None),
        appt(&m1, "MOP", "2026-01-01", Some("2000000002"), None),
        appt(&m2, "SUP", "2026-01-01", Some(OTHER_SUPPLIER), Some("TXa")),
    ];
    assert_eq!(s.put_appointments(&rows).await.unwrap(), 3);

    // One replaced (same MPAN, role and date), one new (another date of the same MPAN and role).
    let replacement = appt(&m1, "SUP", "2026-01-01", Some(OTHER_SUPPLIER), Some("TXb"));
    let later = appt(&m1, "SUP", "2026-06-01", Some(SUPPLIER), Some("TXc"));
    assert_eq!(
        s.put_appointments(&[replacement.clone(), later.clone()]).await.unwrap(),
        2
    );
    assert_eq!(
        s.appointments(&[m1.clone(), m2.clone()]).await.unwrap(),
        [rows[1].clone(), replacement, later.clone(), rows[2].clone()]
    );

    // One key given twice in a call is one row: the last one given.
    let a = appt(&m2, "MOP", "2026-02-01", Some("2000000002"), Some("TXd"));
    let b = appt(&m2, "MOP", "2026-02-01", Some("2000000003"), Some("TXe"));
    assert_eq!(s.put_appointments(&[a, b.clone()]).await.unwrap(), 1);
    assert_eq!(
        s.appointments(std::slice::from_ref(&m2)).await.unwrap(),
        [b, rows[2].clone()]
    );
}

async fn appointments_come_back_ordered_and_only_for_the_mpans_asked(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let (m1, m2, m3) = (mpan(1), mpan(2), mpan(3));
    let rows = vec![
        appt(&m2, "SUP", "2026-01-01", Some(SUPPLIER), None),
        appt(&m1, "SUP", "2026-03-01", Some(SUPPLIER), None),
        appt(&m3, "SUP", "2026-01-01", Some(SUPPLIER), None),
        appt(&m1, "SUP", "2025-12-31", None, None),
        appt(&m1, "MOP", "2026-01-01", Some("2000000002"), None),
        appt(&m1, "SUP", "2026-01-01", Some(OTHER_SUPPLIER), None),
    ];
    assert_eq!(s.put_appointments(&rows).await.unwrap(), 6);
    let got = s.appointments(&[m2.clone(), m1.clone(), mpan(99)]).await.unwrap();
    assert_eq!(
        got,
        [
            rows[4].clone(), // m1 MOP 2026-01-01
            rows[3].clone(), // m1 SUP 2025-12-31
            rows[5].clone(), // m1 SUP 2026-01-01
            rows[1].clone(), // m1 SUP 2026-03-01
            rows[0].clone(), // m2 SUP 2026-01-01
        ]
    );
    assert_eq!(
        s.appointments(std::slice::from_ref(&m3)).await.unwrap(),
        [rows[2].clone()]
    );
}

async fn appointments_for_more_mpans_than_one_chunk(db: Db) {
    const N: u64 = 1_200;
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let mut rows = Vec::new();
    for i in 0..N {
        rows.push(appt(&mpan(i), "SUP", "2026-01-01", Some(SUPPLIER), None));
        rows.push(appt(&mpan(i), "DNO", "2020-01-01", Some("2000000001"), None));
    }
    assert_eq!(s.put_appointments(&rows).await.unwrap(), 2 * N);

    // Asked in reverse, with MPANs that have no rows and one asked twice (in different chunks).
    let mut asked: Vec<String> = (0..N).rev().map(mpan).collect();
    asked.insert(0, mpan(N + 7));
    asked.push(mpan(N + 8));
    asked.push(mpan(N - 50)); // also at index 50, in the first chunk; this copy is in the third
    let mut expected = rows.clone();
    expected.sort_by(|a, b| (&a.mpan, &a.role, &a.effective_from).cmp(&(&b.mpan, &b.role, &b.effective_from)));
    let got = s.appointments(&asked).await.unwrap();
    assert_eq!(got.len(), expected.len(), "each row once");
    assert!(
        got == expected,
        "rows come back ordered by MPAN, role and date across chunks"
    );

    // Only the MPANs asked: every other one.
    let half: Vec<String> = (0..N).filter(|i| i % 2 == 1).map(mpan).collect();
    let got = s.appointments(&half).await.unwrap();
    let expected: Vec<Appointment> = expected.into_iter().filter(|a| half.contains(&a.mpan)).collect();
    assert_eq!(got.len(), N as usize);
    assert!(got == expected);
}

async fn on_one_date_an_appointment_beats_a_de_appointment_in_either_order(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    const DAY: &str = "2026-04-01";
    let row = |m: &str, dip: Option<&str>, src: &str| appt(m, "MOP", DAY, dip, Some(src));
    let get = |m: String| async move { s.appointments(&[m]).await.unwrap() };

    // Appointment first, then a de-appointment on the same date: the appointment stays.
    let m = mpan(1);
    assert_eq!(
        s.put_appointments(&[row(&m, Some("2000000002"), "T1")]).await.unwrap(),
        1
    );
    assert_eq!(
        s.put_appointments(&[row(&m, None, "T2")]).await.unwrap(),
        0,
        "nothing written"
    );
    assert_eq!(get(m.clone()).await, [row(&m, Some("2000000002"), "T1")]);

    // De-appointment first, then the appointment: the appointment replaces it.
    let m = mpan(2);
    s.put_appointments(&[row(&m, None, "T1")]).await.unwrap();
    assert_eq!(
        s.put_appointments(&[row(&m, Some("2000000002"), "T2")]).await.unwrap(),
        1
    );
    assert_eq!(get(m.clone()).await, [row(&m, Some("2000000002"), "T2")]);

    // A de-appointment replaces a de-appointment.
    let m = mpan(3);
    s.put_appointments(&[row(&m, None, "T1")]).await.unwrap();
    assert_eq!(s.put_appointments(&[row(&m, None, "T2")]).await.unwrap(), 1);
    assert_eq!(get(m.clone()).await, [row(&m, None, "T2")]);

    // An appointment replaces an appointment.
    let m = mpan(4);
    s.put_appointments(&[row(&m, Some("2000000002"), "T1")]).await.unwrap();
    assert_eq!(
        s.put_appointments(&[row(&m, Some("2000000003"), "T2")]).await.unwrap(),
        1
    );
    assert_eq!(get(m.clone()).await, [row(&m, Some("2000000003"), "T2")]);

    // Both in one call, in either order: the appointment wins.
    let m = mpan(5);
    assert_eq!(
        s.put_appointments(&[row(&m, Some("2000000002"), "T1"), row(&m, None, "T2")])
            .await
            .unwrap(),
        1
    );
    assert_eq!(get(m.clone()).await, [row(&m, Some("2000000002"), "T1")]);
    let m = mpan(6);
    assert_eq!(
        s.put_appointments(&[row(&m, None, "T1"), row(&m, Some("2000000002"), "T2")])
            .await
            .unwrap(),
        1
    );
    assert_eq!(get(m.clone()).await, [row(&m, Some("2000000002"), "T2")]);

    // The rule is per date: a de-appointment on another date is recorded.
    let m = mpan(7);
    s.put_appointments(&[row(&m, Some("2000000002"), "T1")]).await.unwrap();
    let off = appt(&m, "MOP", "2026-05-01", None, Some("T2"));
    assert_eq!(s.put_appointments(std::slice::from_ref(&off)).await.unwrap(), 1);
    assert_eq!(get(m.clone()).await, [row(&m, Some("2000000002"), "T1"), off]);
}

async fn a_batch_carrying_appointment_and_de_appointment_on_one_date_keeps_the_appointment(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    const DAY: &str = "2026-04-01";
    let (m1, m2) = (mpan(1), mpan(2));

    // m1: the appointment has the earlier transaction id; m2: the de-appointment has.
    let mut appoint1 = msg(1, SUPPLIER, &[Q_MOP]);
    appoint1.appointments = vec![appt(&m1, "MOP", DAY, Some("2000000002"), Some(&tx(1)))];
    let mut deappoint1 = msg(2, SUPPLIER, &[Q_DC]);
    deappoint1.appointments = vec![appt(&m1, "MOP", DAY, None, Some(&tx(2)))];
    let mut deappoint2 = msg(3, SUPPLIER, &[Q_DC]);
    deappoint2.appointments = vec![appt(&m2, "MOP", DAY, None, Some(&tx(3)))];
    let mut appoint2 = msg(4, SUPPLIER, &[Q_MOP]);
    appoint2.appointments = vec![appt(&m2, "MOP", DAY, Some("2000000002"), Some(&tx(4)))];

    let batch = [deappoint2, appoint1.clone(), appoint2.clone(), deappoint1];
    assert!(all_accepted(&commit(s, &batch).await));
    assert_eq!(
        s.appointments(&[m1, m2]).await.unwrap(),
        [appoint1.appointments[0].clone(), appoint2.appointments[0].clone()]
    );
}

// ---------------------------------------------------------------------------------------
// Committing messages
// ---------------------------------------------------------------------------------------

async fn an_accepted_message_writes_record_archive_deliveries_and_appointments(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let m1 = mpan(1);
    let mut m = msg(1, SUPPLIER, &[Q_MOP, Q_DNO]);
    m.dcp_dip_id = Some(DCP.into());
    m.mpan = Some(m1.clone());
    m.deliveries[0].recipient_role = "MOP".into();
    m.deliveries[0].hidden = vec![
        "/CustomBlock/customer/name".into(),
        "/CustomBlock/customer/phone".into(),
    ];
    m.appointments = vec![
        appt(&m1, "SUP", "2026-05-01", Some(SUPPLIER), Some(&m.transaction_id)),
        appt(&m1, "MOP", "2026-05-01", None, Some(&m.transaction_id)),
    ];
    let mut bare = msg(2, OTHER_SUPPLIER, &[]);
    bare.correlation_id = None;

    assert_eq!(
        commit(s, &[m.clone(), bare.clone()]).await,
        [CommitOutcome::Accepted, CommitOutcome::Accepted]
    );

    assert_eq!(s.message(&m.transaction_id).await.unwrap(), Some(record_of(&m)));
    assert_eq!(
        s.archived_envelope(&m.transaction_id).await.unwrap(),
        Some(m.envelope.clone())
    );
    let entry = |d: &Delivery| QueueEntry {
        queue_id: d.queue_id.clone(),
        seq: 1,
        transaction_id: m.transaction_id.clone(),
        recipient_dip_id: d.recipient_dip_id.clone(),
        recipient_role: d.recipient_role.clone(),
        hidden: d.hidden.clone(),
        state: "pending".into(),
        enqueued_at: m.received_at,
        attempts: 0,
        last_attempt_at: None,
        last_outcome: None,
        settled_at: None,
        replay_id: None,
        replay_of: None,
    };
    // Deliveries come back by recipient, then queue.
    let expected = vec![entry(&m.deliveries[1]), entry(&m.deliveries[0])];
    assert_eq!(s.message_deliveries(&m.transaction_id).await.unwrap(), expected);
    assert_eq!(queue(s, Q_DNO).await, [expected[0].clone()]);
    assert_eq!(queue(s, Q_MOP).await, [expected[1].clone()]);
    let mut appointments = m.appointments.clone();
    appointments.sort_by(|a, b| a.role.cmp(&b.role));
    assert_eq!(s.appointments(&[m1]).await.unwrap(), appointments);

    // A message without recipients is stored and archived all the same.
    assert_eq!(s.message(&bare.transaction_id).await.unwrap(), Some(record_of(&bare)));
    assert_eq!(
        s.archived_envelope(&bare.transaction_id).await.unwrap(),
        Some(bare.envelope.clone())
    );
    assert!(s.message_deliveries(&bare.transaction_id).await.unwrap().is_empty());
}

async fn a_stored_reference_is_a_duplicate_of_the_original_and_writes_nothing(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let mut original = msg(1, SUPPLIER, &[Q_DNO]);
    original.appointments = vec![appt(&mpan(1), "SUP", "2026-05-01", Some(SUPPLIER), Some(&tx(1)))];
    let mut uncorrelated = msg(2, SUPPLIER, &[Q_DNO]);
    uncorrelated.correlation_id = None;
    assert!(all_accepted(
        &commit(s, &[original.clone(), uncorrelated.clone()]).await
    ));

    // A retry: same sender and reference, new transaction id, different content and fan-out.
    let mut retry = msg(10, SUPPLIER, &[Q_DNO, Q_MOP]);
    retry.sender_unique_reference = original.sender_unique_reference.clone();
    retry.content_hash = "another hash".into();
    retry.correlation_id = Some("another correlation".into());
    retry.appointments = vec![appt(&mpan(2), "SUP", "2026-05-01", Some(SUPPLIER), Some(&tx(10)))];
    let mut retry2 = msg(11, SUPPLIER, &[Q_MOP]);
    retry2.sender_unique_reference = uncorrelated.sender_unique_reference.clone();
    retry2.correlation_id = Some("made up".into());

    assert_eq!(
        commit(s, &[retry.clone(), retry2.clone()]).await,
        [duplicate_of(&original), duplicate_of(&uncorrelated)]
    );

    for r in [&retry, &retry2] {
        assert_eq!(s.message(&r.transaction_id).await.unwrap(), None);
        assert_eq!(s.archived_envelope(&r.transaction_id).await.unwrap(), None);
        assert!(s.message_deliveries(&r.transaction_id).await.unwrap().is_empty());
    }
    assert_eq!(txns(&queue(s, Q_DNO).await), [tx(1), tx(2)], "no extra queue entries");
    assert!(queue(s, Q_MOP).await.is_empty(), "no extra queue entries");
    assert!(
        s.appointments(&[mpan(2)]).await.unwrap().is_empty(),
        "no appointment changes"
    );
    assert_eq!(s.appointments(&[mpan(1)]).await.unwrap(), original.appointments);
    assert_eq!(
        s.message(&original.transaction_id).await.unwrap(),
        Some(record_of(&original))
    );

    // Committed again on its own: still the same answer.
    assert_eq!(commit(s, std::slice::from_ref(&retry)).await, [duplicate_of(&original)]);
    // The same reference from another sender is a different key; positions continue at 3.
    let mut other = msg(12, OTHER_SUPPLIER, &[Q_DNO]);
    other.sender_unique_reference = original.sender_unique_reference.clone();
    assert_eq!(commit(s, &[other]).await, [CommitOutcome::Accepted]);
    assert_eq!(seqs(&queue(s, Q_DNO).await), [1, 2, 3]);
    assert_eq!(txns(&queue(s, Q_DNO).await), [tx(1), tx(2), tx(12)]);
}

async fn a_key_repeated_within_a_batch_is_a_duplicate_of_its_first_occurrence(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let stored = msg(1, SUPPLIER, &[Q_DNO]);
    assert!(all_accepted(&commit(s, std::slice::from_ref(&stored)).await));

    let a = msg(20, SUPPLIER, &[Q_DNO]);
    let b = msg(21, OTHER_SUPPLIER, &[Q_DNO]);
    // Repeats of `a`: one with a later and one with an earlier transaction id.
    let mut a_again = msg(22, SUPPLIER, &[Q_DNO, Q_MOP]);
    a_again.sender_unique_reference = a.sender_unique_reference.clone();
    a_again.content_hash = "changed".into();
    let mut a_earlier = msg(5, SUPPLIER, &[Q_MOP]);
    a_earlier.sender_unique_reference = a.sender_unique_reference.clone();
    // Two repeats of the already stored key.
    let mut stored_again = msg(23, SUPPLIER, &[Q_DNO]);
    stored_again.sender_unique_reference = stored.sender_unique_reference.clone();
    let mut stored_again2 = msg(24, SUPPLIER, &[Q_DNO]);
    stored_again2.sender_unique_reference = stored.sender_unique_reference.clone();
    let c = msg(25, SUPPLIER, &[Q_DNO]);

    let batch = [
        stored_again,
        a.clone(),
        a_again.clone(),
        b.clone(),
        stored_again2,
        a_earlier.clone(),
        c.clone(),
    ];
    assert_eq!(
        commit(s, &batch).await,
        [
            duplicate_of(&stored),
            CommitOutcome::Accepted,
            duplicate_of(&a),
            CommitOutcome::Accepted,
            duplicate_of(&stored),
            duplicate_of(&a),
            CommitOutcome::Accepted,
        ],
        "outcomes in input order"
    );
    for dup in [&a_again, &a_earlier, &batch[0], &batch[4]] {
        assert_eq!(s.message(&dup.transaction_id).await.unwrap(), None);
        assert!(s.message_deliveries(&dup.transaction_id).await.unwrap().is_empty());
    }
    assert_eq!(txns(&queue(s, Q_DNO).await), [tx(1), tx(20), tx(21), tx(25)]);
    assert_eq!(seqs(&queue(s, Q_DNO).await), [1, 2, 3, 4]);
    assert!(queue(s, Q_MOP).await.is_empty());
}

async fn a_batch_larger_than_one_chunk_commits_with_fan_out(db: Db) {
    const N: u64 = 1_200;
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let batch: Vec<NewMessage> = (1..=N)
        .map(|n| {
            let mut m = msg(n, SUPPLIER, &[Q_DNO, Q_MOP, Q_DC]);
            m.mpan = Some(mpan(n));
            m.appointments = vec![appt(&mpan(n), "SUP", "2026-01-01", Some(SUPPLIER), Some(&tx(n)))];
            m
        })
        .collect();
    let outcomes = commit(s, &batch).await;
    assert_eq!(outcomes.len(), N as usize);
    assert!(all_accepted(&outcomes));

    let all_tx: Vec<String> = (1..=N).map(tx).collect();
    for q in [Q_DNO, Q_MOP, Q_DC] {
        let entries = queue(s, q).await;
        assert_eq!(seqs(&entries), one_to(N as usize), "queue {q}");
        assert_eq!(txns(&entries), all_tx, "queue {q}");
    }
    for n in [1, 500, 501, N] {
        assert_eq!(
            s.message(&tx(n)).await.unwrap(),
            Some(record_of(&batch[n as usize - 1]))
        );
        assert!(s.archived_envelope(&tx(n)).await.unwrap().is_some());
        assert_eq!(s.message_deliveries(&tx(n)).await.unwrap().len(), 3);
    }
    let mpans: Vec<String> = (1..=N).map(mpan).collect();
    assert_eq!(s.appointments(&mpans).await.unwrap().len(), N as usize);

    // The same batch again: every item a duplicate, nothing more queued.
    let again: Vec<NewMessage> = batch
        .iter()
        .map(|m| NewMessage {
            transaction_id: format!("R{}", m.transaction_id),
            ..m.clone()
        })
        .collect();
    let outcomes = commit(s, &again).await;
    assert!(outcomes.iter().zip(&batch).all(|(o, m)| *o == duplicate_of(m)));
    assert_eq!(stat(s, Q_DNO).await.pending, N as i64);
}

// ---------------------------------------------------------------------------------------
// FIFO queues
// ---------------------------------------------------------------------------------------

async fn queue_positions_start_at_one_and_follow_transaction_id_order_within_a_batch(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    // Given out of order; positions follow the transaction ids.
    let batch = [
        msg(5, SUPPLIER, &[Q_DNO]),
        msg(2, SUPPLIER, &[Q_DNO, Q_MOP]),
        msg(9, OTHER_SUPPLIER, &[Q_MOP, Q_DNO]),
        msg(1, SUPPLIER, &[Q_DNO]),
    ];
    assert_eq!(commit(s, &batch).await, vec![CommitOutcome::Accepted; 4]);
    let dno = queue(s, Q_DNO).await;
    assert_eq!(seqs(&dno), [1, 2, 3, 4]);
    assert_eq!(txns(&dno), [tx(1), tx(2), tx(5), tx(9)]);
    let mop = queue(s, Q_MOP).await;
    assert_eq!(seqs(&mop), [1, 2]);
    assert_eq!(txns(&mop), [tx(2), tx(9)]);
}

async fn queue_positions_continue_without_gaps_across_batches(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    commit(s, &[msg(3, SUPPLIER, &[Q_DNO]), msg(1, SUPPLIER, &[Q_DNO])]).await;
    commit(s, &[msg(12, SUPPLIER, &[Q_DNO]), msg(11, SUPPLIER, &[Q_DNO])]).await;
    // Duplicates and messages for other queues use no position here.
    let mut dup = msg(20, SUPPLIER, &[Q_DNO]);
    dup.sender_unique_reference = msg(1, SUPPLIER, &[]).sender_unique_reference;
    let outcomes = commit(s, &[dup, msg(21, SUPPLIER, &[Q_MOP]), msg(22, SUPPLIER, &[Q_DNO])]).await;
    assert_eq!(outcomes[1..], [CommitOutcome::Accepted, CommitOutcome::Accepted]);
    commit(s, &[msg(30, SUPPLIER, &[Q_DNO])]).await;

    let dno = queue(s, Q_DNO).await;
    assert_eq!(seqs(&dno), one_to(6));
    assert_eq!(txns(&dno), [tx(1), tx(3), tx(11), tx(12), tx(22), tx(30)]);
}

async fn positions_of_different_queues_are_independent(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    commit(
        s,
        &[
            msg(1, SUPPLIER, &[Q_DNO]),
            msg(2, SUPPLIER, &[Q_DNO]),
            msg(3, SUPPLIER, &[Q_DNO]),
        ],
    )
    .await;
    commit(s, &[msg(4, SUPPLIER, &[Q_MOP])]).await;
    commit(s, &[msg(5, SUPPLIER, &[Q_DC, Q_DNO]), msg(6, SUPPLIER, &[Q_MOP])]).await;

    assert_eq!(seqs(&queue(s, Q_DNO).await), [1, 2, 3, 4]);
    assert_eq!(seqs(&queue(s, Q_MOP).await), [1, 2]);
    assert_eq!(txns(&queue(s, Q_MOP).await), [tx(4), tx(6)]);
    assert_eq!(seqs(&queue(s, Q_DC).await), [1]);
    let deliveries = s.message_deliveries(&tx(5)).await.unwrap();
    let positions: BTreeMap<String, i64> = deliveries.iter().map(|e| (e.queue_id.clone(), e.seq)).collect();
    assert_eq!(positions, BTreeMap::from([(Q_DNO.to_owned(), 4), (Q_DC.to_owned(), 1)]));
}

async fn pending_entries_pages_in_fifo_order(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let batch: Vec<NewMessage> = (1..=10).map(|n| msg(n, SUPPLIER, &[Q_DNO])).collect();
    commit(s, &batch).await;

    let page = |after: i64, limit: i64| async move { s.pending_entries(Q_DNO, after, limit).await.unwrap() };
    assert_eq!(seqs(&page(0, 4).await), [1, 2, 3, 4]);
    assert_eq!(seqs(&page(4, 4).await), [5, 6, 7, 8]);
    assert_eq!(seqs(&page(8, 4).await), [9, 10]);
    assert!(page(10, 4).await.is_empty());
    assert_eq!(seqs(&page(3, 2).await), [4, 5]);
    assert_eq!(txns(&page(3, 2).await), [tx(4), tx(5)]);
    assert!(
        s.pending_entries(Q_MOP, 0, 10).await.unwrap().is_empty(),
        "another queue"
    );

    // Reading the queue page by page visits every entry once, in order.
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let p = page(after, 3).await;
        let Some(last) = p.last() else { break };
        after = last.seq;
        seen.extend(txns(&p));
    }
    assert_eq!(seen, (1..=10).map(tx).collect::<Vec<_>>());
}

async fn queue_stats_count_pending_entries_and_the_oldest_enqueue_time(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let mut early = msg(7, SUPPLIER, &[Q_DNO, Q_MOP]);
    early.received_at = BASE_TIME - 1_000_000; // received earlier than its transaction id suggests
    commit(s, &[msg(1, SUPPLIER, &[Q_DNO]), msg(2, SUPPLIER, &[Q_DNO])]).await;
    commit(s, &[early, msg(8, SUPPLIER, &[Q_MOP])]).await;

    let asked = [Q_MOP.to_owned(), "9999999999/none".to_owned(), Q_DNO.to_owned()];
    assert_eq!(
        s.queue_stats(&asked).await.unwrap(),
        [
            QueueStat {
                queue_id: Q_MOP.into(),
                pending: 2,
                oldest_enqueued_at: Some(BASE_TIME - 1_000_000)
            },
            QueueStat {
                queue_id: "9999999999/none".into(),
                pending: 0,
                oldest_enqueued_at: None
            },
            QueueStat {
                queue_id: Q_DNO.into(),
                pending: 3,
                oldest_enqueued_at: Some(BASE_TIME - 1_000_000)
            },
        ],
        "one stat per queue asked, in the order asked"
    );
    let only = s.queue_stats(&[Q_DNO.to_owned()]).await.unwrap();
    assert_eq!(only.len(), 1);
}

// ---------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------

async fn concurrent_batches_get_gapless_fifo_positions_per_queue(db: Db) {
    const TASKS: u64 = 8;
    const BATCHES: u64 = 8;
    const PER_BATCH: u64 = 25;
    let t = TestStore::new(db).await;
    let sender = |task: u64| format!("30000000{task:02}");
    let own_queue = |task: u64| format!("40000000{task:02}/inbox");
    let number = |task: u64, batch: u64, i: u64| task * 1_000_000 + batch * 1_000 + i;

    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS as usize));
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = t.store.clone();
        let barrier = barrier.clone();
        let (sender, own) = (sender(task), own_queue(task));
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            for b in 0..BATCHES {
                let batch: Vec<NewMessage> = (0..PER_BATCH)
                    .map(|i| msg(number(task, b, i), &sender, &[Q_DNO, Q_MOP, own.as_str()]))
                    .collect();
                let outcomes = store.commit_messages(&batch).await.expect("concurrent commit");
                assert_eq!(outcomes, vec![CommitOutcome::Accepted; PER_BATCH as usize]);
            }
        }));
    }
    for h in handles {
        h.await.expect("committing task");
    }

    let s = t.store.as_ref();
    let total = (TASKS * BATCHES * PER_BATCH) as usize;
    let dno = queue(s, Q_DNO).await;
    let mop = queue(s, Q_MOP).await;
    assert_eq!(seqs(&dno), one_to(total), "positions 1..N without gaps or repeats");
    assert_eq!(seqs(&mop), one_to(total), "positions 1..N without gaps or repeats");
    let expected: BTreeSet<String> = (0..TASKS)
        .flat_map(|t| (0..BATCHES).flat_map(move |b| (0..PER_BATCH).map(move |i| tx(number(t, b, i)))))
        .collect();
    assert_eq!(
        txns(&dno).into_iter().collect::<BTreeSet<_>>(),
        expected,
        "every message queued once"
    );
    assert_eq!(
        txns(&dno),
        txns(&mop),
        "queues shared by the same messages see them in the same order"
    );
    for task in 0..TASKS {
        let mine: Vec<String> = txns(&dno)
            .into_iter()
            .filter(|x| x.starts_with(&tx(task * 1_000_000)[..8]))
            .collect();
        let mut sorted = mine.clone();
        sorted.sort();
        assert_eq!(mine.len(), (BATCHES * PER_BATCH) as usize);
        assert_eq!(mine, sorted, "each sender's messages keep their order");
        let own = queue(s, &own_queue(task)).await;
        assert_eq!(seqs(&own), one_to((BATCHES * PER_BATCH) as usize));
        assert_eq!(txns(&own), sorted);
    }
    for n in [
        number(0, 0, 0),
        number(TASKS - 1, BATCHES - 1, PER_BATCH - 1),
        number(3, 4, 5),
    ] {
        let m = msg(n, &sender(n / 1_000_000), &[Q_DNO, Q_MOP, &own_queue(n / 1_000_000)]);
        assert_eq!(s.message(&tx(n)).await.unwrap(), Some(record_of(&m)));
    }
    assert_eq!(stat(s, Q_DNO).await.pending, total as i64);
}

async fn concurrent_commits_of_the_same_keys_accept_each_key_exactly_once(db: Db) {
    const TASKS: u64 = 8;
    const KEYS: u64 = 60;
    const PER_BATCH: usize = 20;
    let t = TestStore::new(db).await;
    // Task `task`'s attempt at key `k`: its own transaction id, hash and correlation id.
    let attempt = |task: u64, k: u64| {
        let mut m = msg(task * 1_000 + k, SUPPLIER, &[Q_DNO, Q_MOP]);
        m.sender_unique_reference = format!("shared-{k:03}");
        m.content_hash = format!("hash-{task}-{k}");
        m.correlation_id = Some(format!("corr-{task}-{k}"));
        m.appointments = vec![appt(
            &mpan(k),
            "SUP",
            "2026-01-01",
            Some(SUPPLIER),
            Some(&m.transaction_id),
        )];
        m
    };

    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS as usize));
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = t.store.clone();
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            // Every task tries every key, each in its own order and batching.
            let mut keys: Vec<u64> = (0..KEYS).collect();
            keys.rotate_left((task * 7 % KEYS) as usize);
            if task % 2 == 1 {
                keys.reverse();
            }
            let mut results = Vec::new();
            barrier.wait().await;
            for chunk in keys.chunks(PER_BATCH) {
                let batch: Vec<NewMessage> = chunk.iter().map(|&k| attempt(task, k)).collect();
                let outcomes = store.commit_messages(&batch).await.expect("concurrent commit");
                results.extend(chunk.iter().zip(outcomes).map(|(&k, o)| (k, task, o)));
            }
            results
        }));
    }
    let mut by_key: BTreeMap<u64, Vec<(u64, CommitOutcome)>> = BTreeMap::new();
    for h in handles {
        for (k, task, outcome) in h.await.expect("committing task") {
            by_key.entry(k).or_default().push((task, outcome));
        }
    }

    let s = t.store.as_ref();
    let mut winners = BTreeSet::new();
    for (k, results) in &by_key {
        assert_eq!(results.len(), TASKS as usize);
        let accepted: Vec<u64> = results
            .iter()
            .filter(|(_, o)| *o == CommitOutcome::Accepted)
            .map(|(task, _)| *task)
            .collect();
        assert_eq!(accepted.len(), 1, "key {k} accepted exactly once: {results:?}");
        let winner = attempt(accepted[0], *k);
        for (task, outcome) in results {
            if *task != accepted[0] {
                assert_eq!(*outcome, duplicate_of(&winner), "key {k}, task {task}");
                assert_eq!(s.message(&attempt(*task, *k).transaction_id).await.unwrap(), None);
            }
        }
        assert_eq!(
            s.message(&winner.transaction_id).await.unwrap(),
            Some(record_of(&winner))
        );
        assert_eq!(s.appointments(&[mpan(*k)]).await.unwrap(), winner.appointments);
        winners.insert(winner.transaction_id);
    }
    for q in [Q_DNO, Q_MOP] {
        let entries = queue(s, q).await;
        assert_eq!(seqs(&entries), one_to(KEYS as usize), "queue {q}");
        assert_eq!(
            txns(&entries).into_iter().collect::<BTreeSet<_>>(),
            winners,
            "queue {q}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Atomicity
// ---------------------------------------------------------------------------------------

async fn a_batch_failing_part_way_writes_nothing(db: Db) {
    const N: u64 = 600;
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let before = [
        msg(1, SUPPLIER, &[Q_DNO]),
        msg(2, SUPPLIER, &[Q_DNO]),
        msg(3, SUPPLIER, &[Q_DNO]),
    ];
    assert!(all_accepted(&commit(s, &before).await));

    // 600 messages to a used and a fresh queue, with appointments. The last two keys (in
    // the second chunk of rows, after 500 rows were written) share a transaction id.
    let mut bad: Vec<NewMessage> = (0..N)
        .map(|i| {
            let mut m = msg(1_000 + i, OTHER_SUPPLIER, &[Q_DNO, Q_MOP]);
            m.sender_unique_reference = format!("bad-{i:03}");
            m.appointments = vec![appt(
                &mpan(i),
                "SUP",
                "2026-01-01",
                Some(OTHER_SUPPLIER),
                Some(&m.transaction_id),
            )];
            m
        })
        .collect();
    bad[N as usize - 1].transaction_id = bad[N as usize - 2].transaction_id.clone();
    let result = s.commit_messages(&bad).await;
    assert!(
        matches!(result, Err(StoreError::Database(_))),
        "the batch fails: {result:?}"
    );

    for n in [1_000, 1_001, 1_000 + N - 2] {
        assert_eq!(s.message(&tx(n)).await.unwrap(), None, "no messages");
        assert_eq!(s.archived_envelope(&tx(n)).await.unwrap(), None, "no archive");
        assert!(s.message_deliveries(&tx(n)).await.unwrap().is_empty(), "no deliveries");
    }
    assert_eq!(txns(&queue(s, Q_DNO).await), [tx(1), tx(2), tx(3)], "no queue entries");
    assert!(queue(s, Q_MOP).await.is_empty(), "no queue entries");
    let mpans: Vec<String> = (0..N).map(mpan).collect();
    assert!(
        s.appointments(&mpans).await.unwrap().is_empty(),
        "no appointment changes"
    );

    // Counters are unchanged: the used queue continues at 4, the fresh one starts at 1, and
    // the failed batch's references are free.
    let mut retry = bad[0].clone();
    retry.transaction_id = tx(5_000);
    assert_eq!(
        commit(s, &[retry, msg(5_001, SUPPLIER, &[Q_DNO])]).await,
        vec![CommitOutcome::Accepted; 2]
    );
    let dno = queue(s, Q_DNO).await;
    assert_eq!(seqs(&dno), [1, 2, 3, 4, 5]);
    assert_eq!(txns(&dno)[3..], [tx(5_000), tx(5_001)]);
    let mop = queue(s, Q_MOP).await;
    assert_eq!(seqs(&mop), [1]);
    assert_eq!(txns(&mop), [tx(5_000)]);
}

// ---------------------------------------------------------------------------------------
// Delivery: leases, settlement, failures, dead letters, replay, notifications
// ---------------------------------------------------------------------------------------

fn settlement(queue: &str, seq: i64, state: EntryState, at: i64) -> Settlement {
    Settlement {
        queue_id: queue.into(),
        seq,
        state,
        at,
        outcome: format!("{state:?}"),
        duration_us: 7,
        call: None,
    }
}

async fn health(store: &dyn QueueStore, queue: &str) -> QueueHealth {
    store.queue_health(&[queue.to_owned()]).await.unwrap().remove(0)
}

async fn a_queue_lease_is_exclusive_until_it_expires_and_only_its_holder_renews_it(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let (q, other) = (Q_DNO.to_owned(), Q_MOP.to_owned());
    assert_eq!(
        s.claim_queues("a", &[q.clone(), other.clone()], 100, 200)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(s.lease(&q).await.unwrap(), Some(("a".into(), 200)));
    // Held by a: b cannot take it before it expires; a can take it again.
    assert!(
        s.claim_queues("b", std::slice::from_ref(&q), 150, 250)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.claim_queues("a", std::slice::from_ref(&q), 150, 250).await.unwrap(),
        [Q_DNO]
    );
    // Only the holder renews, every lease it holds at once.
    let mut renewed = s.renew_leases("a", 300).await.unwrap();
    renewed.sort();
    assert_eq!(renewed, [Q_DNO, Q_MOP]);
    assert!(s.renew_leases("b", 300).await.unwrap().is_empty());
    // Expired: b takes it over and a's renewal no longer covers it.
    assert_eq!(
        s.claim_queues("b", std::slice::from_ref(&q), 301, 400).await.unwrap(),
        [Q_DNO]
    );
    assert_eq!(s.renew_leases("a", 500).await.unwrap(), [Q_MOP]);
    // Releasing needs the holder.
    s.release_queue("a", &q).await.unwrap();
    assert_eq!(s.lease(&q).await.unwrap(), Some(("b".into(), 400)));
    s.release_queue("b", &q).await.unwrap();
    assert_eq!(s.lease(&q).await.unwrap(), None);
    assert_eq!(
        s.claim_queues("c", std::slice::from_ref(&q), 0, 10).await.unwrap(),
        [Q_DNO]
    );
}

async fn claimable_queues_have_pending_entries_and_no_live_lease(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    assert!(s.claimable_queues(0).await.unwrap().is_empty());
    commit(s, &[msg(1, SUPPLIER, &[Q_DNO, Q_MOP]), msg(2, SUPPLIER, &[Q_DC])]).await;
    assert_eq!(s.claimable_queues(0).await.unwrap(), [Q_DNO, Q_MOP, Q_DC]);
    s.claim_queues("a", &[Q_DNO.to_owned()], 10, 100).await.unwrap();
    s.settle(&[settlement(Q_DC, 1, EntryState::Delivered, 20)], &[])
        .await
        .unwrap();
    assert_eq!(
        s.claimable_queues(50).await.unwrap(),
        [Q_MOP],
        "leased, or nothing pending"
    );
    assert_eq!(
        s.claimable_queues(101).await.unwrap(),
        [Q_DNO, Q_MOP],
        "the lease expired"
    );
    let mut ids = s.queue_ids().await.unwrap();
    ids.sort();
    assert_eq!(ids, [Q_DNO, Q_MOP, Q_DC]);
}

async fn next_outbound_brings_envelope_and_origin_in_fifo_order(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let batch: Vec<NewMessage> = (1..=5).map(|n| msg(n, SUPPLIER, &[Q_DNO])).collect();
    commit(s, &batch).await;
    let out = s.next_outbound(Q_DNO, 1, 3).await.unwrap();
    assert_eq!(out.iter().map(|o| o.entry.seq).collect::<Vec<_>>(), [2, 3, 4]);
    let first = &out[0];
    assert_eq!(first.entry.transaction_id, tx(2));
    assert_eq!(first.interface_id, "IF-021");
    assert_eq!(first.envelope, batch[1].envelope);
    let origin = first.origin.as_ref().expect("origin");
    assert_eq!(origin.sender_dip_id, SUPPLIER);
    assert_eq!(origin.sender_unique_reference, batch[1].sender_unique_reference);
    assert_eq!(origin.correlation_id.as_deref(), Some("corr-2"));
    assert_eq!(origin.received_at, batch[1].received_at);
    let pending = s.pending_by_transaction(Q_DNO, &[tx(4), tx(2), tx(9)]).await.unwrap();
    assert_eq!(seqs(&pending), [2, 4]);
}

async fn settling_changes_pending_entries_once_and_commits_reports_with_it(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    commit(
        s,
        &[
            msg(1, SUPPLIER, &[Q_DNO]),
            msg(2, SUPPLIER, &[Q_DNO]),
            msg(3, SUPPLIER, &[Q_DNO]),
        ],
    )
    .await;
    s.claim_queues("node", &[Q_DNO.to_owned()], 0, 1_000).await.unwrap();
    // A report to the sender, queued in the same transaction as the settlement.
    let report = msg(10, "0000000000", &[Q_DC]);
    s.settle(
        &[
            settlement(Q_DNO, 1, EntryState::Delivered, 500),
            settlement(Q_DNO, 2, EntryState::Returned, 600),
            settlement(Q_DNO, 3, EntryState::Dead, 700),
        ],
        std::slice::from_ref(&report),
    )
    .await
    .unwrap();
    let entries = s.message_deliveries(&tx(1)).await.unwrap();
    assert_eq!((entries[0].state.as_str(), entries[0].attempts), ("delivered", 1));
    assert_eq!(entries[0].settled_at, Some(500));
    assert_eq!(entries[0].last_attempt_at, Some(500));
    let returned = &s.message_deliveries(&tx(2)).await.unwrap()[0];
    assert_eq!((returned.state.as_str(), returned.attempts), ("returned", 1));
    let dead = &s.message_deliveries(&tx(3)).await.unwrap()[0];
    assert_eq!(
        (dead.state.as_str(), dead.attempts, dead.last_attempt_at),
        ("dead", 0, None),
        "no attempt"
    );
    assert_eq!(queue(s, Q_DC).await.len(), 1, "the report is queued");
    // Settling again changes nothing, and the report is not queued twice.
    s.settle(
        &[settlement(Q_DNO, 1, EntryState::Dead, 900)],
        std::slice::from_ref(&report),
    )
    .await
    .unwrap();
    assert_eq!(s.message_deliveries(&tx(1)).await.unwrap()[0].state, "delivered");
    assert_eq!(queue(s, Q_DC).await.len(), 1);
    let h = health(s, Q_DNO).await;
    assert_eq!((h.pending, h.dead, h.last_success_at), (0, 1, Some(600)));
    assert_eq!(h.owner.as_deref(), Some("node"));
}

async fn receipt_signatures_and_webhook_calls_are_kept_as_evidence(db: Db) {
    use broker_core::security::signature::SignatureRecord;
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let signature = |url: &str, fingerprint: &str| SignatureRecord {
        method: "POST".into(),
        url: url.into(),
        signed_at: "2026-11-18T10:00:00Z".into(),
        content_hash: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into(),
        signature: "c2ln".into(),
        fingerprint: fingerprint.into(),
    };
    let mut signed = msg(1, SUPPLIER, &[Q_DNO]);
    signed.receipt_signature = Some(signature("https://dip.example/api/v1/messages", "ab12"));
    commit(s, &[signed, msg(2, SUPPLIER, &[Q_DNO])]).await;
    assert_eq!(
        s.receipt_signature(&tx(1)).await.unwrap(),
        Some(signature("https://dip.example/api/v1/messages", "ab12"))
    );
    assert_eq!(s.receipt_signature(&tx(2)).await.unwrap(), None, "unsigned");
    assert_eq!(s.receipt_signature("TX-unknown").await.unwrap(), None);

    // Entry 1: a failed call, then a delivery; entry 2: an unsigned call answered with
    // success, which leaves nothing to keep beyond its event.
    let call = |answer: &str| CallDetail {
        answer: answer.into(),
        signature: Some(signature("https://recipient.example/hook", "cd34")),
    };
    s.record_failure(&AttemptFailure {
        queue_id: Q_DNO.into(),
        seq: 1,
        at: 100,
        outcome: "HTTP 503".into(),
        retry_at: 150,
        duration_us: 9,
        call: Some(call("{\"error\":\"busy\"}")),
    })
    .await
    .unwrap();
    let delivered = Settlement {
        call: Some(call("")),
        ..settlement(Q_DNO, 1, EntryState::Delivered, 200)
    };
    let plain = Settlement {
        call: Some(CallDetail::default()),
        ..settlement(Q_DNO, 2, EntryState::Delivered, 210)
    };
    s.settle(&[delivered.clone(), plain], &[]).await.unwrap();
    // Settling again (a flush retried after a lost answer) records nothing twice.
    s.settle(&[delivered], &[]).await.unwrap();
    // A failure reported for an entry no longer pending records nothing.
    s.record_failure(&AttemptFailure {
        queue_id: Q_DNO.into(),
        seq: 1,
        at: 300,
        outcome: "HTTP 500".into(),
        retry_at: 350,
        duration_us: 1,
        call: Some(call("late")),
    })
    .await
    .unwrap();

    let keys = [(Q_DNO.to_owned(), 1), (Q_DNO.to_owned(), 2), (Q_MOP.to_owned(), 1)];
    let attempts = s.attempts_of(&keys).await.unwrap();
    let expected = [
        Attempt {
            queue_id: Q_DNO.into(),
            seq: 1,
            at: 100,
            outcome: "HTTP 503".into(),
            duration_us: 9,
            call: call("{\"error\":\"busy\"}"),
        },
        Attempt {
            queue_id: Q_DNO.into(),
            seq: 1,
            at: 200,
            outcome: "Delivered".into(),
            duration_us: 7,
            call: call(""),
        },
    ];
    assert_eq!(attempts, expected);
    assert!(s.attempts_of(&[]).await.unwrap().is_empty());
}

async fn an_entry_knows_what_it_joined_behind(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    commit(
        s,
        &[
            msg(1, SUPPLIER, &[Q_DNO]),
            msg(2, SUPPLIER, &[Q_DNO]),
            msg(3, SUPPLIER, &[Q_DNO]),
        ],
    )
    .await;
    let entries = queue(s, Q_DNO).await;
    let (first, second, third) = (&entries[0], &entries[1], &entries[2]);
    let joined = third.enqueued_at;
    let ahead = |e: &QueueEntry| s.ahead_of(Q_DNO, e.seq, e.enqueued_at);
    assert_eq!(
        ahead(first).await.unwrap(),
        Ahead::default(),
        "the head joined an empty queue"
    );
    assert_eq!(
        ahead(third).await.unwrap(),
        Ahead {
            entries: 2,
            ..Ahead::default()
        },
        "two unsettled ahead, none attempted yet"
    );
    // The head fails (a call with nothing to keep beyond its outcome is kept all the
    // same), is retried and delivered; the second is delivered at once.
    s.record_failure(&AttemptFailure {
        queue_id: Q_DNO.into(),
        seq: first.seq,
        at: joined + 100,
        outcome: "timeout".into(),
        retry_at: joined + 150,
        duration_us: 9,
        call: None,
    })
    .await
    .unwrap();
    let waiting = ahead(third).await.unwrap();
    assert_eq!(
        (waiting.retried, waiting.retry_outcome.as_deref(), waiting.cleared_at),
        (1, Some("timeout"), None)
    );
    s.settle(
        &[
            settlement(Q_DNO, first.seq, EntryState::Delivered, joined + 200),
            settlement(Q_DNO, second.seq, EntryState::Delivered, joined + 300),
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        ahead(third).await.unwrap(),
        Ahead {
            entries: 2,
            retried: 1,
            retry_outcome: Some("timeout".into()),
            cleared_at: Some(joined + 300),
        }
    );
    // Entries settled before it joined were not ahead of it.
    assert_eq!(
        s.ahead_of(Q_DNO, third.seq, joined + 250).await.unwrap(),
        Ahead {
            entries: 1,
            cleared_at: Some(joined + 300),
            ..Ahead::default()
        }
    );
}

async fn a_node_identity_is_held_by_one_holder_at_a_time(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let first = s.hold_node("node-a").await.unwrap().expect("a free identity is held");
    assert!(s.hold_node("node-a").await.unwrap().is_none(), "held already");
    let other = s.hold_node("node-b").await.unwrap();
    assert!(other.is_some(), "another identity is free");
    drop(first);
    // Letting go of the hold frees the identity (PostgreSQL: the session ends).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if s.hold_node("node-a").await.unwrap().is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "node-a not freed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn a_gone_node_s_leases_are_freed_and_a_live_one_s_are_not(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    commit(s, &[msg(1, SUPPLIER, &[Q_DNO, Q_MOP, Q_DC])]).await;
    let (now, until) = (1_000, i64::MAX / 2);
    let held = s.hold_node("node-a").await.unwrap().expect("held");
    let _b = s.hold_node("node-b").await.unwrap().expect("held");
    for (owner, queue) in [("node-a", Q_DNO), ("node-b", Q_MOP), ("no-identity", Q_DC)] {
        assert_eq!(
            s.claim_queues(owner, &[queue.to_owned()], now, until).await.unwrap(),
            [queue]
        );
    }
    assert!(
        s.release_dead_nodes("node-b", now).await.unwrap().is_empty(),
        "everyone lives"
    );
    drop(held);
    let mut notices = s.subscribe();
    // node-a is gone (PostgreSQL: once the server has seen its session end).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let released = loop {
        let r = s.release_dead_nodes("node-b", now).await.unwrap();
        if !r.is_empty() {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "node-a not seen gone");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(released, [("node-a".to_owned(), vec![Q_DNO.to_owned()])]);
    assert_eq!(s.lease(Q_DNO).await.unwrap(), None, "freed");
    // Announced (PostgreSQL's listener may first say `*`, when it starts listening).
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while !notices.recv().await.unwrap().contains(&Q_DNO.to_owned()) {}
    })
    .await
    .expect("the freed queue announced");
    // Once freed, it is free: another node claims it; the others' leases stand, also
    // that of a node that never held an identity (its lease can only expire).
    assert!(s.release_dead_nodes("node-b", now).await.unwrap().is_empty());
    assert_eq!(
        s.claim_queues("node-b", &[Q_DNO.to_owned()], now, until).await.unwrap(),
        [Q_DNO]
    );
    assert_eq!(s.lease(Q_MOP).await.unwrap().map(|(o, _)| o).as_deref(), Some("node-b"));
    assert_eq!(
        s.lease(Q_DC).await.unwrap().map(|(o, _)| o).as_deref(),
        Some("no-identity")
    );
}

async fn failed_attempts_show_in_entry_and_queue_health(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    commit(s, &[msg(1, SUPPLIER, &[Q_DNO])]).await;
    s.claim_queues("node", &[Q_DNO.to_owned()], 0, 1_000).await.unwrap();
    for (at, outcome) in [(100, "HTTP 503"), (200, "timeout")] {
        let failure = AttemptFailure {
            queue_id: Q_DNO.into(),
            seq: 1,
            at,
            outcome: outcome.into(),
            retry_at: at + 50,
            duration_us: 9,
            call: None,
        };
        s.record_failure(&failure).await.unwrap();
    }
    let e = &queue(s, Q_DNO).await[0];
    assert_eq!(
        (e.attempts, e.last_attempt_at, e.last_outcome.as_deref()),
        (2, Some(200), Some("timeout"))
    );
    let h = health(s, Q_DNO).await;
    assert_eq!(
        (h.failing_since, h.retry_at, h.last_outcome.as_deref()),
        (Some(100), Some(250), Some("timeout"))
    );
    assert_eq!((h.pending, h.oldest_enqueued_at), (1, Some(BASE_TIME + 1)));
    // Success clears the failure.
    s.settle(&[settlement(Q_DNO, 1, EntryState::Delivered, 300)], &[])
        .await
        .unwrap();
    let h = health(s, Q_DNO).await;
    assert_eq!(
        (h.failing_since, h.retry_at, h.last_success_at),
        (None, None, Some(300))
    );
    assert_eq!(queue(s, Q_DNO).await.len(), 0);
}

async fn dead_letters_filter_and_redrive_to_the_tail(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    commit(
        s,
        &[
            msg(1, SUPPLIER, &[Q_DNO, Q_MOP]),
            msg(2, OTHER_SUPPLIER, &[Q_DNO]),
            msg(3, SUPPLIER, &[Q_DNO]),
        ],
    )
    .await;
    s.settle(
        &[
            settlement(Q_DNO, 1, EntryState::Dead, 100),
            settlement(Q_MOP, 1, EntryState::Dead, 200),
            settlement(Q_DNO, 2, EntryState::Dead, 300),
        ],
        &[],
    )
    .await
    .unwrap();
    let all = DeadLetterFilter {
        limit: 100,
        ..Default::default()
    };
    let listed = |f: DeadLetterFilter| async move {
        s.dead_letters(&f)
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.entry.queue_id, d.entry.seq))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed(all.clone()).await,
        [(Q_DNO.into(), 1), (Q_MOP.into(), 1), (Q_DNO.into(), 2)]
    );
    let dno = DeadLetterFilter {
        recipients: Some(vec!["2000000001".into()]),
        ..all.clone()
    };
    assert_eq!(listed(dno.clone()).await, [(Q_DNO.into(), 1), (Q_DNO.into(), 2)]);
    let by_sender = DeadLetterFilter {
        sender_dip_id: Some(OTHER_SUPPLIER.into()),
        ..all.clone()
    };
    assert_eq!(listed(by_sender).await, [(Q_DNO.into(), 2)]);
    let by_time = DeadLetterFilter {
        from: Some(150),
        to: Some(300),
        ..all.clone()
    };
    assert_eq!(listed(by_time).await, [(Q_MOP.into(), 1)]);
    let one = DeadLetterFilter {
        queue_id: Some(Q_DNO.into()),
        seq: Some(2),
        ..all.clone()
    };
    let d = s.dead_letters(&one).await.unwrap().remove(0);
    assert_eq!(
        (d.interface_id.as_str(), d.sender_dip_id.as_deref()),
        ("IF-021", Some(OTHER_SUPPLIER))
    );
    let nobody = DeadLetterFilter {
        recipients: Some(vec![]),
        ..all.clone()
    };
    assert!(listed(nobody).await.is_empty());

    // Redrive: to the tail, in position order, once; what is not dead is left alone.
    let done = s
        .redrive(&[(Q_DNO.into(), 2), (Q_DNO.into(), 1), (Q_DNO.into(), 3)], 1_000)
        .await
        .unwrap();
    assert_eq!(done, [(Q_DNO.into(), 1, 4), (Q_DNO.into(), 2, 5)]);
    assert!(s.redrive(&[(Q_DNO.into(), 1)], 1_100).await.unwrap().is_empty());
    let pending = queue(s, Q_DNO).await;
    assert_eq!(seqs(&pending), [3, 4, 5]);
    assert_eq!(txns(&pending), [tx(3), tx(1), tx(2)]);
    assert_eq!(pending[1].enqueued_at, 1_000, "staleness counts from the redrive");
    assert_eq!(listed(dno).await, []);
}

async fn replay_candidates_and_recorded_replays(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let batch: Vec<NewMessage> = (1..=4).map(|n| msg(n, SUPPLIER, &[Q_DNO, Q_MOP])).collect();
    commit(s, &batch).await;
    let dno = vec!["2000000001".to_owned()];
    let c = s
        .replay_candidates("IF-021", &dno, BASE_TIME + 2, BASE_TIME + 3, 100)
        .await
        .unwrap();
    assert_eq!(
        c.iter().map(|c| c.transaction_id.clone()).collect::<Vec<_>>(),
        [tx(2), tx(3)]
    );
    assert_eq!(c[0].recipient_dip_id, "2000000001");
    assert_eq!(c[0].envelope, batch[1].envelope);
    assert!(
        s.replay_candidates("IF-022", &dno, 0, i64::MAX, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.replay_candidates("IF-021", &dno, 0, i64::MAX, 3).await.unwrap().len(),
        3
    );

    let record = ReplayRecord {
        id: "replay-1".into(),
        requested_by: "participant:2000000001".into(),
        recipient: "2000000001".into(),
        interface_id: "IF-021".into(),
        request: "{}".into(),
        dry_run: false,
        messages: 2,
        created_at: BASE_TIME + 100,
    };
    let copies: Vec<ReplayCopy> = c
        .iter()
        .map(|c| ReplayCopy {
            transaction_id: format!("R-{}", c.transaction_id),
            original_transaction_id: c.transaction_id.clone(),
            interface_id: "IF-021".into(),
            envelope: "{\"replayed\": true}".into(),
            retain_until: BASE_TIME + YEAR_MICROS,
            delivery: delivery(Q_DNO),
        })
        .collect();
    let recorded = s.record_replay(&record, &copies, NO_LIMIT, 100).await.unwrap();
    assert!(matches!(recorded, ReplayAdmission::Recorded(_)), "{recorded:?}");
    assert_eq!(s.replays(10).await.unwrap(), [record]);
    let out = s.next_outbound(Q_DNO, 4, 10).await.unwrap();
    assert_eq!(out.iter().map(|o| o.entry.seq).collect::<Vec<_>>(), [5, 6]);
    assert_eq!(out[0].entry.transaction_id, format!("R-{}", tx(2)));
    assert_eq!(out[0].entry.replay_id.as_deref(), Some("replay-1"));
    assert_eq!(out[0].envelope, "{\"replayed\": true}");
    assert!(out[0].origin.is_none(), "a copy is not a business message");
    // Copies are never candidates themselves.
    assert_eq!(
        s.replay_candidates("IF-021", &dno, 0, i64::MAX, 100)
            .await
            .unwrap()
            .len(),
        4
    );
}

async fn received_by_finds_only_messages_sent_to_the_recipient_on_the_channel(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    commit(s, &[msg(1, SUPPLIER, &[Q_DNO]), msg(2, SUPPLIER, &[Q_MOP])]).await;
    let dno = "2000000001";
    assert_eq!(s.received_by(&tx(1), "IF-021", dno).await.unwrap(), Some(BASE_TIME + 1));
    // Another recipient's message, another channel, an unknown id: all alike.
    assert_eq!(s.received_by(&tx(2), "IF-021", dno).await.unwrap(), None);
    assert_eq!(s.received_by(&tx(1), "IF-022", dno).await.unwrap(), None);
    assert_eq!(s.received_by(&tx(9), "IF-021", dno).await.unwrap(), None);
    assert_eq!(
        s.received_by(&tx(1), "IF-021", SUPPLIER).await.unwrap(),
        None,
        "the sender"
    );

    // A replay copy queued for the recipient does not make a message its own.
    let record = ReplayRecord {
        id: "replay-1".into(),
        requested_by: "operator:ops".into(),
        recipient: dno.into(),
        interface_id: "IF-021".into(),
        request: "{}".into(),
        dry_run: false,
        messages: 1,
        created_at: BASE_TIME + 100,
    };
    let copy = ReplayCopy {
        transaction_id: format!("R-{}", tx(2)),
        original_transaction_id: tx(2),
        interface_id: "IF-021".into(),
        envelope: "{}".into(),
        retain_until: BASE_TIME + YEAR_MICROS,
        delivery: delivery(Q_DNO),
    };
    s.record_replay(&record, &[copy], NO_LIMIT, 100).await.unwrap();
    assert_eq!(s.received_by(&tx(2), "IF-021", dno).await.unwrap(), None);
    assert_eq!(
        s.received_by(&format!("R-{}", tx(2)), "IF-021", dno).await.unwrap(),
        None
    );
}

async fn replay_copies_join_their_queue_a_batch_at_a_time_behind_live_messages(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    commit(s, &(1..=5).map(|n| msg(n, SUPPLIER, &[Q_DNO])).collect::<Vec<_>>()).await;
    let record = ReplayRecord {
        id: "replay-1".into(),
        requested_by: "operator:ops".into(),
        recipient: "2000000001".into(),
        interface_id: "IF-021".into(),
        request: "{}".into(),
        dry_run: false,
        messages: 5,
        created_at: BASE_TIME + 100,
    };
    let copies: Vec<ReplayCopy> = (1..=5)
        .map(|n| ReplayCopy {
            transaction_id: format!("R-{}", tx(n)),
            original_transaction_id: tx(n),
            interface_id: "IF-021".into(),
            envelope: "{}".into(),
            retain_until: BASE_TIME + YEAR_MICROS,
            delivery: delivery(Q_DNO),
        })
        .collect();
    s.record_replay(&record, &copies, NO_LIMIT, 2).await.unwrap();
    let ids = |out: &[Outbound]| out.iter().map(|o| o.entry.transaction_id.clone()).collect::<Vec<_>>();
    // The first batch joined at once, behind the five live messages.
    let out = s.next_outbound(Q_DNO, 5, 100).await.unwrap();
    assert_eq!(ids(&out), [format!("R-{}", tx(1)), format!("R-{}", tx(2))]);
    let progress = s.replay_progress("replay-1").await.unwrap();
    assert_eq!((progress.held, progress.queued, progress.total()), (3, 2, 5));
    assert_eq!(s.held_per_queue().await.unwrap(), [(Q_DNO.to_owned(), 3)]);

    // A live message arrives while the batch is in the queue: it waits behind the batch
    // only, and nothing more joins before the batch's last copy is settled.
    commit(s, &[msg(6, SUPPLIER, &[Q_DNO])]).await;
    assert!(s.release_held(None, 2, BASE_TIME + 200).await.unwrap().is_empty());
    s.settle(&[settlement(Q_DNO, 6, EntryState::Delivered, BASE_TIME + 300)], &[])
        .await
        .unwrap();
    assert!(
        s.release_held(None, 2, BASE_TIME + 301).await.unwrap().is_empty(),
        "the batch's last copy (position 7) is not settled"
    );
    s.settle(&[settlement(Q_DNO, 7, EntryState::Dead, BASE_TIME + 400)], &[])
        .await
        .unwrap();
    assert_eq!(
        s.release_held(Some(&[Q_MOP.to_owned()]), 2, BASE_TIME + 401)
            .await
            .unwrap(),
        Vec::<String>::new(),
        "another queue holds nothing"
    );
    assert_eq!(
        s.release_held(Some(&[Q_DNO.to_owned()]), 2, BASE_TIME + 402)
            .await
            .unwrap(),
        [Q_DNO]
    );
    let out = s.next_outbound(Q_DNO, 7, 100).await.unwrap();
    assert_eq!(
        ids(&out),
        [tx(6), format!("R-{}", tx(3)), format!("R-{}", tx(4))],
        "the second batch joined behind the live message"
    );
    assert_eq!(out[1].entry.replay_of.as_deref(), Some(tx(3).as_str()));
    assert_eq!(out[1].entry.enqueued_at, BASE_TIME + 402);
    let progress = s.replay_progress("replay-1").await.unwrap();
    assert_eq!(
        (
            progress.held,
            progress.queued,
            progress.delivered,
            progress.dead_lettered
        ),
        (1, 2, 1, 1)
    );
    assert!(!progress.done());
    s.settle(
        &[
            settlement(Q_DNO, 8, EntryState::Delivered, BASE_TIME + 500),
            settlement(Q_DNO, 9, EntryState::Delivered, BASE_TIME + 500),
            settlement(Q_DNO, 10, EntryState::Delivered, BASE_TIME + 500),
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(s.release_held(None, 2, BASE_TIME + 501).await.unwrap(), [Q_DNO]);
    s.settle(&[settlement(Q_DNO, 11, EntryState::Delivered, BASE_TIME + 600)], &[])
        .await
        .unwrap();
    assert!(s.release_held(None, 2, BASE_TIME + 601).await.unwrap().is_empty());
    let progress = s.replay_progress("replay-1").await.unwrap();
    assert_eq!(
        (progress.delivered, progress.dead_lettered, progress.total()),
        (4, 1, 5)
    );
    assert!(progress.done());
    assert!(s.held_per_queue().await.unwrap().is_empty());
}

/// A replay of `messages` for `recipient` at `at` (dry or not), with one copy per
/// message unless dry.
fn quota_replay(id: &str, recipient: &str, dry_run: bool, messages: i64, at: i64) -> (ReplayRecord, Vec<ReplayCopy>) {
    let record = ReplayRecord {
        id: id.into(),
        requested_by: format!("participant:{recipient}"),
        recipient: recipient.into(),
        interface_id: "IF-021".into(),
        request: "{}".into(),
        dry_run,
        messages,
        created_at: at,
    };
    let copies = (0..if dry_run { 0 } else { messages })
        .map(|i| ReplayCopy {
            transaction_id: format!("R-{id}-{i}"),
            original_transaction_id: format!("{id}-{i}"),
            interface_id: "IF-021".into(),
            envelope: "{}".into(),
            retain_until: at + YEAR_MICROS,
            delivery: delivery(&format!("{recipient}/inbox")),
        })
        .collect();
    (record, copies)
}

async fn replay_quota_counts_the_window_and_refuses_what_does_not_fit(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let (dno, mop) = ("2000000001", "2000000002");
    let quota = ReplayQuota {
        limit: 10,
        window: 1_000,
    };
    let record = |id: &str, recipient: &str, dry: bool, messages: i64, at: i64| {
        let (r, c) = quota_replay(id, recipient, dry, messages, at);
        async move { s.record_replay(&r, &c, quota, 100).await.unwrap() }
    };
    let usage = |used, frees_at| ReplayUsage { used, frees_at };
    let recorded = |used| ReplayAdmission::Recorded(usage(used, None));
    assert_eq!(s.replay_usage(dno, quota, 5_000, 3).await.unwrap(), usage(0, None));

    assert_eq!(record("r1", dno, false, 4, 5_000).await, recorded(4));
    assert_eq!(
        record("dry", dno, true, 50, 5_100).await,
        recorded(4),
        "a dry run uses nothing"
    );
    assert_eq!(record("r2", dno, false, 5, 5_200).await, recorded(9));
    assert_eq!(
        record("other", mop, false, 10, 5_250).await,
        recorded(10),
        "per recipient"
    );
    // Over the quota: refused, with when enough of it frees (r1 leaving, then r2 too).
    assert_eq!(
        record("r3", dno, false, 3, 5_300).await,
        ReplayAdmission::OverQuota(usage(9, Some(6_000)))
    );
    assert_eq!(
        s.replay_usage(dno, quota, 5_300, 7).await.unwrap(),
        usage(9, Some(6_200))
    );
    assert_eq!(
        record("r3", dno, false, 11, 5_300).await,
        ReplayAdmission::OverQuota(usage(9, None)),
        "larger than the whole quota"
    );
    // A refusal writes nothing.
    assert_eq!(s.replays(100).await.unwrap().len(), 4);
    assert_eq!(copies(s, "2000000001/inbox").await, 9);
    // The window rolls: at 6 000 the first replay has left it.
    assert_eq!(s.replay_usage(dno, quota, 6_000, 3).await.unwrap(), usage(5, None));
    assert_eq!(record("r3", dno, false, 3, 6_000).await, recorded(8));
    assert_eq!(copies(s, "2000000001/inbox").await, 12);
}

async fn concurrent_replays_cannot_both_pass_the_quota(db: Db) {
    let t = TestStore::new(db).await;
    let quota = ReplayQuota {
        limit: 4,
        window: YEAR_MICROS,
    };
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let store = t.store.clone();
            tokio::spawn(async move {
                let (r, c) = quota_replay(&format!("r{i}"), "2000000001", false, 1, BASE_TIME);
                store.record_replay(&r, &c, quota, 100).await.unwrap()
            })
        })
        .collect();
    let mut recorded = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), ReplayAdmission::Recorded(_)) {
            recorded += 1;
        }
    }
    assert_eq!(recorded, 4);
    assert_eq!(t.store.replays(100).await.unwrap().len(), 4);
    assert_eq!(copies(t.store.as_ref(), "2000000001/inbox").await, 4);
}

async fn commits_announce_their_queues(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let mut notices = s.subscribe();
    commit(s, &[msg(1, SUPPLIER, &[Q_MOP, Q_DNO])]).await;
    let deadline = std::time::Duration::from_secs(5);
    // PostgreSQL also relays its own NOTIFY (and `*` on connecting): wait for the queues.
    loop {
        let got = tokio::time::timeout(deadline, notices.recv())
            .await
            .expect("announced")
            .expect("open");
        if got.iter().any(|q| q.contains('/')) {
            let mut got = got.as_ref().clone();
            got.sort();
            assert_eq!(got, [Q_DNO, Q_MOP]);
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Portal accounts
// ---------------------------------------------------------------------------------------

fn user(id: &str, username: &str, dip_id: Option<&str>) -> UserRecord {
    UserRecord {
        id: id.into(),
        username: username.into(),
        display_name: format!("{username} name"),
        email: format!("{username}@example.com"),
        dip_id: dip_id.map(Into::into),
        roles: vec!["message_user".into(), "analyst".into()],
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        disabled: false,
        must_change_password: false,
        failed_sign_ins: 0,
        last_failed_at: None,
        last_sign_in_at: None,
        created_at: 1,
        updated_at: 1,
    }
}

async fn users_round_trip_with_unique_usernames_and_sign_in_counters(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    seed_catalogue(s, &CatalogueData::seed().unwrap()).await.unwrap();
    s.put_participant(&participant(SUP1, "AURA", ParticipantKind::Participant, &["SUP"], &[]))
        .await
        .unwrap();
    let alice = user("u1", "alice", Some(SUP1));
    assert!(s.insert_user(&alice).await.unwrap());
    assert!(
        !s.insert_user(&user("u2", "alice", None)).await.unwrap(),
        "username taken"
    );
    assert!(s.insert_user(&user("u3", "bob", None)).await.unwrap());
    assert_eq!(s.user("u1").await.unwrap(), Some(alice.clone()));
    assert_eq!(s.user_by_username("bob").await.unwrap().unwrap().dip_id, None);
    assert_eq!(
        s.users()
            .await
            .unwrap()
            .iter()
            .map(|u| u.username.as_str())
            .collect::<Vec<_>>(),
        ["alice", "bob"]
    );

    let mut changed = alice.clone();
    changed.roles = vec!["user_admin".into()];
    changed.disabled = true;
    changed.password_hash = "other".into();
    changed.updated_at = 5;
    s.update_user(&changed).await.unwrap();
    assert_eq!(s.user("u1").await.unwrap(), Some(changed.clone()));

    s.note_sign_in("u1", false, 10).await.unwrap();
    s.note_sign_in("u1", false, 11).await.unwrap();
    let failed = s.user("u1").await.unwrap().unwrap();
    assert_eq!((failed.failed_sign_ins, failed.last_failed_at), (2, Some(11)));
    s.note_sign_in("u1", true, 12).await.unwrap();
    let ok = s.user("u1").await.unwrap().unwrap();
    assert_eq!((ok.failed_sign_ins, ok.last_sign_in_at), (0, Some(12)));
}

async fn sessions_expire_and_end_per_user(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let session = |id: &str, user: Option<&str>, expires_at: i64| SessionRecord {
        id: id.into(),
        user_id: user.map(Into::into),
        data: format!("{{\"id\":\"{id}\"}}"),
        expires_at,
    };
    assert!(s.create_session(&session("a", Some("u1"), 100)).await.unwrap());
    assert!(
        !s.create_session(&session("a", None, 100)).await.unwrap(),
        "ids are unique"
    );
    s.save_session(&session("b", Some("u1"), 200)).await.unwrap();
    s.save_session(&session("c", Some("u2"), 50)).await.unwrap();
    assert_eq!(s.session("a", 99).await.unwrap(), Some(session("a", Some("u1"), 100)));
    assert_eq!(s.session("a", 100).await.unwrap(), None, "expired");
    s.save_session(&session("a", Some("u1"), 300)).await.unwrap();
    assert_eq!(
        s.session("a", 150).await.unwrap().unwrap().expires_at,
        300,
        "saving extends"
    );

    s.save_session(&session("e", Some("u1"), 400)).await.unwrap();
    assert_eq!(s.delete_user_sessions("u1", Some("e")).await.unwrap(), 2);
    assert_eq!(s.session("b", 0).await.unwrap(), None);
    assert!(s.session("e", 0).await.unwrap().is_some(), "the one kept");
    assert_eq!(s.delete_user_sessions("u1", None).await.unwrap(), 1);
    assert_eq!(s.delete_expired_sessions(60).await.unwrap(), 1);
    assert_eq!(s.session("c", 0).await.unwrap(), None);
    s.save_session(&session("d", None, 500)).await.unwrap();
    s.delete_session("d").await.unwrap();
    assert_eq!(s.session("d", 0).await.unwrap(), None);
}

async fn the_audit_log_appends_filters_pages_and_refuses_changes(db: Db) {
    let t = TestStore::new(db).await;
    let s = t.store.as_ref();
    let entry = |at: i64, actor: &str, dip: Option<&str>, action: &str, target: &str| AuditEntry {
        id: 0,
        at,
        actor: actor.into(),
        actor_dip_id: dip.map(Into::into),
        action: action.into(),
        target: target.into(),
        detail: json!({"n": at}).to_string(),
    };
    for i in 0..30 {
        let (actor, dip) = if i % 3 == 0 {
            ("aura-admin", Some(SUP1))
        } else {
            ("admin", None)
        };
        let action = if i % 2 == 0 { "user.create" } else { "channel.update" };
        s.append_audit(&entry(i, actor, dip, action, &format!("target_{i}%")))
            .await
            .unwrap();
    }
    let all = AuditFilter {
        limit: 100,
        ..Default::default()
    };
    let (rows, total) = s.audit_log(&all).await.unwrap();
    assert_eq!((rows.len(), total), (30, 30));
    assert_eq!(rows[0].at, 29, "newest first");
    assert!(rows.windows(2).all(|w| w[0].id > w[1].id));

    let page = AuditFilter {
        limit: 10,
        offset: 25,
        ..Default::default()
    };
    let (rows, total) = s.audit_log(&page).await.unwrap();
    assert_eq!((rows.len(), total), (5, 30));

    let mine = AuditFilter {
        actor_dip_id: Some(SUP1.into()),
        limit: 100,
        ..Default::default()
    };
    let (rows, total) = s.audit_log(&mine).await.unwrap();
    assert_eq!(total, 10);
    assert!(rows.iter().all(|r| r.actor == "aura-admin"));

    let channel = AuditFilter {
        action: Some("channel.".into()),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(s.audit_log(&channel).await.unwrap().1, 15);
    // LIKE wildcards in the filter are literal: "_1%" matches target_1% and target_1x%.
    let target = AuditFilter {
        target: Some("t_1%".into()),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(s.audit_log(&target).await.unwrap().1, 1);
    let underscore = AuditFilter {
        target: Some("get_".into()),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(s.audit_log(&underscore).await.unwrap().1, 30);

    // The database itself refuses to change or remove entries.
    for sql in [
        "UPDATE admin_audit SET actor = 'someone else'",
        "DELETE FROM admin_audit",
    ] {
        let refused = match db {
            Db::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&t.url).await.unwrap();
                sqlx::query(sql).execute(&pool).await.map(|_| ())
            }
            Db::Postgres => {
                let pool = sqlx::PgPool::connect(&t.url).await.unwrap();
                sqlx::query(sql).execute(&pool).await.map(|_| ())
            }
        };
        let err = refused.expect_err(sql).to_string();
        assert!(err.contains("cannot be changed"), "{sql}: {err}");
    }
    assert_eq!(s.audit_log(&all).await.unwrap().1, 30);
}
