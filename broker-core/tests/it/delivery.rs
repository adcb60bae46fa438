//! Delivery over real HTTP to real webhook servers (`broker_core::mock_recipient`), on SQLite and on
//! PostgreSQL: the choreography of spec 5.5.13 (happy path, timeout, recipient system
//! error, recipient data error reported synchronously and asynchronously), FIFO across
//! retries, staleness to dead letter with report, redrive, pull mode, replay with
//! entitlement, and the operational view of queues.

use dip_testkit::*;

use std::time::{Duration, Instant};

use broker_core::mock_recipient::{MockRecipient, Reply};
use broker_core::model::DeliveryPolicy;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

/// Retries quickly; messages go stale after `stale_secs`.
fn quick(stale_secs: u64) -> DeliveryPolicy {
    DeliveryPolicy {
        retry_initial_ms: 50,
        retry_max_ms: 200,
        stale_after_secs: stale_secs,
    }
}

/// Sends one item; returns its transaction id.
async fn send(s: &TestServer, key: &str, it: Value) -> String {
    let (status, body) = s.post(key, &json!([it])).await;
    assert_eq!(status, 202, "{body}");
    body["results"][0]["transactionID"]
        .as_str()
        .expect("transaction id")
        .to_owned()
}

/// IF-031 from SUP1 to a registration service.
fn request_to(regs: &str, reference: &str) -> Value {
    if031_from(SUP1, reference, &[regs])
}

/// A platform webhook sink for REGS_N's `default` endpoint.
async fn regs_webhook(s: &TestServer) -> MockRecipient {
    let sink = MockRecipient::start(true).await.expect("sink");
    s.endpoint(REGS_N, "default", Some(sink.url()), &[]).await;
    sink
}

/// The delivery of `tx` to `recipient` as the operator sees it.
async fn delivery_of(s: &TestServer, tx: &str, recipient: &str) -> Value {
    let (status, body) = s.get(&s.operator_key(), &format!("/api/v1/messages/{tx}")).await;
    assert_eq!(status, 200, "{body}");
    body["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .find(|d| d["recipientDIPID"] == recipient)
        .cloned()
        .unwrap_or_else(|| panic!("no delivery to {recipient} in {body}"))
}

/// Polls until the delivery of `tx` to `recipient` is in `state`.
async fn settled(s: &TestServer, tx: &str, recipient: &str, state: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let d = delivery_of(s, tx, recipient).await;
        if d["state"] == state || Instant::now() > deadline {
            assert_eq!(d["state"], state, "{d}");
            return d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The pending items of a queue as `key` sees them.
async fn peek(s: &TestServer, key: &str, dip: &str, name: &str) -> Vec<Value> {
    let (status, body) = s
        .get(key, &format!("/api/v1/participants/{dip}/queues/{name}/messages"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().expect("items").clone()
}

/// Polls SUP1's default (pull) queue until it holds `n` return-to-sender reports.
async fn reports(s: &TestServer, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let items: Vec<Value> = peek(s, &s.key(SUP1), SUP1, "default")
            .await
            .into_iter()
            .filter(|i| i["interfaceID"] == "IF-990")
            .map(|i| i["body"][0]["payload"].clone())
            .collect();
        if items.len() >= n || Instant::now() > deadline {
            assert_eq!(items.len(), n, "{items:?}");
            return items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn transaction_ids(received: &[broker_core::mock_recipient::Received]) -> Vec<String> {
    received.iter().map(|r| r.transaction_id.clone()).collect()
}

async fn happy_path(db: Db) {
    let s = TestServer::delivering(db).await;
    let sink = regs_webhook(&s).await;
    let tx = send(&s, &s.key(SUP1), request_to(REGS_N, "happy-1")).await;

    let got = sink.wait_delivered(1, WAIT).await;
    assert_eq!(transaction_ids(&got), [tx.as_str()]);
    let body = got[0].body.as_ref().expect("body");
    let items = body.as_array().expect("array body");
    assert_eq!(items.len(), 1);
    let cb = &items[0]["payload"]["CommonBlock"];
    assert_eq!(cb["D0"]["transactionID"], json!(tx));
    assert_eq!(cb["D0"]["replayIndicator"], json!(false));
    assert_eq!(cb["S1"]["senderUniqueReference"], "happy-1");
    assert_eq!(items[0]["payload"]["CustomBlock"], if031_block());
    assert_eq!(got[0].queue, format!("{REGS_N}/default"));
    assert_eq!(got[0].seq, 1);

    let d = settled(&s, &tx, REGS_N, "delivered").await;
    assert_eq!(d["attempts"], 1, "{d}");
    assert_eq!(d["lastOutcome"], "HTTP 200", "{d}");
    assert!(d["settledAt"].is_string(), "{d}");

    let (status, body) = s.get(&s.key(REGS_N), "/api/v1/queues").await;
    assert_eq!(status, 200, "{body}");
    let q = &body["queues"][0];
    assert_eq!(q["queue"], format!("{REGS_N}/default"), "{body}");
    assert_eq!(q["mode"], "webhook");
    assert_eq!(q["state"], "healthy");
    assert_eq!(q["pending"], 0);
    assert_eq!(q["lastOutcome"], "HTTP 200");
    assert_eq!(sink.overlaps(), 0);
}

async fn timeout_then_success(db: Db) {
    let s = TestServer::delivering(db).await;
    s.policy("IF-031", quick(3600)).await;
    let sink = regs_webhook(&s).await;
    // The first answer comes after the platform's 300 ms timeout.
    sink.script([Reply::Delay(Duration::from_millis(800))]);
    let tx = send(&s, &s.key(SUP1), request_to(REGS_N, "slow-1")).await;
    let d = settled(&s, &tx, REGS_N, "delivered").await;
    assert_eq!(d["attempts"], 2, "{d}");
    let delivered = sink.wait_delivered(2, WAIT).await;
    // The sink finished the slow request too, after the platform gave up on it.
    assert!(delivered.iter().all(|r| r.transaction_id == tx), "{delivered:?}");
}

async fn server_errors_retried_in_order(db: Db) {
    let s = TestServer::delivering(db).await;
    s.policy("IF-031", quick(3600)).await;
    let sink = regs_webhook(&s).await;
    sink.script([
        Reply::Status(503),
        Reply::Status(500),
        Reply::RetryAfter(429, 1),
        Reply::Status(408),
    ]);
    let key = s.key(SUP1);
    let started = Instant::now();
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(send(&s, &key, request_to(REGS_N, &format!("fifo-{i}"))).await);
    }
    let delivered = sink.wait_delivered(5, WAIT).await;
    assert_eq!(transaction_ids(&delivered), sent, "FIFO kept across retries");
    let all = sink.received();
    assert_eq!(
        all.iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 500, 429, 408, 200, 200, 200, 200, 200]
    );
    // Nothing overtook the failing head.
    assert!(all[..5].iter().all(|r| r.transaction_id == sent[0]), "{all:?}");
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 honoured");
    let d = settled(&s, &sent[0], REGS_N, "delivered").await;
    assert_eq!(d["attempts"], 5, "{d}");
    assert_eq!(sink.overlaps(), 0);
}

async fn data_error_returned_to_sender(db: Db) {
    let s = TestServer::delivering(db).await;
    let sink = regs_webhook(&s).await;
    let refusal = json!({ "errors": [{ "code": "MPAN_NOT_REGISTERED", "path": "/payload/CustomBlock/mpanCore", "message": "unknown MPAN" }] });
    sink.script([Reply::Json(422, refusal), Reply::Status(404)]);
    let bad = send(&s, &s.key(SUP1), request_to(REGS_N, "bad-1")).await;
    let bare = send(&s, &s.key(SUP1), request_to(REGS_N, "bad-2")).await;
    let good = send(&s, &s.key(SUP1), request_to(REGS_N, "good-3")).await;

    let delivered = sink.wait_delivered(1, WAIT).await;
    assert_eq!(transaction_ids(&delivered), [good.as_str()], "4xx is not retried");
    let d = settled(&s, &bad, REGS_N, "returned").await;
    assert_eq!(d["attempts"], 1, "{d}");
    assert_eq!(d["lastOutcome"], "HTTP 422", "{d}");
    settled(&s, &bare, REGS_N, "returned").await;

    let got = reports(&s, 2).await;
    let report = got
        .iter()
        .find(|r| r["CustomBlock"]["originalTransactionID"] == json!(bad))
        .expect("report on the first");
    let cb = &report["CommonBlock"];
    assert_eq!(cb["S0"]["interfaceID"], "IF-990");
    assert_eq!(cb["S0"]["eventCode"], "RECIPIENT_REJECTED");
    assert_eq!(cb["S1"]["senderRoleID"], "DIP");
    assert_eq!(cb["A0"]["primaryRecipients"], json!([SUP1]));
    assert!(cb["D0"]["transactionID"].is_string());
    let custom = &report["CustomBlock"];
    assert_eq!(custom["reason"], "RECIPIENT_REJECTED");
    assert_eq!(custom["originalSenderUniqueReference"], "bad-1");
    assert_eq!(custom["originalInterfaceID"], "IF-031");
    assert_eq!(custom["recipientDIPID"], REGS_N);
    assert_eq!(custom["httpStatus"], 422);
    assert_eq!(
        custom["errors"],
        json!([{ "code": "MPAN_NOT_REGISTERED", "path": "/payload/CustomBlock/mpanCore", "message": "unknown MPAN" }])
    );
    let other = got
        .iter()
        .find(|r| r["CustomBlock"]["originalTransactionID"] == json!(bare))
        .expect("report on the second");
    assert_eq!(other["CustomBlock"]["errors"][0]["code"], "RECIPIENT_REJECTED");
    assert_eq!(other["CustomBlock"]["httpStatus"], 404);
    // The report is a stored message of its own, visible to the operator.
    let report_tx = report["CommonBlock"]["D0"]["transactionID"].as_str().unwrap();
    let (status, body) = s.get(&s.operator_key(), &format!("/api/v1/messages/{report_tx}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["interfaceID"], "IF-990");
}

async fn asynchronous_error_report(db: Db) {
    let s = TestServer::delivering(db).await;
    let sink = regs_webhook(&s).await;
    let tx = send(&s, &s.key(SUP1), request_to(REGS_N, "async-1")).await;
    sink.wait_delivered(1, WAIT).await;
    settled(&s, &tx, REGS_N, "delivered").await;

    let path = format!("/api/v1/messages/{tx}/errors");
    let report = json!({ "errors": [{ "code": "DATA_INCONSISTENT", "path": "/payload/CustomBlock/effectiveFromDate", "message": "date before registration" }] });
    // Only a recipient of the message may report on it.
    for stranger in [SUP1, REGS_S] {
        let (status, body) = s
            .post_to(&path, &s.key(stranger), "application/json", report.to_string())
            .await;
        assert_eq!(status, 404, "{stranger}: {body}");
    }
    let (status, body) = s
        .post_to(&path, &s.key(REGS_N), "application/json", "{\"errors\": []}")
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = s
        .post_to(&path, &s.key(REGS_N), "application/json", report.to_string())
        .await;
    assert_eq!(status, 202, "{body}");
    let first = body["reportTransactionID"].clone();
    // The same report again is the same report.
    let (status, body) = s
        .post_to(&path, &s.key(REGS_N), "application/json", report.to_string())
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["reportTransactionID"], first);

    let got = reports(&s, 1).await;
    let custom = &got[0]["CustomBlock"];
    assert_eq!(custom["reason"], "RECIPIENT_REPORTED");
    assert_eq!(custom["originalTransactionID"], json!(tx));
    assert_eq!(custom["errors"][0]["code"], "DATA_INCONSISTENT");
    assert_eq!(got[0]["CommonBlock"]["D0"]["transactionID"], first);
}

async fn stale_messages_dead_lettered_and_redriven(db: Db) {
    let s = TestServer::delivering(db).await;
    s.policy("IF-031", quick(1)).await;
    let sink = regs_webhook(&s).await;
    sink.script(std::iter::repeat_n(Reply::Status(503), 1000));
    let first = send(&s, &s.key(SUP1), request_to(REGS_N, "stale-1")).await;
    let second = send(&s, &s.key(SUP1), request_to(REGS_N, "stale-2")).await;
    let d = settled(&s, &first, REGS_N, "dead").await;
    assert!(d["attempts"].as_i64().unwrap() >= 2, "retried until stale: {d}");
    settled(&s, &second, REGS_N, "dead").await;

    let got = reports(&s, 2).await;
    assert!(
        got.iter().all(|r| r["CustomBlock"]["reason"] == "DEAD_LETTER"),
        "{got:?}"
    );
    assert_eq!(got[0]["CustomBlock"]["errors"][0]["code"], "STALE");
    assert_eq!(got[0]["CustomBlock"]["lastOutcome"], "HTTP 503");

    // The recipient sees its dead letters; others do not.
    let (status, body) = s.get(&s.key(REGS_N), "/api/v1/dead-letters?interfaceID=IF-031").await;
    assert_eq!(status, 200, "{body}");
    let dead = body["deadLetters"].as_array().unwrap().clone();
    assert_eq!(
        dead.iter().map(|d| d["transactionID"].clone()).collect::<Vec<_>>(),
        [json!(first), json!(second)]
    );
    assert_eq!(dead[0]["senderUniqueReference"], "stale-1");
    assert_eq!(dead[0]["lastOutcome"], "stale after 1 s");
    let (_, body) = s.get(&s.key(REGS_S), "/api/v1/dead-letters").await;
    assert_eq!(body["deadLetters"], json!([]));
    let href = dead[0]["href"].as_str().unwrap();
    let (status, body) = s.get(&s.key(REGS_N), href).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["body"][0]["payload"]["CommonBlock"]["D0"]["transactionID"],
        json!(first)
    );
    let (status, _) = s.get(&s.key(REGS_S), href).await;
    assert_eq!(status, 404);

    let (_, body) = s.get(&s.key(REGS_N), "/api/v1/queues").await;
    let q = &body["queues"][0];
    assert_eq!(q["deadLetters"], 2, "{q}");
    assert_eq!(q["state"], "retrying", "{q}");
    assert_eq!(q["lastOutcome"], "HTTP 503", "{q}");

    // The recipient is back: redrive one by reference, the other by filter, in order.
    sink.script([]);
    let sink2 = regs_webhook(&s).await;
    s.policy("IF-031", quick(3600)).await;
    let (status, body) = s
        .post_to(
            "/api/v1/dead-letters/redrive",
            &s.key(REGS_N),
            "application/json",
            json!({ "entries": [{ "queue": dead[0]["queue"], "position": dead[0]["position"] }] }).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["redriven"][0]["position"], dead[0]["position"]);
    let (status, body) = s
        .post_to(
            "/api/v1/dead-letters/redrive",
            &s.operator_key(),
            "application/json",
            json!({ "filter": { "recipientDIPID": REGS_N, "interfaceID": "IF-031" } }).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["redriven"].as_array().unwrap().len(), 1, "{body}");
    let delivered = sink2.wait_delivered(2, WAIT).await;
    assert_eq!(transaction_ids(&delivered), [first.clone(), second.clone()]);
    assert!(delivered[0].seq > 2, "queued again at the tail: {delivered:?}");
    let (_, body) = s.get(&s.key(REGS_N), "/api/v1/dead-letters").await;
    assert_eq!(body["deadLetters"], json!([]));
    // A participant cannot redrive another's dead letters.
    let (status, _) = s
        .post_to(
            "/api/v1/dead-letters/redrive",
            &s.key(REGS_S),
            "application/json",
            json!({ "entries": [{ "queue": format!("{REGS_N}/default"), "position": 1 }] }).to_string(),
        )
        .await;
    assert_eq!(status, 404);
}

async fn stale_pull_messages_reported_without_a_pull(db: Db) {
    let s = TestServer::delivering(db).await;
    s.policy("IF-031", quick(1)).await;
    let tx = send(&s, &s.key(SUP1), request_to(REGS_N, "unpulled")).await;
    settled(&s, &tx, REGS_N, "dead").await;
    let got = reports(&s, 1).await;
    assert_eq!(got[0]["CustomBlock"]["reason"], "DEAD_LETTER");
    assert_eq!(got[0]["CustomBlock"]["originalTransactionID"], json!(tx));
    assert_eq!(got[0]["CustomBlock"]["attempts"], 0);
}

/// Polls REGS_N's queue until its last outcome satisfies `pred`; returns it.
async fn last_outcome(s: &TestServer, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, body) = s.get(&s.key(REGS_N), "/api/v1/queues").await;
        let outcome = body["queues"][0]["lastOutcome"].as_str().unwrap_or_default().to_owned();
        if pred(&outcome) || Instant::now() > deadline {
            assert!(pred(&outcome), "last outcome {outcome:?}");
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Webhooks never reach the platform's own network, however the address is written,
/// unless a test environment allow-lists it.
async fn internal_destinations_refused(db: Db) {
    let config = broker_core::delivery::DeliveryConfig {
        destinations: broker_core::delivery::destinations::Destinations::public(),
        ..fast_delivery()
    };
    let s = TestServer::delivering_with(db, config).await;
    s.policy("IF-031", quick(3600)).await;
    let sink = MockRecipient::start(true).await.expect("sink");
    let port = sink
        .url()
        .split(':')
        .nth(2)
        .and_then(|p| p.split('/').next())
        .unwrap()
        .to_owned();
    send(&s, &s.key(SUP1), request_to(REGS_N, "ssrf")).await;
    let forms = [
        (
            format!("http://127.0.0.1:{port}/hook"),
            "127.0.0.1 is not a public address",
        ),
        (
            format!("http://2130706433:{port}/hook"),
            "127.0.0.1 is not a public address",
        ),
        (
            format!("http://0x7f000001:{port}/hook"),
            "127.0.0.1 is not a public address",
        ),
        (format!("http://[::1]:{port}/hook"), "::1 is not a public address"),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/hook"),
            "is not a public address",
        ),
        (
            format!("http://10.0.0.1:{port}/hook"),
            "10.0.0.1 is not a public address",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "169.254.169.254 is not a public address",
        ),
        (
            format!("http://localhost:{port}/hook"),
            "localhost resolves to no public address",
        ),
    ];
    for (url, why) in &forms {
        s.endpoint(REGS_N, "default", Some(url.clone()), &[]).await;
        let outcome = last_outcome(&s, |o| o.contains(why)).await;
        assert!(outcome.starts_with("destination refused"), "{url}: {outcome}");
    }
    assert!(sink.received().is_empty(), "nothing reached the sink");
}

/// Webhooks present the platform's client certificate, and a recipient whose server
/// certificate does not verify is not sent anything.
async fn webhooks_over_mutual_tls(db: Db) {
    use broker_core::security::{authority::Authority, certs, tls::TlsSettings};
    let ca = Authority::generate("DEV").expect("authority");
    let platform = ca.issue_client("0000000000", 30, None).expect("platform certificate");
    let platform_key = platform.key_pem.clone().expect("key");
    let config = broker_core::delivery::DeliveryConfig {
        client_identity_pem: Some(format!("{}{platform_key}", platform.cert_pem)),
        extra_roots_pem: Some(ca.cert_pem()),
        ..fast_delivery()
    };
    let s = TestServer::delivering_with(db, config).await;
    s.policy("IF-031", quick(3600)).await;
    let tls_sink = |ca: &Authority| {
        let server = ca.issue_server(&["127.0.0.1".into()], 30).expect("server certificate");
        TlsSettings {
            cert_pem: server.cert_pem,
            key_pem: server.key_pem.expect("key"),
            client_ca_pem: ca.cert_pem(),
            require_client_cert: true,
        }
    };
    let sink = MockRecipient::start_tls(true, &tls_sink(&ca)).await.expect("sink");
    assert!(sink.url().starts_with("https://"));
    s.endpoint(REGS_N, "default", Some(sink.url()), &[]).await;
    let tx = send(&s, &s.key(SUP1), request_to(REGS_N, "mtls")).await;
    let got = sink.wait_delivered(1, WAIT).await;
    assert_eq!(transaction_ids(&got), [tx.as_str()]);
    let presented = certs::fingerprint(&certs::parse_pem(&platform.cert_pem).unwrap()[0]);
    assert_eq!(got[0].client_certificate.as_deref(), Some(presented.as_str()));

    // A recipient with a certificate from an authority nobody trusts gets nothing.
    let impostor = MockRecipient::start_tls(true, &tls_sink(&Authority::generate("DEV").unwrap()))
        .await
        .expect("sink");
    s.endpoint(REGS_N, "default", Some(impostor.url()), &[]).await;
    send(&s, &s.key(SUP1), request_to(REGS_N, "mtls-impostor")).await;
    let outcome = last_outcome(&s, |o| o.starts_with("connection failed")).await;
    assert!(
        outcome.contains("certificate") || outcome.contains("Certificate"),
        "{outcome}"
    );
    assert!(impostor.received().is_empty());
}

/// A redirect is an answer, not an instruction: it is not followed.
async fn redirects_not_followed(db: Db) {
    let s = TestServer::delivering(db).await;
    s.policy("IF-031", quick(3600)).await;
    let sink = regs_webhook(&s).await;
    let elsewhere = MockRecipient::start(true).await.expect("sink");
    sink.script(std::iter::repeat_n(Reply::Redirect(elsewhere.url()), 1000));
    send(&s, &s.key(SUP1), request_to(REGS_N, "redirect")).await;
    last_outcome(&s, |o| o == "HTTP 302 (redirects are not followed)").await;
    assert!(elsewhere.received().is_empty());
}

/// POSTs to a queue route of REGS_N's default queue (`pull?…` or `ack`) as `key`.
async fn queue_post(s: &TestServer, key: &str, route: &str, body: Value) -> (u16, Value) {
    let path = format!("/api/v1/participants/{REGS_N}/queues/default/{route}");
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    s.post_to(&path, key, "application/json", body).await
}

/// The transaction ids of pulled items.
fn pulled(body: &Value) -> Vec<Value> {
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["transactionID"].clone())
        .collect()
}

async fn pull_mode(db: Db) {
    let s = TestServer::delivering(db).await;
    let key = s.key(REGS_N);
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(send(&s, &s.key(SUP1), request_to(REGS_N, &format!("pull-{i}"))).await);
    }
    let (status, body) = queue_post(&s, &key, "pull?max=2&leaseSeconds=30", Value::Null).await;
    assert_eq!(status, 200, "{body}");
    let lease = body["leaseID"].as_str().unwrap().to_owned();
    assert_eq!(pulled(&body), [json!(sent[0]), json!(sent[1])]);
    assert_eq!(body["items"][0]["body"][0]["payload"]["CustomBlock"], if031_block());

    // While leased, nobody else reads the queue; another participant cannot touch it.
    let (status, body) = queue_post(&s, &key, "pull", Value::Null).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["errors"][0]["code"], "QUEUE_LEASED");
    let (status, _) = queue_post(&s, &s.key(REGS_S), "pull", Value::Null).await;
    assert_eq!(status, 404);

    let (status, body) = queue_post(
        &s,
        &key,
        "ack",
        json!({ "leaseID": "nope", "transactionIDs": [sent[0]] }),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["errors"][0]["code"], "LEASE_LOST");
    let (status, body) = queue_post(
        &s,
        &key,
        "ack",
        json!({ "leaseID": lease, "transactionIDs": [sent[0]] }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["acknowledged"], json!([sent[0]]));
    settled(&s, &sent[0], REGS_N, "delivered").await;

    // The same lease reads on from the head: the unacknowledged second, then the third.
    let route = format!("pull?max=5&leaseSeconds=1&leaseID={lease}");
    let (status, body) = queue_post(&s, &key, &route, Value::Null).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(pulled(&body), [json!(sent[1]), json!(sent[2])]);
    // The consumer vanishes; once the lease ends another consumer gets them again.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body) = queue_post(&s, &key, "pull?max=5", Value::Null).await;
    assert_eq!(status, 200, "{body}");
    let lease2 = body["leaseID"].as_str().unwrap().to_owned();
    assert_ne!(lease2, lease);
    assert_eq!(pulled(&body), [json!(sent[1]), json!(sent[2])]);
    let ack = json!({ "leaseID": lease2, "transactionIDs": [sent[1], sent[2]], "release": true });
    let (status, body) = queue_post(&s, &key, "ack", ack).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = queue_post(&s, &key, "pull", Value::Null).await;
    assert_eq!(status, 200, "released: {body}");
    assert_eq!(body["items"], json!([]));

    // A webhook queue cannot be pulled.
    let _sink = regs_webhook(&s).await;
    let (status, body) = queue_post(&s, &key, "pull", Value::Null).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["errors"][0]["code"], "NOT_PULL_QUEUE");
}

/// Queue routes on a queue the caller does not own, or that does not exist, answer the
/// same 404, and a pull leases nothing.
async fn unknown_queues_are_404_and_never_leased(db: Db) {
    let s = TestServer::start(db).await;
    let key = s.key(REGS_N);
    let tx = send(&s, &s.key(SUP1), request_to(REGS_N, "known")).await;
    let mut answers = Vec::new();
    for (dip, name) in [
        (REGS_N, "nonexistent"),
        (REGS_N, "default2"),
        (REGS_S, "default"),
        (REGS_S, "nonexistent"),
    ] {
        let base = format!("/api/v1/participants/{dip}/queues/{name}");
        let pull = s.post_to(&format!("{base}/pull"), &key, "application/json", "").await;
        let ack = json!({ "leaseID": "any", "transactionIDs": [tx] }).to_string();
        let ack = s.post_to(&format!("{base}/ack"), &key, "application/json", ack).await;
        let peek = s.get(&key, &format!("{base}/messages")).await;
        for (route, (status, body)) in [("pull", &pull), ("ack", &ack), ("peek", &peek)] {
            assert_eq!(*status, 404, "{route} {dip}/{name}: {body}");
            assert_eq!(body["errors"][0]["code"], "NOT_FOUND", "{body}");
        }
        answers.extend([pull, ack, peek]);
        let leased = s.broker.store().lease(&format!("{dip}/{name}")).await.unwrap();
        assert!(leased.is_none(), "{dip}/{name} leased: {leased:?}");
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    // The library refuses such names too, whoever calls it.
    use broker_core::delivery::pull::{self, PullError};
    let queue = format!("{REGS_N}/nonexistent");
    let refused = pull::pull(&s.broker, &queue, None, 1, Duration::from_secs(5)).await;
    assert!(matches!(refused, Err(PullError::UnknownQueue)), "{refused:?}");
    let refused = pull::ack(&s.broker, &queue, "any", std::slice::from_ref(&tx), false).await;
    assert!(matches!(refused, Err(PullError::UnknownQueue)), "{refused:?}");
    assert!(s.broker.store().lease(&queue).await.unwrap().is_none());
    // The queue that exists is pulled as before.
    let (status, body) = queue_post(&s, &key, "pull", Value::Null).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(pulled(&body), [json!(tx)]);
}

async fn replay(db: Db) {
    let s = TestServer::delivering(db).await;
    let sink = regs_webhook(&s).await;
    let before = chrono::Utc::now();
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(send(&s, &s.key(SUP1), request_to(REGS_N, &format!("replay-{i}"))).await);
    }
    // One for another registration service, which REGS_N is not entitled to.
    send(&s, &s.key(SUP1), request_to(REGS_S, "replay-other")).await;
    sink.wait_delivered(3, WAIT).await;
    let post = |key: String, body: Value| {
        let s = &s;
        async move {
            s.post_to("/api/v1/replays", &key, "application/json", body.to_string())
                .await
        }
    };

    let from = before.to_rfc3339();
    let (status, body) = post(
        s.key(REGS_N),
        json!({ "interfaceID": "IF-031", "fromTime": from, "dryRun": true }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messages"], 3, "{body}");
    assert_eq!(body["recipientDIPID"], REGS_N);
    assert_eq!(body["queue"], format!("{REGS_N}/default"));
    assert_eq!(body["replayTransactionIDs"], json!([]));

    // From the second message on: the earliest of start id and from-time wins.
    let late = chrono::Utc::now().to_rfc3339();
    let (status, body) = post(
        s.key(REGS_N),
        json!({ "interfaceID": "IF-031", "startTransactionID": sent[1], "fromTime": late, "endTransactionID": sent[2] }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["messages"], 2, "{body}");
    let copies: Vec<String> = body["replayTransactionIDs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(copies.iter().all(|c| c.starts_with("R-")), "{copies:?}");
    let got = sink.wait_delivered(5, WAIT).await;
    let replayed = &got[3..];
    assert_eq!(transaction_ids(replayed), copies);
    for (r, original) in replayed.iter().zip(&sent[1..]) {
        let cb = &r.body.as_ref().unwrap()[0]["payload"]["CommonBlock"];
        assert_eq!(cb["D0"]["replayIndicator"], json!(true), "{cb}");
        assert_eq!(cb["originalD0"]["transactionID"], json!(original), "{cb}");
        assert_eq!(cb["originalD0"]["replayIndicator"], json!(false));
        let corr = cb["D0"]["initialCorrelationID"].as_str().unwrap();
        assert_eq!(
            corr,
            format!("R-{}", cb["originalD0"]["initialCorrelationID"].as_str().unwrap())
        );
    }

    // Entitlement: REGS_S received none of these, the sender cannot replay for REGS_N.
    let (status, body) = post(
        s.key(REGS_S),
        json!({ "interfaceID": "IF-031", "fromTime": from, "dryRun": true }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messages"], 1, "only its own: {body}");
    let (status, body) = post(
        s.key(SUP1),
        json!({ "interfaceID": "IF-031", "fromTime": from, "recipientDIPID": REGS_N }),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = post(s.key(REGS_N), json!({ "interfaceID": "IF-031" })).await;
    assert_eq!(status, 400, "{body}");
    // A DCP replays for a participant that nominated it, and must say which.
    let (status, body) = post(s.key(DCP), json!({ "interfaceID": "IF-031", "fromTime": from })).await;
    assert_eq!(status, 400, "{body}");
    let dcp_for_other = json!({ "interfaceID": "IF-031", "fromTime": from, "recipientDIPID": REGS_N });
    let (status, body) = post(s.key(DCP), dcp_for_other).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = post(
        s.key(REGS_N),
        json!({ "interfaceID": "IF-031", "startTransactionID": "nope" }),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // Every request is recorded with who asked; others' replays are not shown.
    let (status, body) = s.get(&s.operator_key(), "/api/v1/replays").await;
    assert_eq!(status, 200, "{body}");
    let all = body["replays"].as_array().unwrap();
    assert_eq!(all.len(), 3, "{body}");
    assert!(
        all.iter()
            .any(|r| r["requestedBy"] == format!("participant:{REGS_N}") && r["dryRun"] == false)
    );
    let (_, body) = s.get(&s.key(REGS_S), "/api/v1/replays").await;
    assert_eq!(body["replays"].as_array().unwrap().len(), 1, "{body}");
}

/// Replay pacing: a replay of 12 messages with batches of 3 joins the recipient's queue
/// a batch at a time, so live messages sent just after it are delivered behind one or
/// two batches, not behind all 12 copies; the copies keep their order, all arrive, and
/// the replay history shows them delivered.
async fn replay_drains_a_batch_at_a_time_beside_live_traffic(db: Db) {
    let config = broker_core::BrokerConfig {
        replay_batch: 3,
        ..Default::default()
    };
    let mut s = TestServer::start_with(db, config).await;
    s.delivery = Some(broker_core::delivery::start(s.broker.clone(), fast_delivery()).expect("delivery"));
    let sink = regs_webhook(&s).await;
    let before = chrono::Utc::now();
    for i in 0..12 {
        send(&s, &s.key(SUP1), request_to(REGS_N, &format!("paced-{i}"))).await;
    }
    sink.wait_delivered(12, WAIT).await;
    // A slow recipient from now on: 40 ms an answer.
    sink.script((0..30).map(|_| Reply::Delay(Duration::from_millis(40))));
    let (status, body) = s
        .post_to(
            "/api/v1/replays",
            &s.key(REGS_N),
            "application/json",
            json!({ "interfaceID": "IF-031", "fromTime": before.to_rfc3339() }).to_string(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["messages"], 12, "{body}");
    assert_eq!(
        body["first"]["receivedAt"]
            .as_str()
            .map(|t| t > before.to_rfc3339().as_str()),
        Some(true),
        "{body}"
    );
    let copies: Vec<String> = body["replayTransactionIDs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let live = [
        send(&s, &s.key(SUP1), request_to(REGS_N, "live-1")).await,
        send(&s, &s.key(SUP1), request_to(REGS_N, "live-2")).await,
    ];
    let got = transaction_ids(&sink.wait_delivered(26, Duration::from_secs(30)).await[12..]);
    let replayed: Vec<String> = got.iter().filter(|t| t.starts_with("R-")).cloned().collect();
    assert_eq!(replayed, copies, "every copy, in order");
    for l in &live {
        let at = got.iter().position(|t| t == l).expect("live message delivered");
        assert!(at <= 7, "{l} waited behind {at} deliveries: {got:?}");
    }
    // The history shows the replay settled.
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, body) = s.get(&s.key(REGS_N), "/api/v1/replays").await;
        let progress = &body["replays"][0]["progress"];
        if progress["delivered"] == 12 {
            assert_eq!(
                (&progress["held"], &progress["queued"]),
                (&json!(0), &json!(0)),
                "{body}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A dry run naming a transaction id its recipient was not sent (another participant's
/// message, or its own on another channel) answers exactly as for an id that does not
/// exist: no receipt time, no different error to tell them apart.
async fn replay_ids_not_sent_to_the_recipient_are_unknown(db: Db) {
    let s = TestServer::start(db).await;
    let theirs = send(&s, &s.key(SUP1), request_to(REGS_N, "theirs")).await;
    let mine = send(&s, &s.key(SUP1), request_to(REGS_S, "mine")).await;
    let (status, record) = s.get(&s.operator_key(), &format!("/api/v1/messages/{theirs}")).await;
    assert_eq!(status, 200, "{record}");
    let received = record["transactionTimestamp"]
        .as_str()
        .expect("receipt time")
        .to_owned();
    let nonexistent = uuid::Uuid::now_v7().to_string();

    // The answer with the id itself blanked out.
    let ask = |interface: &'static str, field: &'static str, id: String| {
        let s = &s;
        async move {
            let mut body = json!({ "interfaceID": interface, "dryRun": true });
            body[field] = json!(id);
            if field == "endTransactionID" {
                body["fromTime"] = json!("2020-01-01T00:00:00Z");
            }
            let (status, answer) = s
                .post_to("/api/v1/replays", &s.key(REGS_S), "application/json", body.to_string())
                .await;
            (status, answer.to_string().replace(&id, "<id>"))
        }
    };
    for field in ["startTransactionID", "endTransactionID"] {
        let unknown = ask("IF-031", field, nonexistent.clone()).await;
        assert_eq!(unknown.0, 400, "{}", unknown.1);
        let other_recipient = ask("IF-031", field, theirs.clone()).await;
        assert_eq!(other_recipient, unknown, "{field}: another participant's message");
        assert!(!other_recipient.1.contains(&received), "{}", other_recipient.1);
        let other_channel = ask("IF-032", field, mine.clone()).await;
        assert_eq!(
            other_channel,
            ask("IF-032", field, nonexistent.clone()).await,
            "{field}"
        );
    }
    // Its own message it may name.
    let (status, body) = ask("IF-031", "startTransactionID", mine.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"messages\":1"), "{body}");
}

/// The per-recipient replay quota: every answer shows it, dry runs use none of it, a
/// replay that would exceed it is refused with 429 and queues nothing, and concurrent
/// replays cannot both pass.
async fn replay_quota(db: Db) {
    let config = broker_core::BrokerConfig {
        replay_quota: 5,
        ..Default::default()
    };
    let s = TestServer::start_with(db, config).await;
    let before = chrono::Utc::now();
    let mut sent = Vec::new();
    for i in 0..4 {
        sent.push(send(&s, &s.key(SUP1), request_to(REGS_N, &format!("quota-{i}"))).await);
    }
    send(&s, &s.key(SUP1), request_to(REGS_S, "quota-other")).await;
    let post = |key: String, body: Value| {
        let s = &s;
        async move {
            let r = s
                .http
                .post(format!("{}/api/v1/replays", s.base))
                .bearer_auth(key)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .expect("request");
            let status = r.status().as_u16();
            let retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<i64>().unwrap());
            (status, r.json::<Value>().await.unwrap(), retry_after)
        }
    };
    let quota = |used: i64| json!({ "limit": 5, "used": used, "remaining": 5 - used, "windowHours": 24 });
    let all = json!({ "interfaceID": "IF-031", "fromTime": before.to_rfc3339() });
    let dry = json!({ "interfaceID": "IF-031", "fromTime": before.to_rfc3339(), "dryRun": true });
    // Waiting for REGS_N: in its queue, or replay copies held to join it.
    let pending = || async {
        let (_, body) = s.get(&s.key(REGS_N), "/api/v1/queues").await;
        let q = body["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == "default")
            .cloned()
            .unwrap();
        q["pending"].as_i64().unwrap() + q["replayHeld"].as_i64().unwrap()
    };

    // A dry run reports the quota and uses none of it.
    let (status, body, _) = post(s.key(REGS_N), dry.clone()).await;
    assert_eq!(
        (status, &body["messages"], &body["quota"]),
        (200, &json!(4), &quota(0)),
        "{body}"
    );
    // A replay that fits uses it.
    let two = json!({ "interfaceID": "IF-031", "startTransactionID": sent[1], "endTransactionID": sent[2] });
    let (status, body, _) = post(s.key(REGS_N), two).await;
    assert_eq!(
        (status, &body["messages"], &body["quota"]),
        (202, &json!(2), &quota(2)),
        "{body}"
    );
    assert_eq!(pending().await, 6);

    // One that does not fit is refused whole: 429, nothing queued, and when it frees.
    let (status, body, retry_after) = post(s.key(REGS_N), all.clone()).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["errors"][0]["code"], "REPLAY_QUOTA_EXCEEDED", "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("3 remain"), "{message}");
    let frees_at = body["quota"]["freesAt"].as_str().expect("freesAt");
    assert!(message.contains(frees_at), "{message}");
    let frees_at = chrono::DateTime::parse_from_rfc3339(frees_at).unwrap();
    let day = chrono::TimeDelta::hours(24);
    assert!(
        frees_at > before + day && frees_at <= chrono::Utc::now() + day,
        "{body}"
    );
    let retry_after = retry_after.expect("Retry-After");
    assert!((86_000..=86_400).contains(&retry_after), "{retry_after}");
    assert_eq!(body["quota"]["used"], 2, "{body}");
    assert_eq!(body["quota"]["remaining"], 3, "{body}");
    assert_eq!(pending().await, 6, "nothing queued");
    let (status, body, _) = post(s.key(REGS_N), dry).await;
    assert_eq!((status, &body["quota"]), (200, &quota(2)), "{body}");

    // Two replays of three at once: one fits, the other is refused.
    let three = json!({ "interfaceID": "IF-031", "startTransactionID": sent[0], "endTransactionID": sent[2] });
    let (a, b) = tokio::join!(post(s.key(REGS_N), three.clone()), post(s.key(REGS_N), three));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [202, 429], "{} {}", a.1, b.1);
    let done = if a.0 == 202 { &a.1 } else { &b.1 };
    assert_eq!(done["quota"], quota(5), "{done}");
    assert_eq!(pending().await, 9);
    let (status, body, _) = post(
        s.key(REGS_N),
        json!({ "interfaceID": "IF-031", "startTransactionID": sent[3] }),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["errors"][0]["message"].as_str().unwrap().contains("0 remain"),
        "{body}"
    );

    // The quota is the recipient's: another registration service has all of its own.
    let (status, body, _) = post(s.key(REGS_S), all).await;
    assert_eq!(
        (status, &body["messages"], &body["quota"]),
        (202, &json!(1), &quota(1)),
        "{body}"
    );
}

async fn replay_keeps_obfuscation(db: Db) {
    let s = TestServer::delivering(db).await;
    let sink = MockRecipient::start(true).await.expect("sink");
    s.endpoint(SUP2, "default", Some(sink.url()), &[]).await;
    let tx = send(&s, &s.key(MS_KEY), if909("obf-1")).await;
    sink.wait_delivered(1, WAIT).await;
    let (status, body) = s
        .post_to(
            "/api/v1/replays",
            &s.key(SUP2),
            "application/json",
            json!({ "interfaceID": "IF-909", "startTransactionID": tx }).to_string(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    // SUP2's DCP may replay for it.
    let (status, body) = s
        .post_to(
            "/api/v1/replays",
            &s.key(DCP),
            "application/json",
            json!({ "interfaceID": "IF-909", "startTransactionID": tx, "recipientDIPID": SUP2, "dryRun": true })
                .to_string(),
        )
        .await;
    assert_eq!((status, &body["messages"]), (200, &json!(1)), "{body}");
    let got = sink.wait_delivered(2, WAIT).await;
    for r in &got {
        let custom = &r.body.as_ref().unwrap()[0]["payload"]["CustomBlock"];
        assert!(custom.get("meteringServiceId").is_none(), "{custom}");
        assert!(custom.get("appointmentCode").is_none(), "{custom}");
        assert_eq!(custom["supplierId"], "AURA");
    }
}

async fn operator_queue_view(db: Db) {
    let s = TestServer::delivering(db).await;
    let sink = regs_webhook(&s).await;
    s.policy("IF-031", quick(3600)).await;
    sink.script(std::iter::repeat_n(Reply::Status(500), 1000));
    send(&s, &s.key(SUP1), request_to(REGS_N, "ops-1")).await;
    send(&s, &s.key(SUP1), request_to(REGS_S, "ops-2")).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = s.get(&s.operator_key(), "/api/v1/admin/queues?state=retrying").await;
        assert_eq!(status, 200, "{body}");
        let queues = body["queues"].as_array().unwrap();
        if let Some(q) = queues.iter().find(|q| q["queue"] == format!("{REGS_N}/default")) {
            assert_eq!(q["pending"], 1, "{q}");
            assert_eq!(q["lastOutcome"], "HTTP 500", "{q}");
            assert!(q["failingSince"].is_string() && q["nextAttemptAt"].is_string(), "{q}");
            assert!(q["oldestAgeSeconds"].as_f64().unwrap() >= 0.0, "{q}");
            assert_eq!(q["leasedBy"], "delivery node", "{q}");
            break;
        }
        assert!(Instant::now() < deadline, "never retrying: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, body) = s.get(&s.operator_key(), "/api/v1/admin/queues").await;
    let pull = body["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == format!("{REGS_S}/default"))
        .cloned()
        .expect("REGS_S queue");
    assert_eq!(pull["mode"], "pull");
    assert_eq!(pull["state"], "healthy");
    assert_eq!(pull["pending"], 1);
    let (status, _) = s.get(&s.key(REGS_N), "/api/v1/admin/queues").await;
    assert_eq!(status, 403);
}

/// Two nodes on one PostgreSQL database: a directory change made through one reaches the
/// other, and the other delivers what the first accepted, woken by its commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nodes_follow_each_other() {
    let a = TestServer::start(Db::Postgres).await;
    let store_b = broker_core::store::connect(&a.db.url).await.expect("second connection");
    let broker_b = broker_core::Broker::start(store_b, Default::default())
        .await
        .expect("node b");
    // With a sweep this slow, only a commit notification can wake node b in time.
    let slow_sweep = broker_core::delivery::DeliveryConfig {
        sweep_interval: Duration::from_secs(600),
        ..fast_delivery()
    };
    let node_b = broker_core::delivery::start(broker_b.clone(), slow_sweep).expect("delivery b");
    let mut changes = broker_b.registry_changes();

    let sink = MockRecipient::start(true).await.expect("sink");
    a.endpoint(REGS_N, "default", Some(sink.url()), &[]).await;
    tokio::time::timeout(WAIT, async {
        while broker_b
            .registry()
            .endpoint(&format!("{REGS_N}/default"))
            .and_then(|e| e.url.clone())
            != Some(sink.url())
        {
            changes.changed().await.expect("registry changes");
        }
    })
    .await
    .expect("node b learns of the new webhook");

    let started = Instant::now();
    let tx = send(&a, &a.key(SUP1), request_to(REGS_N, "cross-node")).await;
    let got = sink.wait_delivered(1, WAIT).await;
    assert_eq!(transaction_ids(&got), [tx.as_str()]);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    node_b.stop().await;
}

both_stores!(
    happy_path,
    timeout_then_success,
    server_errors_retried_in_order,
    data_error_returned_to_sender,
    asynchronous_error_report,
    stale_messages_dead_lettered_and_redriven,
    pull_mode,
    unknown_queues_are_404_and_never_leased,
    stale_pull_messages_reported_without_a_pull,
    replay,
    replay_keeps_obfuscation,
    replay_quota,
    replay_drains_a_batch_at_a_time_beside_live_traffic,
    replay_ids_not_sent_to_the_recipient_are_unknown,
    operator_queue_view,
    internal_destinations_refused,
    redirects_not_followed,
    webhooks_over_mutual_tls,
);
