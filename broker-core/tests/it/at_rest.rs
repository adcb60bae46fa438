//! Encryption at rest (spec 5.2.2), on SQLite and PostgreSQL: archived messages of
//! security categories 2–4 are unreadable in the database without the data keys, yet
//! delivered, peeked and replayed in the clear; keys rotate without losing old rows.

use dip_testkit::*;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use broker_core::mock_recipient::MockRecipient;
use broker_core::security::vault::{Vault, is_sealed};
use broker_core::{Broker, BrokerConfig};
use serde_json::json;

fn key_line(id: &str) -> String {
    let key: [u8; 32] = rand::random();
    format!("{id} {}\n", base64::engine::general_purpose::STANDARD.encode(key))
}

async fn sealed_at_rest_and_clear_in_use(db: Db) {
    let keys = key_line("k1");
    let vault = Arc::new(Vault::from_text(&keys).expect("keys"));
    let config = BrokerConfig {
        vault: Some(vault),
        ..BrokerConfig::default()
    };
    let mut s = TestServer::start_with(db, config).await;
    s.delivery = Some(broker_core::delivery::start(s.broker.clone(), fast_delivery()).expect("delivery"));
    let sink = MockRecipient::start(true).await.expect("sink");
    s.endpoint(REGS_N, "default", Some(sink.url()), &[]).await;

    // IF-909 is security category 2.
    let (status, body) = s.post(&s.key(MS_KEY), &json!([if909("sealed-1")])).await;
    assert_eq!(status, 202, "{body}");
    let tx = body["results"][0]["transactionID"].as_str().unwrap().to_owned();
    let stored = s
        .broker
        .store()
        .archived_envelope(&tx)
        .await
        .unwrap()
        .expect("archived");
    assert!(is_sealed(&stored), "{stored}");
    for secret in ["KYST", "meteringServiceId", "MS-42", &tx] {
        assert!(!stored.contains(secret), "{secret} readable at rest");
    }

    // In use it is clear: the webhook gets the full payload, a supplier's queue the
    // obfuscated one.
    let got = sink.wait_delivered(1, Duration::from_secs(15)).await;
    let custom = &got[0].body.as_ref().unwrap()[0]["payload"]["CustomBlock"];
    assert_eq!(custom["meteringServiceId"], "KYST");
    let (status, peeked) = s
        .get(
            &s.key(SUP2),
            &format!("/api/v1/participants/{SUP2}/queues/default/messages"),
        )
        .await;
    assert_eq!(status, 200, "{peeked}");
    let supplier_view = &peeked["items"][0]["body"][0]["payload"]["CustomBlock"];
    assert_eq!(supplier_view["supplierId"], "AURA");
    assert!(supplier_view.get("meteringServiceId").is_none());

    // A replayed copy is sealed too, and delivered in the clear.
    let (status, replay) = s
        .post_to(
            "/api/v1/replays",
            &s.key(REGS_N),
            "application/json",
            json!({ "interfaceID": "IF-909", "startTransactionID": tx }).to_string(),
        )
        .await;
    assert_eq!(status, 202, "{replay}");
    let copy = replay["replayTransactionIDs"][0].as_str().unwrap();
    assert!(is_sealed(
        &s.broker.store().archived_envelope(copy).await.unwrap().unwrap()
    ));
    let got = sink.wait_delivered(2, Duration::from_secs(15)).await;
    assert_eq!(
        got[1].body.as_ref().unwrap()[0]["payload"]["CustomBlock"]["meteringServiceId"],
        "KYST"
    );

    // Rotation: with a newer key added (it seals from then on), old rows still open; a
    // node holding only the new key cannot read them.
    let rotated = BrokerConfig {
        vault: Some(Arc::new(
            Vault::from_text(&format!("{keys}{}", key_line("k2"))).unwrap(),
        )),
        ..BrokerConfig::default()
    };
    let node = Broker::start(s.db.store.clone(), rotated).await.expect("node");
    let plain = node.open_envelope(&tx, &stored).expect("old row opens");
    assert!(plain.contains("KYST"));
    let only_new = BrokerConfig {
        vault: Some(Arc::new(Vault::from_text(&key_line("k2")).unwrap())),
        ..BrokerConfig::default()
    };
    let stranger = Broker::start(s.db.store.clone(), only_new).await.expect("node");
    assert!(stranger.open_envelope(&tx, &stored).is_err());
    // Without any keys a sealed row is refused, not handed out.
    let keyless = Broker::start(s.db.store.clone(), BrokerConfig::default())
        .await
        .expect("node");
    assert!(keyless.open_envelope(&tx, &stored).is_err());
}

both_stores!(sealed_at_rest_and_clear_in_use);
