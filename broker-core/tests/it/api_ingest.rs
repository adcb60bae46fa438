//! The participant ingest API over real HTTP (`POST /api/v1/messages` and what it leaves
//! behind: message records, routing decisions, queues, the appointment table), on SQLite
//! and on PostgreSQL. Every case of `WIRE.md`: response codes and bodies, the validation
//! levels, authorisation, routing, obfuscation, `D0` and correlation, idempotency.

use dip_testkit::*;

use broker_core::BrokerConfig;
use broker_core::mpan::with_check_digit;
use serde_json::{Value, json};

const CB: &str = "/payload/CommonBlock";

// ---------------------------------------------------------------------------------------
// Message builders
// ---------------------------------------------------------------------------------------

/// IF-021 consumption for a settlement date from a smart data service (MPAN routing by
/// the settlement date, always to the MDS).
fn if021(sender: &str, reference: &str, mpan: &str, settlement_date: &str) -> Value {
    let periods: Vec<Value> = (1..=48)
        .map(|p| json!({ "period": p, "kWh": 0.25, "qualityFlag": "A" }))
        .collect();
    msg(
        "IF-021",
        sender,
        "SDS",
        reference,
        "UTCSettlementPeriodConsumption",
        Some(mpan),
        &[],
        json!({
            "mpanCore": mpan,
            "settlementDate": settlement_date,
            "measurementQuantityId": "AI",
            "dataServiceId": "ORBD",
            "dataSubmissionType": "O",
            "periods": periods
        }),
    )
}

/// IF-022 load shapes from a Load Shaping Service (always to every SDS and MDS).
fn if022(sender: &str, reference: &str) -> Value {
    let periods: Vec<Value> = (1..=48).map(|p| json!({ "period": p, "value": 0.02 })).collect();
    msg(
        "IF-022",
        sender,
        "LSS",
        reference,
        "LoadShapePeriodData",
        None,
        &[],
        json!({
            "settlementDate": "2026-11-26",
            "runType": "SF",
            "gspGroupId": "_A",
            "loadShapeCategory": "DOM1",
            "loadShapePeriods": periods
        }),
    )
}

/// IF-036 appointment notification from REGS_N: targeted to the service provider, MPAN
/// routing to the supplier and distributor; records the appointment.
fn if036(reference: &str, mpan: &str, role: &str, provider: &str, provider_mpid: &str, from: &str) -> Value {
    msg(
        "IF-036",
        REGS_N,
        "REGS",
        reference,
        "ServiceAppointmentNotification",
        Some(mpan),
        &[provider],
        json!({
            "mpanCore": mpan,
            "supplierId": "AURA",
            "serviceRole": role,
            "serviceProviderId": provider_mpid,
            "serviceProviderDIPID": provider,
            "effectiveFromDate": from,
            "contractReference": "CR-77",
            "marketSegment": "S"
        }),
    )
}

/// IF-013 MDS defaults applied (MPAN routing to SUP and data services by settlement date).
fn if013(reference: &str, mpan: &str, settlement_date: &str) -> Value {
    msg(
        "IF-013",
        MDS,
        "MDS",
        reference,
        "MDSDefaultsApplied",
        Some(mpan),
        &[],
        json!({
            "mpanCore": mpan,
            "settlementDate": settlement_date,
            "runType": "SF",
            "defaultReasonCode": "MIS",
            "defaultMethod": "LSH",
            "defaultedPeriods": [1, 2],
            "supplierId": "AURA"
        }),
    )
}

/// IF-006 MTD notification from REGS_N (MPAN routing only).
fn if006(reference: &str, mpan: &str) -> Value {
    msg(
        "IF-006",
        REGS_N,
        "REGS",
        reference,
        "MTDUpdateNotification",
        Some(mpan),
        &[],
        json!({
            "mpanCore": mpan,
            "meterSerialNumber": "M123",
            "meterType": "S2",
            "mtdChangeReason": "INS",
            "mtdEffectiveFromDate": "2025-01-01",
            "registerIds": ["1"],
            "serviceProviderId": "KYST"
        }),
    )
}

/// A valid MPAN core that the demo appointment table does not know.
fn fresh_mpan(twelve: &str) -> String {
    with_check_digit(twelve).expect("twelve digits")
}

// ---------------------------------------------------------------------------------------
// Response helpers
// ---------------------------------------------------------------------------------------

fn results(body: &Value) -> &[Value] {
    body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {body}"))
}

/// `(code, path)` of each error of an item result.
fn errors_of(result: &Value) -> Vec<(String, String)> {
    result["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors list in {result}"))
        .iter()
        .map(|e| {
            assert!(
                e["message"].as_str().is_some_and(|m| !m.is_empty()),
                "error without message: {e}"
            );
            (
                e["code"].as_str().expect("code").to_owned(),
                e["path"].as_str().expect("path").to_owned(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(c, p)| ((*c).to_owned(), (*p).to_owned()))
        .collect()
}

/// Asserts the documented shape of an item result.
fn assert_result_shape(r: &Value, index: usize) {
    let mut keys: Vec<&str> = r
        .as_object()
        .expect("result object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "errors",
            "index",
            "initialCorrelationID",
            "senderUniqueReference",
            "status",
            "transactionID"
        ],
        "{r}"
    );
    assert_eq!(r["index"], json!(index), "{r}");
}

/// Asserts an accepted item; returns its transaction id.
fn accepted(r: &Value) -> String {
    assert_eq!(r["status"], "accepted", "{r}");
    assert_eq!(r["errors"], json!([]), "{r}");
    r["transactionID"]
        .as_str()
        .unwrap_or_else(|| panic!("no transactionID in {r}"))
        .to_owned()
}

/// Asserts a rejected item with exactly these `(code, path)` errors.
fn rejected(r: &Value, expected: &[(&str, &str)]) {
    assert_eq!(r["status"], "rejected", "{r}");
    assert_eq!(r["transactionID"], Value::Null, "{r}");
    assert_eq!(r["initialCorrelationID"], Value::Null, "{r}");
    assert_eq!(errors_of(r), pairs(expected), "{r}");
}

/// The single request-level error of a failed request.
fn request_error(body: &Value) -> (String, String) {
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {body}"));
    assert_eq!(errors.len(), 1, "{body}");
    (
        errors[0]["code"].as_str().expect("code").to_owned(),
        errors[0]["path"].as_str().expect("path").to_owned(),
    )
}

/// Posts items, expects 202 with every item accepted; returns the results.
async fn send_ok(s: &TestServer, key: &str, items: Value) -> Vec<Value> {
    let (status, body) = s.post(key, &items).await;
    assert_eq!(status, 202, "{body}");
    let rs = results(&body).to_vec();
    for (i, r) in rs.iter().enumerate() {
        assert_result_shape(r, i);
        accepted(r);
    }
    rs
}

/// Sends one item as `key`; returns its transaction id.
async fn send_one(s: &TestServer, key: &str, it: Value) -> String {
    accepted(&send_ok(s, key, json!([it])).await[0])
}

/// `(recipient, role, queue)` of a message's deliveries, sorted, read as `key`.
async fn deliveries(s: &TestServer, key: &str, tx: &str) -> Vec<(String, String, String)> {
    let (status, body) = s.get(key, &format!("/api/v1/messages/{tx}")).await;
    assert_eq!(status, 200, "{body}");
    let mut out: Vec<(String, String, String)> = body["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .map(|d| {
            assert_eq!(d["state"], "pending", "{d}");
            (
                d["recipientDIPID"].as_str().unwrap().to_owned(),
                d["role"].as_str().unwrap().to_owned(),
                d["queue"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn triples(expected: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect();
    v.sort();
    v
}

/// The routing decision of a message, read as `key`.
async fn decision(s: &TestServer, key: &str, tx: &str) -> Value {
    let (status, body) = s.get(key, &format!("/api/v1/messages/{tx}/routing")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["transactionID"], json!(tx));
    body["decision"].clone()
}

/// The decision's entry for one recipient.
fn recipient<'a>(decision: &'a Value, dip: &str) -> &'a Value {
    decision["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .find(|r| r["dipID"] == dip)
        .unwrap_or_else(|| panic!("{dip} is not a recipient in {decision}"))
}

/// The pending items of a queue as its owner (or `key`) sees them.
async fn peek(s: &TestServer, key: &str, dip: &str, name: &str) -> Vec<Value> {
    let (status, body) = s
        .get(key, &format!("/api/v1/participants/{dip}/queues/{name}/messages"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["queue"], json!(format!("{dip}/{name}")));
    body["items"].as_array().expect("items").clone()
}

/// Transaction ids of a queue's pending items, in queue order.
async fn queued(s: &TestServer, dip: &str, name: &str) -> Vec<String> {
    peek(s, &s.key(dip), dip, name)
        .await
        .iter()
        .map(|i| i["transactionID"].as_str().unwrap().to_owned())
        .collect()
}

/// The payload of a peeked queue item.
fn payload(queue_item: &Value) -> &Value {
    let body = queue_item["body"].as_array().expect("body array");
    assert_eq!(body.len(), 1, "{queue_item}");
    &body[0]["payload"]
}

async fn history(s: &TestServer, mpan: &str) -> Vec<Value> {
    let (status, body) = s
        .get(&s.operator_key(), &format!("/api/v1/admin/appointments/{mpan}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mpan"], json!(mpan));
    body["appointments"].as_array().expect("appointments").clone()
}

async fn load_appointments(
    s: &TestServer,
    key: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    s.post_to("/api/v1/admin/appointments", key, content_type, body).await
}

// ---------------------------------------------------------------------------------------
// 1. Response cases of WIRE.md
// ---------------------------------------------------------------------------------------

async fn all_accepted_is_202_with_documented_results(db: Db) {
    let s = TestServer::start(db).await;
    let (status, body) = s.post(&s.key(SUP1), &json!([if031("r-1"), if031("r-2")])).await;
    assert_eq!(status, 202, "{body}");
    let rs = results(&body);
    assert_eq!(rs.len(), 2);
    for (i, r) in rs.iter().enumerate() {
        assert_result_shape(r, i);
        assert_eq!(r["senderUniqueReference"], json!(format!("r-{}", i + 1)));
        let tx = accepted(r);
        assert!(uuid::Uuid::parse_str(&tx).is_ok(), "{tx}");
        assert!(r["initialCorrelationID"].as_str().is_some_and(|c| !c.is_empty()), "{r}");
    }
    assert_ne!(rs[0]["transactionID"], rs[1]["transactionID"]);
    // The stored message is what was accepted.
    let tx = rs[0]["transactionID"].as_str().unwrap();
    let (status, m) = s.get(&s.key(SUP1), &format!("/api/v1/messages/{tx}")).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["transactionID"], json!(tx));
    assert_eq!(m["interfaceID"], "IF-031");
    assert_eq!(m["senderDIPID"], SUP1);
    assert_eq!(m["senderRoleID"], "SUP");
    assert_eq!(m["senderUniqueReference"], "r-1");
    assert_eq!(m["MPANCore"], MPAN_SMART);
    assert_eq!(m["initialCorrelationID"], rs[0]["initialCorrelationID"]);
    assert_eq!(m["DIPConnectionProviderID"], Value::Null);
}

async fn mixed_is_207(db: Db) {
    let s = TestServer::start(db).await;
    let mut bad = if031("bad");
    set(&mut bad, "/payload/CustomBlock/serviceRole", json!("SUP"));
    let (status, body) = s.post(&s.key(SUP1), &json!([if031("good"), bad])).await;
    assert_eq!(status, 207, "{body}");
    let rs = results(&body);
    assert_result_shape(&rs[0], 0);
    assert_result_shape(&rs[1], 1);
    accepted(&rs[0]);
    assert_eq!(rs[1]["senderUniqueReference"], "bad");
    rejected(&rs[1], &[("SCHEMA_VIOLATION", "/payload/CustomBlock/serviceRole")]);
}

async fn none_accepted_is_400(db: Db) {
    let s = TestServer::start(db).await;
    let mut env = if031("a");
    set(&mut env, "/payload/CommonBlock/S1/environmentTag", json!("PROD"));
    let mut unknown = if031("b");
    set(&mut unknown, "/payload/CommonBlock/S0/interfaceID", json!("IF-999"));
    let (status, body) = s.post(&s.key(SUP1), &json!([env, unknown])).await;
    assert_eq!(status, 400, "{body}");
    let rs = results(&body);
    rejected(
        &rs[0],
        &[("ENVIRONMENT_MISMATCH", "/payload/CommonBlock/S1/environmentTag")],
    );
    rejected(&rs[1], &[("UNKNOWN_INTERFACE", "/payload/CommonBlock/S0/interfaceID")]);

    // Authorisation failures mixed with validation failures are a 400, not a 403.
    let mut other = if031("c");
    set(&mut other, "/payload/CommonBlock/S1/senderDIPID", json!(SUP2));
    let mut env = if031("d");
    set(&mut env, "/payload/CommonBlock/S1/environmentTag", json!("SIT"));
    let (status, body) = s.post(&s.key(SUP1), &json!([other, env])).await;
    assert_eq!(status, 400, "{body}");
    rejected(
        &results(&body)[0],
        &[("SENDER_MISMATCH", "/payload/CommonBlock/S1/senderDIPID")],
    );
    rejected(
        &results(&body)[1],
        &[("ENVIRONMENT_MISMATCH", "/payload/CommonBlock/S1/environmentTag")],
    );
    assert!(queued(&s, REGS_N, "default").await.is_empty());
}

async fn unauthenticated_is_401(db: Db) {
    let s = TestServer::start(db).await;
    let body = serde_json::to_vec(&json!([if031("r")])).unwrap();
    let url = format!("{}/api/v1/messages", s.base);

    // No Authorization header.
    let r = s
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(request_error(&r.json().await.unwrap()).0, "UNAUTHENTICATED");

    // Another scheme.
    let r = s
        .http
        .post(&url)
        .header("authorization", format!("Basic {}", s.key(SUP1)))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(request_error(&r.json().await.unwrap()).0, "UNAUTHENTICATED");

    let real = s.key(SUP1);
    let (prefix, secret) = real.rsplit_once('_').unwrap();
    let wrong_secret = format!("{prefix}_{}", secret.chars().rev().collect::<String>());
    for key in [
        "dip_zz99zz99zz99_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", // well-formed, unknown
        "not-a-key",                                         // malformed
        "dip__",                                             // malformed
        wrong_secret.as_str(),                               // known id, wrong secret
    ] {
        let (status, body) = s.post_raw(key, body.clone()).await;
        assert_eq!(status, 401, "{key}: {body}");
        assert_eq!(request_error(&body).0, "UNAUTHENTICATED", "{key}");
    }
    assert!(queued(&s, REGS_N, "default").await.is_empty());
}

async fn operator_key_cannot_send_403(db: Db) {
    let s = TestServer::start(db).await;
    let (status, body) = s.post(&s.operator_key(), &json!([if031("r")])).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(request_error(&body).0, "FORBIDDEN");
    assert!(queued(&s, REGS_N, "default").await.is_empty());
}

async fn authorisation_only_rejections_are_403(db: Db) {
    let s = TestServer::start(db).await;
    let mut as_other = if031("a");
    set(&mut as_other, "/payload/CommonBlock/S1/senderDIPID", json!(SUP2));
    let mut wrong_role = if031("b");
    set(&mut wrong_role, "/payload/CommonBlock/S1/senderRoleID", json!("REGS"));
    let (status, body) = s.post(&s.key(SUP1), &json!([as_other, wrong_role])).await;
    assert_eq!(status, 403, "{body}");
    let rs = results(&body);
    assert_result_shape(&rs[0], 0);
    rejected(&rs[0], &[("SENDER_MISMATCH", "/payload/CommonBlock/S1/senderDIPID")]);
    rejected(
        &rs[1],
        &[
            ("ROLE_NOT_HELD", "/payload/CommonBlock/S1/senderRoleID"),
            ("ROLE_NOT_PERMITTED", "/payload/CommonBlock/S1/senderRoleID"),
        ],
    );
}

async fn too_many_items_413(db: Db) {
    let s = TestServer::start_with(
        db,
        BrokerConfig {
            max_items: 3,
            ..Default::default()
        },
    )
    .await;
    let (status, body) = s
        .post(&s.key(SUP1), &json!([if031("a"), if031("b"), if031("c"), if031("d")]))
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(request_error(&body).0, "TOO_MANY_ITEMS");
    assert!(
        queued(&s, REGS_N, "default").await.is_empty(),
        "nothing of a refused request is kept"
    );
    // At the limit is fine.
    send_ok(&s, &s.key(SUP1), json!([if031("a"), if031("b"), if031("c")])).await;
    assert_eq!(queued(&s, REGS_N, "default").await.len(), 3);
}

async fn body_too_large_413(db: Db) {
    let s = TestServer::start_with(
        db,
        BrokerConfig {
            max_body_bytes: 2048,
            ..Default::default()
        },
    )
    .await;
    let small = serde_json::to_vec(&json!([if031("a")])).unwrap();
    assert!(small.len() < 2048);
    let large = serde_json::to_vec(&json!([if031("b"), if031("c"), if031("d"), if031("e"), if031("f")])).unwrap();
    assert!(large.len() > 2048);
    let (status, body) = s.post_raw(&s.key(SUP1), large).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(request_error(&body).0, "PAYLOAD_TOO_LARGE");
    let (status, body) = s.post_raw(&s.key(SUP1), small).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(queued(&s, REGS_N, "default").await.len(), 1);
}

async fn large_request_within_default_limits_accepted(db: Db) {
    let s = TestServer::start(db).await;
    let items: Vec<Value> = (0..800)
        .map(|i| if021(SDS_O, &format!("bulk-{i}"), MPAN_COS, "2024-10-14"))
        .collect();
    let body = serde_json::to_vec(&items).unwrap();
    assert!(body.len() > 2 * 1024 * 1024, "{} bytes", body.len());
    let (status, answer) = s.post_raw(&s.key(SDS_O), body).await;
    assert_eq!(status, 202, "{answer}");
    let rs = results(&answer);
    assert_eq!(rs.len(), 800);
    assert!(rs.iter().all(|r| r["status"] == "accepted"));
    assert_eq!(rs[799]["index"], 799);
    assert_eq!(rs[799]["senderUniqueReference"], "bulk-799");
    let (status, body) = s.get(&s.key(SUP1), "/api/v1/queues").await;
    assert_eq!(status, 200, "{body}");
    let default = body["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "1000000001/default")
        .expect("queue");
    assert_eq!(default["pending"], 800);
}

async fn single_item_object_accepted(db: Db) {
    let s = TestServer::start(db).await;
    let (status, body) = s.post(&s.key(SUP1), &if031("solo")).await;
    assert_eq!(status, 202, "{body}");
    let rs = results(&body);
    assert_eq!(rs.len(), 1);
    assert_result_shape(&rs[0], 0);
    assert_eq!(rs[0]["senderUniqueReference"], "solo");
    let tx = accepted(&rs[0]);
    assert_eq!(queued(&s, REGS_N, "default").await, [tx]);
}

async fn empty_and_non_json_requests_400(db: Db) {
    let s = TestServer::start(db).await;
    let key = s.key(SUP1);
    let (status, body) = s.post(&key, &json!([])).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(request_error(&body), ("EMPTY_REQUEST".to_owned(), String::new()));

    for raw in ["this is not json", "[{\"payload\": ", ""] {
        let (status, body) = s.post_raw(&key, raw).await;
        assert_eq!(status, 400, "{raw}: {body}");
        assert_eq!(request_error(&body).0, "INVALID_JSON", "{raw}");
    }
    for raw in ["42", "\"text\"", "null"] {
        let (status, body) = s.post_raw(&key, raw).await;
        assert_eq!(status, 400, "{raw}: {body}");
        assert_eq!(request_error(&body).0, "INVALID_REQUEST", "{raw}");
    }
}

// ---------------------------------------------------------------------------------------
// 2. Validation levels
// ---------------------------------------------------------------------------------------

/// Posts one item and asserts it is rejected with 400 and exactly these errors.
async fn expect_invalid(s: &TestServer, it: Value, expected: &[(&str, &str)]) {
    let (status, body) = s.post(&s.key(SUP1), &json!([it])).await;
    assert_eq!(status, 400, "{expected:?}: {body}");
    let rs = results(&body);
    assert_result_shape(&rs[0], 0);
    rejected(&rs[0], expected);
}

fn without(mut it: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    it.pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(key)
        .unwrap_or_else(|| panic!("no {pointer}"));
    it
}

fn with(mut it: Value, pointer: &str, value: Value) -> Value {
    set(&mut it, pointer, value);
    it
}

/// POSTs `body` to `path` as `key`: status and the raw answer text.
async fn post_text(s: &TestServer, path: &str, key: &str, body: Vec<u8>) -> (u16, String) {
    let r = s
        .http
        .post(format!("{}{path}", s.base))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.text().await.expect("answer"))
}

/// A 15 MiB bad value is not echoed back: the answer stays small and still names the
/// field and the rule it breaks (in ASCII and in multi-byte text, cut on a character).
async fn validation_errors_do_not_echo_large_values(db: Db) {
    let s = TestServer::start(db).await;
    let key = s.key(SUP1);
    let size = 15 * 1024 * 1024;
    let small = |status: u16, answer: &str| {
        assert!(
            answer.len() < 4096,
            "{status}: {} bytes: {}…",
            answer.len(),
            &answer[..200.min(answer.len())]
        );
        serde_json::from_str::<Value>(answer).expect("JSON answer")
    };
    for huge in ["x".repeat(size), "é".repeat(size / 2)] {
        let bad = with(if031("huge"), "/payload/CustomBlock/contractReference", json!(huge));
        let (status, answer) =
            post_text(&s, "/api/v1/messages", &key, serde_json::to_vec(&json!([bad])).unwrap()).await;
        let body = small(status, &answer);
        assert_eq!(status, 400, "{body}");
        let error = &results(&body)[0]["errors"][0];
        assert_eq!(error["code"], "SCHEMA_VIOLATION", "{body}");
        assert_eq!(error["path"], "/payload/CustomBlock/contractReference", "{body}");
        assert!(
            error["message"].as_str().unwrap().contains("longer than 10 characters"),
            "{body}"
        );
    }
    // Header fields echoed in messages, and the reference echoed in the result.
    for (pointer, code) in [
        ("/payload/CommonBlock/S1/environmentTag", "ENVIRONMENT_MISMATCH"),
        ("/payload/CommonBlock/S0/interfaceID", "UNKNOWN_INTERFACE"),
        ("/payload/CommonBlock/S1/senderRoleID", "INVALID_FIELD"),
        ("/payload/CommonBlock/S1/senderUniqueReference", "INVALID_FIELD"),
    ] {
        let bad = with(if031("huge"), pointer, json!("Z".repeat(size)));
        let (status, answer) =
            post_text(&s, "/api/v1/messages", &key, serde_json::to_vec(&json!([bad])).unwrap()).await;
        let body = small(status, &answer);
        assert_eq!(status, 400, "{body}");
        assert!(
            errors_of(&results(&body)[0]).contains(&(code.into(), pointer.into())),
            "{body}"
        );
    }
    // Other JSON routes: a value echoed by the route, and by the body parser.
    for body in [
        json!({ "interfaceID": "Z".repeat(size), "fromTime": "2024-01-01T00:00:00Z" }),
        json!({ "interfaceID": "IF-031", "dryRun": "Z".repeat(size) }),
        Value::Object(
            [
                ("interfaceID".to_owned(), json!("IF-031")),
                ("Z".repeat(size), json!(1)),
            ]
            .into_iter()
            .collect(),
        ),
    ] {
        let (status, answer) = post_text(&s, "/api/v1/replays", &key, serde_json::to_vec(&body).unwrap()).await;
        let body = small(status, &answer);
        assert_eq!(status, 400, "{body}");
    }
}

/// A NUL character in any JSON string (value or key) is refused at the door with its
/// path, on either store, before anything is stored; the body is otherwise fine.
async fn nul_characters_refused_with_their_path(db: Db) {
    let s = TestServer::start(db).await;
    let key = s.key(SUP1);
    let cases = [
        (
            with(
                if031("nul-1"),
                "/payload/CommonBlock/S1/senderUniqueReference",
                json!("nul\u{0}-1"),
            ),
            "/0/payload/CommonBlock/S1/senderUniqueReference",
        ),
        (
            with(
                if031("nul-1"),
                "/payload/CustomBlock/contractReference",
                json!("C\u{0}1"),
            ),
            "/0/payload/CustomBlock/contractReference",
        ),
        (
            with(if031("nul-1"), "/payload/CustomBlock/a~b\u{0}c", json!(1)),
            "/0/payload/CustomBlock/a~0b\u{0}c",
        ),
    ];
    for (bad, path) in cases {
        let (status, body) = s.post(&key, &json!([bad])).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(request_error(&body), ("NUL_CHARACTER".into(), path.into()), "{body}");
    }
    // Nothing was stored: the reference is still free, and a clean message goes through.
    let store = s.broker.store();
    assert!(store.original(SUP1, "nul-1").await.unwrap().is_none());
    let regs_queue = format!("{REGS_N}/default");
    assert!(store.pending_entries(&regs_queue, 0, 10).await.unwrap().is_empty());
    let (status, body) = s.post(&key, &json!([if031("nul-1")])).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(store.pending_entries(&regs_queue, 0, 10).await.unwrap().len(), 1);

    // Every JSON route: replay, the appointment load.
    let (status, body) = s
        .post_to(
            "/api/v1/replays",
            &key,
            "application/json",
            json!({ "interfaceID": "IF-031\u{0}", "fromTime": "2024-01-01T00:00:00Z" }).to_string(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(request_error(&body), ("NUL_CHARACTER".into(), "/interfaceID".into()));
    let rows = json!([{ "mpan": MPAN_SMART, "role": "SUP", "dipID": SUP3, "effectiveFrom": "2024-01-01\u{0}" }]);
    let (status, body) = s
        .post_to(
            "/api/v1/admin/appointments",
            &s.operator_key(),
            "application/json",
            rows.to_string(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        request_error(&body),
        ("NUL_CHARACTER".into(), "/0/effectiveFrom".into())
    );
}

async fn missing_fields(db: Db) {
    let s = TestServer::start(db).await;
    expect_invalid(&s, json!({ "notPayload": {} }), &[("MISSING_FIELD", "/payload")]).await;
    expect_invalid(
        &s,
        json!({ "payload": { "CustomBlock": if031_block() } }),
        &[("MISSING_FIELD", "/payload/CommonBlock")],
    )
    .await;
    expect_invalid(
        &s,
        with(if031("r"), "/payload/CommonBlock", Value::Null),
        &[("MISSING_FIELD", "/payload/CommonBlock")],
    )
    .await;
    // Absent sections and fields; IF-031 also needs an MPAN.
    let absent = ["S1", "S0", "S0/schemaVersion", "S0/eventCode", "M0/MPANCore"]
        .into_iter()
        .map(|f| format!("{CB}/{f}"))
        .chain(["senderDIPID", "senderRoleID", "senderTimestamp", "environmentTag"].map(|f| format!("{CB}/S1/{f}")));
    for path in absent {
        expect_invalid(&s, without(if031("r"), &path), &[("MISSING_FIELD", &path)]).await;
    }
    // Empty or null counts as absent.
    for (field, value) in [("S1/senderDIPID", json!("")), ("S0/interfaceID", Value::Null)] {
        let path = format!("{CB}/{field}");
        expect_invalid(&s, with(if031("r"), &path, value), &[("MISSING_FIELD", &path)]).await;
    }

    // Without a reference the result cannot echo it.
    let (status, body) = s
        .post(
            &s.key(SUP1),
            &json!([without(if031("r"), "/payload/CommonBlock/S1/senderUniqueReference")]),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let r = &results(&body)[0];
    assert_eq!(r["senderUniqueReference"], Value::Null);
    rejected(r, &[("MISSING_FIELD", "/payload/CommonBlock/S1/senderUniqueReference")]);
}

async fn invalid_field_types(db: Db) {
    let s = TestServer::start(db).await;
    let cases: Vec<(&str, Value)> = vec![
        ("/payload/CommonBlock", json!("CommonBlock")),
        ("/payload/CommonBlock/S0", json!(["IF-031"])),
        ("/payload/CommonBlock/S1/senderDIPID", json!(1_000_000_001_u64)),
        ("/payload/CommonBlock/S1/senderDIPID", json!("12345")),
        ("/payload/CommonBlock/S1/senderTimestamp", json!("27/11/2026 09:00")),
        ("/payload/CommonBlock/S1/senderTimestamp", json!("2026-11-27T09:00:00")),
        ("/payload/CommonBlock/S1/senderRoleID", json!("XYZ")),
        ("/payload/CommonBlock/S1/senderUniqueReference", json!(17)),
        ("/payload/CommonBlock/S1/senderUniqueReference", json!("x".repeat(201))),
        ("/payload/CommonBlock/S1/DIPConnectionProviderID", json!("DCP")),
        ("/payload/CommonBlock/S0/eventCode", json!(7)),
        ("/payload/CommonBlock/S0/eventCode", json!([])),
        ("/payload/CommonBlock/A0/primaryRecipients", json!(REGS_N)),
        ("/payload/CommonBlock/M0/MPANCore", json!(1_600_001_000_020_u64)),
    ];
    for (path, value) in cases {
        expect_invalid(&s, with(if031("r"), path, value), &[("INVALID_FIELD", path)]).await;
    }
    expect_invalid(
        &s,
        with(
            if031("r"),
            "/payload/CommonBlock/A0/primaryRecipients",
            json!([REGS_N, "11"]),
        ),
        &[("INVALID_FIELD", "/payload/CommonBlock/A0/primaryRecipients/1")],
    )
    .await;
    assert!(queued(&s, REGS_N, "default").await.is_empty());
}

async fn channel_level_checks(db: Db) {
    let s = TestServer::start(db).await;
    expect_invalid(
        &s,
        with(if031("r"), "/payload/CommonBlock/S0/interfaceID", json!("IF-999")),
        &[("UNKNOWN_INTERFACE", "/payload/CommonBlock/S0/interfaceID")],
    )
    .await;
    expect_invalid(
        &s,
        with(if031("r"), "/payload/CommonBlock/S0/schemaVersion", json!("002")),
        &[("UNSUPPORTED_SCHEMA_VERSION", "/payload/CommonBlock/S0/schemaVersion")],
    )
    .await;
    expect_invalid(
        &s,
        with(if031("r"), "/payload/CommonBlock/S0/eventCode", json!("MSAppSPRequest")),
        &[("UNKNOWN_EVENT_CODE", "/payload/CommonBlock/S0/eventCode")],
    )
    .await;
    expect_invalid(
        &s,
        with(
            if031("r"),
            "/payload/CommonBlock/S0/eventCode",
            json!(["SupplierServiceAppointmentRequest", "Bogus"]),
        ),
        &[("UNKNOWN_EVENT_CODE", "/payload/CommonBlock/S0/eventCode/1")],
    )
    .await;
    expect_invalid(
        &s,
        with(if031("r"), "/payload/CommonBlock/S1/environmentTag", json!("PROD")),
        &[("ENVIRONMENT_MISMATCH", "/payload/CommonBlock/S1/environmentTag")],
    )
    .await;
    // 1600001000020 with the last digit changed.
    expect_invalid(
        &s,
        with(if031("r"), "/payload/CommonBlock/M0/MPANCore", json!("1600001000021")),
        &[("INVALID_MPAN", "/payload/CommonBlock/M0/MPANCore")],
    )
    .await;
    expect_invalid(
        &s,
        with(if031("r"), "/payload/CommonBlock/M0/MPANCore", json!("160000100002")),
        &[("INVALID_MPAN", "/payload/CommonBlock/M0/MPANCore")],
    )
    .await;
    // Several problems of the header are all reported.
    let mut many = with(if031("r"), "/payload/CommonBlock/S1/environmentTag", json!("PROD"));
    set(&mut many, "/payload/CommonBlock/M0/MPANCore", json!("1600001000021"));
    expect_invalid(
        &s,
        many,
        &[
            ("ENVIRONMENT_MISMATCH", "/payload/CommonBlock/S1/environmentTag"),
            ("INVALID_MPAN", "/payload/CommonBlock/M0/MPANCore"),
        ],
    )
    .await;
    // A channel that accepts any event code.
    let tx = send_one(
        &s,
        &s.key(MS_KEY),
        with(
            if909("any"),
            "/payload/CommonBlock/S0/eventCode",
            json!("WhateverHappened"),
        ),
    )
    .await;
    assert!(!tx.is_empty());
}

async fn event_code_forms_accepted(db: Db) {
    let s = TestServer::start(db).await;
    let key = s.key(SUP1);
    for (i, code) in [
        json!("SupplierServiceAppointmentRequest"),
        json!("[SupplierServiceAppointmentRequest]"),
        json!(["SupplierServiceAppointmentRequest"]),
    ]
    .into_iter()
    .enumerate()
    {
        let tx = send_one(
            &s,
            &key,
            with(
                if031(&format!("ev-{i}")),
                "/payload/CommonBlock/S0/eventCode",
                code.clone(),
            ),
        )
        .await;
        let (status, m) = s.get(&key, &format!("/api/v1/messages/{tx}")).await;
        assert_eq!(status, 200);
        assert!(
            m["eventCode"]
                .as_str()
                .is_some_and(|e| e.contains("SupplierServiceAppointmentRequest")),
            "{code}: {m}"
        );
    }
    // An array of several accepted codes (IF-033 accepts two).
    let mut it = msg(
        "IF-033",
        REGS_N,
        "REGS",
        "ev-multi",
        "MSAppSPRequest",
        Some(MPAN_SMART),
        &[MS_KEY],
        json!({
            "mpanCore": MPAN_SMART, "supplierId": "AURA", "serviceRole": "MSS", "serviceProviderId": "KYST",
            "effectiveFromDate": "2025-02-01", "contractReference": "C-1", "marketSegment": "S"
        }),
    );
    set(
        &mut it,
        "/payload/CommonBlock/S0/eventCode",
        json!(["MSAppSPRequest", "[DSAppSPRequest]"]),
    );
    let tx = send_one(&s, &s.key(REGS_N), it).await;
    let (status, m) = s.get(&s.key(REGS_N), &format!("/api/v1/messages/{tx}")).await;
    assert_eq!(status, 200);
    assert_eq!(m["eventCode"], "MSAppSPRequest", "the first code is recorded");
    assert_eq!(queued(&s, MS_KEY, "default").await, [tx]);
}

async fn custom_block_schema_violations(db: Db) {
    let s = TestServer::start(db).await;
    // Wrong type.
    expect_invalid(
        &s,
        with(if031("r"), "/payload/CustomBlock/contractReference", json!(12345)),
        &[("SCHEMA_VIOLATION", "/payload/CustomBlock/contractReference")],
    )
    .await;
    // Pattern.
    expect_invalid(
        &s,
        with(if031("r"), "/payload/CustomBlock/supplierId", json!("aura")),
        &[("SCHEMA_VIOLATION", "/payload/CustomBlock/supplierId")],
    )
    .await;
    // Missing required property.
    expect_invalid(
        &s,
        without(if031("r"), "/payload/CustomBlock/supplierId"),
        &[("SCHEMA_VIOLATION", "/payload/CustomBlock")],
    )
    .await;
    // Additional property.
    expect_invalid(
        &s,
        with(if031("r"), "/payload/CustomBlock/colour", json!("blue")),
        &[("SCHEMA_VIOLATION", "/payload/CustomBlock")],
    )
    .await;
    // Not an object / absent.
    expect_invalid(
        &s,
        with(if031("r"), "/payload/CustomBlock", json!("text")),
        &[("SCHEMA_VIOLATION", "/payload/CustomBlock")],
    )
    .await;
    expect_invalid(
        &s,
        without(if031("r"), "/payload/CustomBlock"),
        &[("SCHEMA_VIOLATION", "/payload/CustomBlock")],
    )
    .await;

    // Nested: a period of IF-021, reported at its own pointer.
    let sds = s.key(SDS_O);
    let bad = with(
        if021(SDS_O, "c", MPAN_COS, "2024-10-14"),
        "/payload/CustomBlock/periods/3/kWh",
        json!("lots"),
    );
    let (status, body) = s.post(&sds, &json!([bad])).await;
    assert_eq!(status, 400, "{body}");
    rejected(
        &results(&body)[0],
        &[("SCHEMA_VIOLATION", "/payload/CustomBlock/periods/3/kWh")],
    );

    // The schema is the one of the version named: 002 knows consentGranularity, 001 does not.
    let v1 = with(
        if021(SDS_O, "v1", MPAN_COS, "2024-10-14"),
        "/payload/CustomBlock/consentGranularity",
        json!("H"),
    );
    let (status, body) = s.post(&sds, &json!([v1])).await;
    assert_eq!(status, 400, "{body}");
    rejected(&results(&body)[0], &[("SCHEMA_VIOLATION", "/payload/CustomBlock")]);
    let mut v2 = with(
        if021(SDS_O, "v2", MPAN_COS, "2024-10-14"),
        "/payload/CustomBlock/consentGranularity",
        json!("H"),
    );
    set(&mut v2, "/payload/CommonBlock/S0/schemaVersion", json!("002"));
    send_one(&s, &sds, v2).await;

    // The CustomBlock is only judged once the CommonBlock is sound.
    let mut both = with(if031("r"), "/payload/CustomBlock/colour", json!("blue"));
    set(&mut both, "/payload/CommonBlock/S1/environmentTag", json!("PROD"));
    expect_invalid(
        &s,
        both,
        &[("ENVIRONMENT_MISMATCH", "/payload/CommonBlock/S1/environmentTag")],
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// 3. Authorisation
// ---------------------------------------------------------------------------------------

async fn sender_must_be_caller(db: Db) {
    let s = TestServer::start(db).await;
    let it = with(if031("r"), "/payload/CommonBlock/S1/senderDIPID", json!(SUP2));
    let (status, body) = s.post(&s.key(SUP1), &json!([it])).await;
    assert_eq!(status, 403, "{body}");
    rejected(
        &results(&body)[0],
        &[("SENDER_MISMATCH", "/payload/CommonBlock/S1/senderDIPID")],
    );
    assert!(queued(&s, REGS_N, "default").await.is_empty());
}

async fn dcp_acts_for_nominating_participants(db: Db) {
    let s = TestServer::start(db).await;
    let dcp = s.key(DCP);
    // For SUP2, which nominated it.
    let mut it = with(if031("via-dcp"), "/payload/CommonBlock/S1/senderDIPID", json!(SUP2));
    set(&mut it, "/payload/CommonBlock/S1/DIPConnectionProviderID", json!(DCP));
    // And for SDS_O, which nominated it too, in the same request.
    let mut reading = if021(SDS_O, "via-dcp", MPAN_COS, "2024-10-14");
    set(
        &mut reading,
        "/payload/CommonBlock/S1/DIPConnectionProviderID",
        json!(DCP),
    );
    let rs = send_ok(&s, &dcp, json!([it, reading])).await;
    let tx = rs[0]["transactionID"].as_str().unwrap();
    for key in [&dcp, &s.key(SUP2)] {
        let (status, m) = s.get(key, &format!("/api/v1/messages/{tx}")).await;
        assert_eq!(status, 200, "{m}");
        assert_eq!(m["senderDIPID"], SUP2);
        assert_eq!(m["DIPConnectionProviderID"], DCP);
    }
    // Other participants do not see it.
    let (status, _) = s.get(&s.key(SUP1), &format!("/api/v1/messages/{tx}")).await;
    assert_eq!(status, 404);
    assert_eq!(
        deliveries(&s, &dcp, tx).await,
        triples(&[(REGS_N, "REGS", "1000000011/default")])
    );

    // Not for SUP1, which did not nominate it.
    let mut it = if031("not-nominated");
    set(&mut it, "/payload/CommonBlock/S1/DIPConnectionProviderID", json!(DCP));
    let (status, body) = s.post(&dcp, &json!([it])).await;
    assert_eq!(status, 403, "{body}");
    rejected(
        &results(&body)[0],
        &[("SENDER_MISMATCH", "/payload/CommonBlock/S1/senderDIPID")],
    );
}

async fn dcp_must_be_named_exactly(db: Db) {
    let s = TestServer::start(db).await;
    let dcp = s.key(DCP);
    // The DCP connects but the message does not name it.
    let unnamed = with(if031("a"), "/payload/CommonBlock/S1/senderDIPID", json!(SUP2));
    let mut other = with(if031("b"), "/payload/CommonBlock/S1/senderDIPID", json!(SUP2));
    set(
        &mut other,
        "/payload/CommonBlock/S1/DIPConnectionProviderID",
        json!("1000000091"),
    );
    let (status, body) = s.post(&dcp, &json!([unnamed, other])).await;
    assert_eq!(status, 403, "{body}");
    for r in results(&body) {
        rejected(
            r,
            &[("DCP_MISMATCH", "/payload/CommonBlock/S1/DIPConnectionProviderID")],
        );
    }
    // The participant connects itself but names a DCP.
    let mut named = with(if031("c"), "/payload/CommonBlock/S1/senderDIPID", json!(SUP2));
    set(
        &mut named,
        "/payload/CommonBlock/S1/DIPConnectionProviderID",
        json!(DCP),
    );
    let (status, body) = s.post(&s.key(SUP2), &json!([named])).await;
    assert_eq!(status, 403, "{body}");
    rejected(
        &results(&body)[0],
        &[("DCP_MISMATCH", "/payload/CommonBlock/S1/DIPConnectionProviderID")],
    );
    assert!(queued(&s, REGS_N, "default").await.is_empty());
}

async fn roles_held_and_permitted(db: Db) {
    let s = TestServer::start(db).await;
    let key = s.key(SUP1);
    // SUP1 claims REGS, which may send IF-036 but which SUP1 does not hold.
    let not_held = with(
        if036("a", MPAN_SMART, "SDS", SDS_O, "ORBD", "2025-03-01"),
        "/payload/CommonBlock/S1/senderDIPID",
        json!(SUP1),
    );
    // SUP1 in its own role, which may not send IF-036.
    let mut not_permitted = not_held.clone();
    set(&mut not_permitted, "/payload/CommonBlock/S1/senderRoleID", json!("SUP"));
    set(
        &mut not_permitted,
        "/payload/CommonBlock/S1/senderUniqueReference",
        json!("b"),
    );
    let (status, body) = s.post(&key, &json!([not_held, not_permitted])).await;
    assert_eq!(status, 403, "{body}");
    rejected(
        &results(&body)[0],
        &[("ROLE_NOT_HELD", "/payload/CommonBlock/S1/senderRoleID")],
    );
    rejected(
        &results(&body)[1],
        &[("ROLE_NOT_PERMITTED", "/payload/CommonBlock/S1/senderRoleID")],
    );
    // A rejected appointment message changes nothing.
    let sds: Vec<Value> = history(&s, MPAN_SMART)
        .await
        .into_iter()
        .filter(|a| a["role"] == "SDS")
        .collect();
    assert_eq!(sds.len(), 1, "{sds:?}");
    assert_eq!(sds[0]["dipID"], DS_Q);
}

// ---------------------------------------------------------------------------------------
// 4. Routing
// ---------------------------------------------------------------------------------------

async fn targeted_routing(db: Db) {
    let s = TestServer::start(db).await;
    let key = s.key(SUP1);
    let tx = send_one(&s, &key, if031("t")).await;
    assert_eq!(
        deliveries(&s, &key, &tx).await,
        triples(&[(REGS_N, "REGS", "1000000011/default")])
    );
    let d = decision(&s, &key, &tx).await;
    assert_eq!(d["interfaceID"], "IF-031");
    assert_eq!(d["modes"], json!(["targeted"]));
    assert_eq!(d["recipients"].as_array().unwrap().len(), 1);
    let r = recipient(&d, REGS_N);
    assert_eq!(r["role"], "REGS");
    assert_eq!(r["queue"], "1000000011/default");
    assert_eq!(r["matchedBy"], json!([{ "rule": "targeted", "role": "REGS" }]));

    // Naming a recipient twice delivers once.
    let twice = send_one(
        &s,
        &key,
        with(
            if031("twice"),
            "/payload/CommonBlock/A0/primaryRecipients",
            json!([REGS_N, REGS_N]),
        ),
    )
    .await;
    assert_eq!(
        deliveries(&s, &key, &twice).await,
        triples(&[(REGS_N, "REGS", "1000000011/default")])
    );

    // A primary recipient without a recipient role of the channel.
    let (status, body) = s
        .post(
            &key,
            &json!([with(
                if031("u"),
                "/payload/CommonBlock/A0/primaryRecipients",
                json!([SUP2])
            )]),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    rejected(
        &results(&body)[0],
        &[("RECIPIENT_NOT_PERMITTED", "/payload/CommonBlock/A0/primaryRecipients/0")],
    );
    // An unknown one (second in the list).
    let (status, body) = s
        .post(
            &key,
            &json!([with(
                if031("v"),
                "/payload/CommonBlock/A0/primaryRecipients",
                json!([REGS_N, "9999999999"])
            )]),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    rejected(
        &results(&body)[0],
        &[("UNKNOWN_RECIPIENT", "/payload/CommonBlock/A0/primaryRecipients/1")],
    );
    // A targeted channel with no target.
    let (status, body) = s
        .post(
            &key,
            &json!([with(if031("w"), "/payload/CommonBlock/A0/primaryRecipients", json!([]))]),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    rejected(&results(&body)[0], &[("NO_RECIPIENTS", "/payload/CommonBlock")]);
    // A channel that does not route by primary recipients.
    let sds = s.key(SDS_O);
    let it = with(
        if021(SDS_O, "x", MPAN_COS, "2024-10-14"),
        "/payload/CommonBlock/A0/primaryRecipients",
        json!([SUP1]),
    );
    let (status, body) = s.post(&sds, &json!([it])).await;
    assert_eq!(status, 400, "{body}");
    rejected(
        &results(&body)[0],
        &[("TARGETING_NOT_ALLOWED", "/payload/CommonBlock/A0/primaryRecipients")],
    );

    assert_eq!(queued(&s, REGS_N, "default").await, [tx, twice]);
    assert!(queued(&s, SUP2, "default").await.is_empty());
}

async fn mpan_routing_follows_appointment_history(db: Db) {
    let s = TestServer::start(db).await;
    let key = s.key(SDS_O);
    // The day before and the day of the change of supplier on MPAN_COS.
    let before = send_one(&s, &key, if021(SDS_O, "before", MPAN_COS, "2024-10-14")).await;
    let after = send_one(&s, &key, if021(SDS_O, "after", MPAN_COS, "2024-10-15")).await;
    assert_eq!(
        deliveries(&s, &key, &before).await,
        triples(&[
            (SUP1, "SUP", "1000000001/default"),
            (LDSO_P, "LDSO", "1000000021/default"),
            (MDS, "MDS", "1000000051/default")
        ])
    );
    assert_eq!(
        deliveries(&s, &key, &after).await,
        triples(&[
            (SUP2, "SUP", "1000000002/default"),
            (LDSO_P, "LDSO", "1000000021/default"),
            (MDS, "MDS", "1000000051/default")
        ])
    );

    let d = decision(&s, &key, &before).await;
    assert_eq!(d["modes"], json!(["mpan", "always"]));
    assert_eq!(d["applicableDate"], "2024-10-14");
    assert_eq!(d["dateSource"], "/CustomBlock/settlementDate");
    assert_eq!(
        recipient(&d, SUP1)["matchedBy"],
        json!([{ "rule": "mpan", "role": "SUP",
                 "appointment": { "mpan": MPAN_COS, "role": "SUP", "effectiveFrom": "2024-04-01", "effectiveTo": "2024-10-15" } }])
    );
    assert_eq!(
        recipient(&d, LDSO_P)["matchedBy"][0]["appointment"],
        json!({ "mpan": MPAN_COS, "role": "LDSO", "effectiveFrom": "2024-04-01", "effectiveTo": null })
    );
    assert_eq!(
        recipient(&d, MDS)["matchedBy"],
        json!([{ "rule": "always-role", "role": "MDS" }])
    );

    let d = decision(&s, &key, &after).await;
    assert_eq!(d["applicableDate"], "2024-10-15");
    assert_eq!(
        recipient(&d, SUP2)["matchedBy"][0]["appointment"],
        json!({ "mpan": MPAN_COS, "role": "SUP", "effectiveFrom": "2024-10-15", "effectiveTo": null })
    );
    assert!(
        d["recipients"].as_array().unwrap().iter().all(|r| r["dipID"] != SUP1),
        "{d}"
    );

    // What each supplier receives, with A0 as resolved.
    assert_eq!(queued(&s, SUP1, "default").await, std::slice::from_ref(&before));
    assert_eq!(queued(&s, SUP2, "default").await, std::slice::from_ref(&after));
    assert_eq!(queued(&s, MDS, "default").await, [before.clone(), after.clone()]);
    let items = peek(&s, &s.key(SUP2), SUP2, "default").await;
    let a0 = &payload(&items[0])["CommonBlock"]["A0"];
    assert_eq!(a0["primaryRecipients"], json!([]));
    assert_eq!(a0["secondaryRecipients"], json!([SUP2, LDSO_P]));
    assert_eq!(a0["always"], json!([MDS]));
}

async fn registration_message_changes_appointments(db: Db) {
    let s = TestServer::start(db).await;
    let regs = s.key(REGS_N);
    // REGS_N appoints SDS_O as smart data service of MPAN_SMART from 2025-03-01 (it was DS_Q).
    let tx = send_one(
        &s,
        &regs,
        if036("appoint", MPAN_SMART, "SDS", SDS_O, "ORBD", "2025-03-01"),
    )
    .await;
    assert_eq!(
        deliveries(&s, &regs, &tx).await,
        triples(&[
            (SDS_O, "SDS", "1000000041/default"),
            (SUP1, "SUP", "1000000001/registration"),
            (LDSO_P, "LDSO", "1000000021/default")
        ])
    );

    let rows = history(&s, MPAN_SMART).await;
    let sds: Vec<&Value> = rows.iter().filter(|a| a["role"] == "SDS").collect();
    assert_eq!(sds.len(), 2, "{rows:?}");
    assert_eq!(sds[0]["dipID"], DS_Q);
    assert_eq!(sds[0]["effectiveFrom"], "2024-04-01");
    assert_eq!(sds[0]["effectiveTo"], "2025-03-01");
    assert_eq!(sds[0]["sourceTransactionID"], Value::Null);
    assert_eq!(sds[1]["dipID"], SDS_O);
    assert_eq!(sds[1]["effectiveFrom"], "2025-03-01");
    assert_eq!(sds[1]["effectiveTo"], Value::Null);
    assert_eq!(sds[1]["sourceTransactionID"], json!(tx));
    // Other roles are untouched.
    let sup: Vec<&Value> = rows.iter().filter(|a| a["role"] == "SUP").collect();
    assert_eq!(sup.len(), 1);
    assert_eq!(sup[0]["dipID"], SUP1);
    // Only the operator reads the table.
    let (status, body) = s.get(&regs, &format!("/api/v1/admin/appointments/{MPAN_SMART}")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(request_error(&body).0, "FORBIDDEN");

    // Later messages route by the new appointment from its effective date on.
    let mds = s.key(MDS);
    let old = send_one(&s, &mds, if013("old", MPAN_SMART, "2025-02-28")).await;
    let new = send_one(&s, &mds, if013("new", MPAN_SMART, "2025-03-01")).await;
    assert_eq!(
        deliveries(&s, &mds, &old).await,
        triples(&[(SUP1, "SUP", "1000000001/default"), (DS_Q, "SDS", "1000000042/default")])
    );
    assert_eq!(
        deliveries(&s, &mds, &new).await,
        triples(&[
            (SUP1, "SUP", "1000000001/default"),
            (SDS_O, "SDS", "1000000041/default")
        ])
    );
    let d = decision(&s, &mds, &new).await;
    assert_eq!(
        recipient(&d, SDS_O)["matchedBy"][0]["appointment"],
        json!({ "mpan": MPAN_SMART, "role": "SDS", "effectiveFrom": "2025-03-01", "effectiveTo": null })
    );
    let d = decision(&s, &mds, &old).await;
    assert_eq!(
        recipient(&d, DS_Q)["matchedBy"][0]["appointment"],
        json!({ "mpan": MPAN_SMART, "role": "SDS", "effectiveFrom": "2024-04-01", "effectiveTo": "2025-03-01" })
    );
}

async fn bulk_appointment_load(db: Db) {
    let s = TestServer::start(db).await;
    let op = s.operator_key();
    let json_mpan = fresh_mpan("160000100010");
    let csv_mpan = fresh_mpan("230000200010");
    assert!(history(&s, &json_mpan).await.is_empty());

    // JSON.
    let rows = json!([
        { "mpan": json_mpan, "role": "SUP", "dipID": SUP3, "effectiveFrom": "2024-01-01" },
        { "mpan": json_mpan, "role": "LDSO", "dipID": LDSO_P, "effectiveFrom": "2024-01-01" },
        { "mpan": json_mpan, "role": "SUP", "dipID": SUP2, "effectiveFrom": "2025-06-01" },
    ]);
    let (status, body) = load_appointments(&s, &op, "application/json", serde_json::to_vec(&rows).unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["loaded"], 3);
    let h = history(&s, &json_mpan).await;
    assert_eq!(h.len(), 3, "{h:?}");
    let sup: Vec<(Value, Value, Value)> = h
        .iter()
        .filter(|a| a["role"] == "SUP")
        .map(|a| (a["dipID"].clone(), a["effectiveFrom"].clone(), a["effectiveTo"].clone()))
        .collect();
    assert_eq!(
        sup,
        [
            (json!(SUP3), json!("2024-01-01"), json!("2025-06-01")),
            (json!(SUP2), json!("2025-06-01"), Value::Null)
        ]
    );

    let sds = s.key(SDS_O);
    let early = send_one(&s, &sds, if021(SDS_O, "early", &json_mpan, "2025-05-31")).await;
    let late = send_one(&s, &sds, if021(SDS_O, "late", &json_mpan, "2025-06-01")).await;
    assert_eq!(
        deliveries(&s, &sds, &early).await,
        triples(&[
            (SUP3, "SUP", "1000000003/default"),
            (LDSO_P, "LDSO", "1000000021/default"),
            (MDS, "MDS", "1000000051/default")
        ])
    );
    assert_eq!(
        deliveries(&s, &sds, &late).await,
        triples(&[
            (SUP2, "SUP", "1000000002/default"),
            (LDSO_P, "LDSO", "1000000021/default"),
            (MDS, "MDS", "1000000051/default")
        ])
    );

    // CSV.
    let csv = format!(
        "mpan,role,dip_id,effective_from\n{csv_mpan},SUP,{SUP1},2024-01-01\n{csv_mpan},LDSO,1000000022,2024-01-01\n"
    );
    let (status, body) = load_appointments(&s, &op, "text/csv", csv).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["loaded"], 2);
    let h = history(&s, &csv_mpan).await;
    let got: Vec<(Value, Value)> = h.iter().map(|a| (a["role"].clone(), a["dipID"].clone())).collect();
    assert_eq!(got, [(json!("LDSO"), json!("1000000022")), (json!("SUP"), json!(SUP1))]);
    let tx = send_one(&s, &sds, if021(SDS_O, "csv", &csv_mpan, "2025-01-01")).await;
    assert_eq!(
        deliveries(&s, &sds, &tx).await,
        triples(&[
            (SUP1, "SUP", "1000000001/default"),
            ("1000000022", "LDSO", "1000000022/default"),
            (MDS, "MDS", "1000000051/default")
        ])
    );

    // An empty dip_id de-appoints: from then on the supplier rule finds nobody.
    let csv = format!("mpan,role,dip_id,effective_from\n{csv_mpan},SUP,,2025-07-01\n");
    let (status, body) = load_appointments(&s, &op, "text/csv", csv).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["loaded"], 1);
    let h = history(&s, &csv_mpan).await;
    let sup: Vec<(Value, Value, Value)> = h
        .iter()
        .filter(|a| a["role"] == "SUP")
        .map(|a| (a["dipID"].clone(), a["effectiveFrom"].clone(), a["effectiveTo"].clone()))
        .collect();
    assert_eq!(
        sup,
        [
            (json!(SUP1), json!("2024-01-01"), json!("2025-07-01")),
            (Value::Null, json!("2025-07-01"), Value::Null)
        ]
    );
    let tx = send_one(&s, &sds, if021(SDS_O, "csv-late", &csv_mpan, "2025-07-01")).await;
    assert_eq!(
        deliveries(&s, &sds, &tx).await,
        triples(&[
            ("1000000022", "LDSO", "1000000022/default"),
            (MDS, "MDS", "1000000051/default")
        ])
    );
    let d = decision(&s, &sds, &tx).await;
    assert!(
        d["unresolved"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["rule"] == "mpan" && u["role"] == "SUP"),
        "{d}"
    );

    // One bad row rejects the whole load.
    let bad_mpan = fresh_mpan("160000100020");
    let bad_check = format!("{}{}", &bad_mpan[..12], (bad_mpan.as_bytes()[12] - b'0' + 1) % 10);
    let rows = json!([
        { "mpan": bad_mpan, "role": "SUP", "dipID": SUP1, "effectiveFrom": "2024-01-01" },
        { "mpan": bad_mpan, "role": "LDSO", "dipID": LDSO_P, "effectiveFrom": "2024-01-01" },
        { "mpan": bad_check, "role": "SUP", "dipID": SUP1, "effectiveFrom": "2024-01-01" },
    ]);
    let (status, body) = load_appointments(&s, &op, "application/json", serde_json::to_vec(&rows).unwrap()).await;
    assert_eq!(status, 400, "{body}");
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["code"], "INVALID_MPAN");
    assert_eq!(errors[0]["path"], "/2/mpan");
    assert!(
        history(&s, &bad_mpan).await.is_empty(),
        "nothing of a rejected load is kept"
    );

    let csv = format!(
        "mpan,role,dip_id,effective_from\n{bad_mpan},SUP,{SUP1},2024-01-01\n{bad_mpan},SUP,9999999999,2025-01-01\n{bad_mpan},LDSO,{LDSO_P},not-a-date\n"
    );
    let (status, body) = load_appointments(&s, &op, "text/csv", csv).await;
    assert_eq!(status, 400, "{body}");
    let paths: Vec<(&str, &str)> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| (e["code"].as_str().unwrap(), e["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        paths,
        [("UNKNOWN_RECIPIENT", "/1/dipID"), ("INVALID_FIELD", "/2/effectiveFrom")]
    );
    assert!(
        history(&s, &bad_mpan).await.is_empty(),
        "nothing of a rejected load is kept"
    );

    // Only the operator loads.
    let rows = json!([{ "mpan": bad_mpan, "role": "SUP", "dipID": SUP1, "effectiveFrom": "2024-01-01" }]);
    let (status, body) = load_appointments(
        &s,
        &s.key(REGS_N),
        "application/json",
        serde_json::to_vec(&rows).unwrap(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(request_error(&body).0, "FORBIDDEN");
    assert!(history(&s, &bad_mpan).await.is_empty());
}

async fn bulk_appointment_load_of_a_large_table(db: Db) {
    let s = TestServer::start(db).await;
    // An initial load is large: 60 000 rows, well over 2 MiB of CSV.
    let mut csv = String::from("mpan,role,dip_id,effective_from\n");
    let mut mpans = Vec::new();
    for i in 0..30_000u32 {
        let m = fresh_mpan(&format!("23{:010}", 5_000_000 + i));
        csv.push_str(&format!("{m},SUP,{SUP3},2024-01-01\n{m},LDSO,1000000022,2024-01-01\n"));
        mpans.push(m);
    }
    assert!(csv.len() > 2 * 1024 * 1024, "{} bytes", csv.len());
    let (status, body) = load_appointments(&s, &s.operator_key(), "text/csv", csv).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["loaded"], 60_000);
    assert_eq!(history(&s, &mpans[29_999]).await.len(), 2);
}

async fn always_routing_reaches_every_holder(db: Db) {
    let s = TestServer::start(db).await;
    let key = s.key(LSS);
    let tx = send_one(&s, &key, if022(LSS, "shape")).await;
    assert_eq!(
        deliveries(&s, &key, &tx).await,
        triples(&[
            (SDS_O, "SDS", "1000000041/default"),
            (DS_Q, "SDS", "1000000042/default"),
            (MDS, "MDS", "1000000051/default")
        ])
    );
    let d = decision(&s, &key, &tx).await;
    assert_eq!(d["modes"], json!(["always"]));
    assert_eq!(d["dateSource"], "receipt");
    assert_eq!(
        recipient(&d, DS_Q)["matchedBy"],
        json!([{ "rule": "always-role", "role": "SDS" }])
    );
    let items = peek(&s, &s.key(MDS), MDS, "default").await;
    assert_eq!(items.len(), 1);
    let a0 = &payload(&items[0])["CommonBlock"]["A0"];
    assert_eq!(a0["always"], json!([SDS_O, DS_Q, MDS]));
    assert_eq!(a0["secondaryRecipients"], json!([]));
}

async fn sender_is_not_sent_its_own_message(db: Db) {
    let s = TestServer::start(db).await;
    // MDS also holds LSS: it sends load shapes that always go to every MDS.
    let key = s.key(MDS);
    let tx = send_one(&s, &key, if022(MDS, "own")).await;
    assert_eq!(
        deliveries(&s, &key, &tx).await,
        triples(&[
            (SDS_O, "SDS", "1000000041/default"),
            (DS_Q, "SDS", "1000000042/default")
        ])
    );
    let d = decision(&s, &key, &tx).await;
    let unresolved = d["unresolved"].as_array().expect("unresolved");
    assert!(
        unresolved.iter().any(|u| u["rule"] == "sender" && u["dipID"] == MDS),
        "{d}"
    );
    assert!(queued(&s, MDS, "default").await.is_empty());
}

async fn no_recipients(db: Db) {
    let s = TestServer::start(db).await;
    let key = s.key(REGS_N);
    let nobody = fresh_mpan("160000100090");
    let (status, body) = s.post(&key, &json!([if006("n", &nobody)])).await;
    assert_eq!(status, 400, "{body}");
    rejected(&results(&body)[0], &[("NO_RECIPIENTS", "/payload/CommonBlock")]);
    // The same channel on a known MPAN routes (and the rejected reference is free).
    let tx = send_one(&s, &key, if006("n", MPAN_SMART)).await;
    assert_eq!(
        deliveries(&s, &key, &tx).await,
        triples(&[
            (SUP1, "SUP", "1000000001/default"),
            (LDSO_P, "LDSO", "1000000021/default"),
            (DS_Q, "SDS", "1000000042/default")
        ])
    );
}

async fn channels_split_over_endpoints(db: Db) {
    let s = TestServer::start(db).await;
    let on_registration = send_one(
        &s,
        &s.key(REGS_N),
        if036("reg", MPAN_SMART, "MSS", MS_KEY, "KYST", "2025-05-01"),
    )
    .await;
    let on_default = send_one(&s, &s.key(SDS_O), if021(SDS_O, "def", MPAN_SMART, "2025-05-01")).await;
    let response = send_one(&s, &s.key(REGS_N), if032("resp", None)).await;
    assert_eq!(
        queued(&s, SUP1, "registration").await,
        [on_registration.clone(), response.clone()]
    );
    assert_eq!(queued(&s, SUP1, "default").await, std::slice::from_ref(&on_default));
    // Other suppliers have only the implicit default queue.
    let tx = send_one(
        &s,
        &s.key(REGS_N),
        with(
            if032("resp2", None),
            "/payload/CommonBlock/A0/primaryRecipients",
            json!([SUP2]),
        ),
    )
    .await;
    assert_eq!(queued(&s, SUP2, "default").await, [tx]);

    // The queue list shows both endpoints of SUP1 with their depth.
    let (status, body) = s.get(&s.key(SUP1), "/api/v1/queues").await;
    assert_eq!(status, 200, "{body}");
    let pending: Vec<(String, i64)> = body["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| (q["queue"].as_str().unwrap().to_owned(), q["pending"].as_i64().unwrap()))
        .collect();
    assert!(pending.contains(&("1000000001/registration".to_owned(), 2)), "{body}");
    assert!(pending.contains(&("1000000001/default".to_owned(), 1)), "{body}");
    // The LDSO does not see the contract reference of IF-036.
    let items = peek(&s, &s.key(LDSO_P), LDSO_P, "default").await;
    let ldso_copy = items
        .iter()
        .find(|i| i["transactionID"] == json!(on_registration))
        .expect("LDSO copy");
    assert!(
        payload(ldso_copy)["CustomBlock"].get("contractReference").is_none(),
        "{ldso_copy}"
    );
    let sup_copy = &peek(&s, &s.key(SUP1), SUP1, "registration").await[0];
    assert_eq!(payload(sup_copy)["CustomBlock"]["contractReference"], "CR-77");
}

// ---------------------------------------------------------------------------------------
// 5. Obfuscation: the worked example of spec 5.5.12
// ---------------------------------------------------------------------------------------

async fn worked_example_obfuscation(db: Db) {
    let s = TestServer::start(db).await;
    let rs = send_ok(&s, &s.key(MS_KEY), json!([if909("we-1")])).await;
    let tx = rs[0]["transactionID"].as_str().unwrap().to_owned();
    let correlation = rs[0]["initialCorrelationID"]
        .as_str()
        .expect("IF-909 starts a workflow")
        .to_owned();
    assert_eq!(
        deliveries(&s, &s.key(MS_KEY), &tx).await,
        triples(&[
            (REGS_N, "REGS", "1000000011/default"),
            (SUP1, "SUP", "1000000001/default"),
            (SUP2, "SUP", "1000000002/default"),
            (SUP3, "SUP", "1000000003/default")
        ])
    );

    let check_wrapper = |p: &Value| {
        let cb = &p["CommonBlock"];
        let d0 = &cb["D0"];
        assert_eq!(d0["transactionID"], json!(tx), "{d0}");
        assert_eq!(d0["publicationID"], "PUB-909");
        assert_eq!(d0["replayIndicator"], false);
        assert_eq!(d0["environmentTag"], "DEV");
        assert_eq!(d0["initialCorrelationID"], json!(correlation));
        assert_eq!(d0["serviceTicketURL"], Value::Null);
        assert!(
            chrono::DateTime::parse_from_rfc3339(d0["transactionTimestamp"].as_str().unwrap()).is_ok(),
            "{d0}"
        );
        assert_eq!(cb["A0"]["primaryRecipients"], json!([REGS_N]));
        assert_eq!(cb["A0"]["always"], json!([SUP1, SUP2, SUP3]));
        assert_eq!(cb["S1"]["senderDIPID"], MS_KEY);
        assert_eq!(cb["S1"]["senderUniqueReference"], "we-1");
        assert_eq!(cb["M0"]["MPANCore"], MPAN_COS);
    };

    // The targeted Registration Service sees everything.
    let items = peek(&s, &s.key(REGS_N), REGS_N, "default").await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["transactionID"], json!(tx));
    assert_eq!(items[0]["role"], "REGS");
    let p = payload(&items[0]);
    assert_eq!(p["CustomBlock"], if909_block());
    check_wrapper(p);

    // Every supplier's copy lacks the three fields, and only those.
    let mut expected = if909_block();
    for f in [
        "meteringServiceId",
        "meteringServiceEffectiveFromDate",
        "appointmentCode",
    ] {
        expected.as_object_mut().unwrap().remove(f);
    }
    for sup in [SUP1, SUP2, SUP3] {
        let items = peek(&s, &s.key(sup), sup, "default").await;
        assert_eq!(items.len(), 1, "{sup}");
        assert_eq!(items[0]["role"], "SUP");
        let p = payload(&items[0]);
        assert_eq!(p["CustomBlock"], expected, "{sup}");
        check_wrapper(p);
    }
    // The operator sees what the recipient would.
    let items = peek(&s, &s.operator_key(), SUP2, "default").await;
    assert_eq!(payload(&items[0])["CustomBlock"], expected);

    // Nobody peeks at another participant's queue, not even a fellow recipient.
    for (key, dip) in [(SUP1, REGS_N), (REGS_N, SUP1), (SUP2, SUP3), (MS_KEY, REGS_N)] {
        let (status, body) = s
            .get(
                &s.key(key),
                &format!("/api/v1/participants/{dip}/queues/default/messages"),
            )
            .await;
        assert_eq!(status, 404, "{key} peeking {dip}: {body}");
        assert_eq!(request_error(&body).0, "NOT_FOUND");
    }
    // A DCP may peek for a participant that nominated it, and for no other.
    assert_eq!(peek(&s, &s.key(DCP), SUP2, "default").await.len(), 1);
    let (status, _) = s
        .get(
            &s.key(DCP),
            &format!("/api/v1/participants/{SUP1}/queues/default/messages"),
        )
        .await;
    assert_eq!(status, 404);
}

// ---------------------------------------------------------------------------------------
// 6. D0 and correlation
// ---------------------------------------------------------------------------------------

async fn correlation_ids(db: Db) {
    let s = TestServer::start(db).await;
    // A workflow-starting channel generates the correlation id.
    let start = send_ok(&s, &s.key(SUP1), json!([if031("wf-1"), if031("wf-2")])).await;
    let c1 = start[0]["initialCorrelationID"].as_str().expect("generated").to_owned();
    let c2 = start[1]["initialCorrelationID"].as_str().expect("generated").to_owned();
    assert!(uuid::Uuid::parse_str(&c1).is_ok(), "{c1}");
    assert_ne!(c1, c2, "every workflow gets its own id");
    // ... even when the sender offers one.
    let offered = with(
        if031("wf-3"),
        "/payload/CommonBlock/S1/senderCorrelationID",
        json!("mine"),
    );
    let r = &send_ok(&s, &s.key(SUP1), json!([offered])).await[0];
    assert!(
        r["initialCorrelationID"]
            .as_str()
            .is_some_and(|c| c != "mine" && !c.is_empty()),
        "{r}"
    );

    let items = peek(&s, &s.key(REGS_N), REGS_N, "default").await;
    let d0 = &payload(&items[0])["CommonBlock"]["D0"];
    assert_eq!(d0["initialCorrelationID"], json!(c1));
    assert_eq!(d0["transactionID"], start[0]["transactionID"]);
    assert_eq!(d0["publicationID"], "PUB-031");
    assert_eq!(d0["replayIndicator"], false);
    assert_eq!(d0["environmentTag"], "DEV");

    // A reply carries the workflow's id from senderCorrelationID.
    let reply = &send_ok(&s, &s.key(REGS_N), json!([if032("reply-1", Some(&c1))])).await[0];
    assert_eq!(reply["initialCorrelationID"], json!(c1));
    let tx = reply["transactionID"].as_str().unwrap();
    let (_, m) = s.get(&s.key(REGS_N), &format!("/api/v1/messages/{tx}")).await;
    assert_eq!(m["initialCorrelationID"], json!(c1));
    let items = peek(&s, &s.key(SUP1), SUP1, "registration").await;
    assert_eq!(items.len(), 1);
    let cb = &payload(&items[0])["CommonBlock"];
    assert_eq!(cb["D0"]["initialCorrelationID"], json!(c1));
    assert_eq!(cb["D0"]["publicationID"], "PUB-032");
    assert_eq!(cb["S1"]["senderCorrelationID"], json!(c1));

    // A reply without one has none.
    let r = &send_ok(&s, &s.key(REGS_N), json!([if032("reply-2", None)])).await[0];
    assert_eq!(r["initialCorrelationID"], Value::Null);
}

async fn transaction_ids_unique_and_time_ordered(db: Db) {
    let s = TestServer::start(db).await;
    let key = s.key(SUP1);
    let mut ids = Vec::new();
    let mut stamps = Vec::new();
    for i in 0..8 {
        let rs = send_ok(
            &s,
            &key,
            json!([if031(&format!("seq-{i}-a")), if031(&format!("seq-{i}-b"))]),
        )
        .await;
        for r in &rs {
            let tx = r["transactionID"].as_str().unwrap().to_owned();
            let (_, m) = s.get(&key, &format!("/api/v1/messages/{tx}")).await;
            stamps.push(chrono::DateTime::parse_from_rfc3339(m["transactionTimestamp"].as_str().unwrap()).unwrap());
            ids.push(tx);
        }
    }
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, ids, "unique and increasing in request order");
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    assert!(stamps.windows(4).any(|w| w[0] < w[3]));
    // The queue holds them in the same order.
    assert_eq!(queued(&s, REGS_N, "default").await, ids);
}

// ---------------------------------------------------------------------------------------
// 7. Duplicates
// ---------------------------------------------------------------------------------------

/// A sender whose first answer was lost resends: it gets the original transaction even
/// when the message would now be refused (here its only recipient was de-appointed).
async fn resend_after_routing_change_is_duplicate(db: Db) {
    let s = TestServer::start(db).await;
    let key = s.key(REGS_N);
    let op = s.operator_key();
    let mpan = fresh_mpan("160000100077");
    let load = |rows: Value| load_appointments(&s, &op, "application/json", rows.to_string());
    let (status, body) =
        load(json!([{ "mpan": mpan, "role": "SUP", "dipID": SUP1, "effectiveFrom": "2024-01-01" }])).await;
    assert_eq!(status, 200, "{body}");
    let tx = send_one(&s, &key, if006("rc", &mpan)).await;
    let (status, body) =
        load(json!([{ "mpan": mpan, "role": "SUP", "dipID": null, "effectiveFrom": "2024-06-01" }])).await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = s.post(&key, &json!([if006("rc", &mpan)])).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(results(&body)[0]["status"], "duplicate");
    assert_eq!(results(&body)[0]["transactionID"], json!(tx));
    assert_eq!(results(&body)[0]["errors"], json!([]));
    // A new reference is routed afresh, and finds nobody.
    let (status, body) = s.post(&key, &json!([if006("rc-new", &mpan)])).await;
    assert_eq!(status, 400, "{body}");
    rejected(&results(&body)[0], &[("NO_RECIPIENTS", "/payload/CommonBlock")]);
    assert_eq!(deliveries(&s, &key, &tx).await.len(), 1);
}

async fn sequential_resend_is_duplicate(db: Db) {
    let s = TestServer::start(db).await;
    let key = s.key(SUP1);
    let first = send_ok(&s, &key, json!([if031("again")])).await.remove(0);
    let tx = first["transactionID"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let (status, body) = s.post(&key, &json!([if031("again")])).await;
        assert_eq!(status, 202, "{body}");
        let r = &results(&body)[0];
        assert_result_shape(r, 0);
        assert_eq!(r["status"], "duplicate");
        assert_eq!(r["transactionID"], json!(tx));
        assert_eq!(r["initialCorrelationID"], first["initialCorrelationID"]);
        assert_eq!(r["errors"], json!([]));
    }
    // Key order does not make it a different payload.
    let reordered = {
        let mut v = json!([if031("again")]);
        let mut fields: Vec<(String, Value)> = v[0]["payload"]["CustomBlock"]
            .as_object()
            .unwrap()
            .clone()
            .into_iter()
            .collect();
        fields.reverse();
        v[0]["payload"]["CustomBlock"] = Value::Object(fields.into_iter().collect());
        v
    };
    let (status, body) = s.post(&key, &reordered).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(results(&body)[0]["status"], "duplicate");
    assert_eq!(results(&body)[0]["transactionID"], json!(tx));

    assert_eq!(deliveries(&s, &key, &tx).await.len(), 1);
    assert_eq!(queued(&s, REGS_N, "default").await, [tx]);
}

async fn reused_reference_with_other_payload_conflicts(db: Db) {
    let s = TestServer::start(db).await;
    let key = s.key(SUP1);
    let tx = send_one(&s, &key, if031("ref")).await;
    let changed = with(if031("ref"), "/payload/CustomBlock/contractReference", json!("C-2"));
    let (status, body) = s.post(&key, &json!([changed])).await;
    assert_eq!(status, 400, "{body}");
    rejected(
        &results(&body)[0],
        &[(
            "DUPLICATE_REFERENCE_CONFLICT",
            "/payload/CommonBlock/S1/senderUniqueReference",
        )],
    );
    // The original stays the only message, and is still its duplicate.
    assert_eq!(queued(&s, REGS_N, "default").await, std::slice::from_ref(&tx));
    let (status, body) = s.post(&key, &json!([if031("ref")])).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(results(&body)[0]["transactionID"], json!(tx));
    // The reference is per sender: another supplier may use it.
    let other = with(if031("ref"), "/payload/CommonBlock/S1/senderDIPID", json!(SUP2));
    let tx2 = send_one(&s, &s.key(SUP2), other).await;
    assert_ne!(tx, tx2);
}

async fn same_reference_twice_in_one_request(db: Db) {
    let s = TestServer::start(db).await;
    let key = s.key(SUP1);
    let (status, body) = s.post(&key, &json!([if031("twin"), if031("twin")])).await;
    assert_eq!(status, 202, "{body}");
    let rs = results(&body);
    let tx = accepted(&rs[0]);
    assert_eq!(rs[1]["status"], "duplicate");
    assert_eq!(rs[1]["transactionID"], json!(tx));
    assert_eq!(rs[1]["initialCorrelationID"], rs[0]["initialCorrelationID"]);
    assert_eq!(queued(&s, REGS_N, "default").await, std::slice::from_ref(&tx));

    // With a different payload the second conflicts.
    let changed = with(if031("pair"), "/payload/CustomBlock/contractReference", json!("C-9"));
    let (status, body) = s.post(&key, &json!([if031("pair"), changed])).await;
    assert_eq!(status, 207, "{body}");
    let rs = results(&body);
    let tx2 = accepted(&rs[0]);
    rejected(
        &rs[1],
        &[(
            "DUPLICATE_REFERENCE_CONFLICT",
            "/payload/CommonBlock/S1/senderUniqueReference",
        )],
    );
    assert_eq!(queued(&s, REGS_N, "default").await, [tx, tx2]);
}

async fn concurrent_identical_requests(db: Db) {
    let s = TestServer::start(db).await;
    let key = s.key(LSS);
    let body = serde_json::to_vec(&json!([if022(LSS, "storm")])).unwrap();
    let answers = futures::future::join_all((0..50).map(|_| s.post_raw(&key, body.clone()))).await;
    let mut accepted_n = 0;
    let mut duplicates = 0;
    let mut ids = std::collections::HashSet::new();
    for (status, body) in &answers {
        assert_eq!(*status, 202, "{body}");
        let r = &results(body)[0];
        match r["status"].as_str().unwrap() {
            "accepted" => accepted_n += 1,
            "duplicate" => duplicates += 1,
            other => panic!("{other}: {body}"),
        }
        ids.insert(r["transactionID"].as_str().expect("transactionID").to_owned());
    }
    assert_eq!((accepted_n, duplicates), (1, 49));
    assert_eq!(ids.len(), 1, "{ids:?}");
    let tx = ids.into_iter().next().unwrap();
    assert_eq!(
        deliveries(&s, &key, &tx).await,
        triples(&[
            (SDS_O, "SDS", "1000000041/default"),
            (DS_Q, "SDS", "1000000042/default"),
            (MDS, "MDS", "1000000051/default")
        ])
    );
    for dip in [SDS_O, DS_Q, MDS] {
        assert_eq!(queued(&s, dip, "default").await, std::slice::from_ref(&tx), "{dip}");
    }
}

// ---------------------------------------------------------------------------------------
// 8. Rejected items are never stored
// ---------------------------------------------------------------------------------------

async fn rejected_items_are_not_kept(db: Db) {
    let s = TestServer::start(db).await;
    let key = s.key(SUP1);
    let broken = without(if031("fix-me"), "/payload/CustomBlock/contractReference");
    let (status, body) = s.post(&key, &json!([if031("fine"), broken])).await;
    assert_eq!(status, 207, "{body}");
    let rs = results(&body);
    let fine = accepted(&rs[0]);
    rejected(&rs[1], &[("SCHEMA_VIOLATION", "/payload/CustomBlock")]);
    assert_eq!(queued(&s, REGS_N, "default").await, std::slice::from_ref(&fine));

    // The corrected item under the same reference is new, not a duplicate.
    let (status, body) = s.post(&key, &json!([if031("fix-me")])).await;
    assert_eq!(status, 202, "{body}");
    let fixed = accepted(&results(&body)[0]);
    assert_ne!(fixed, fine);
    // Items rejected by routing or authorisation leave nothing either.
    let (status, _) = s
        .post(
            &key,
            &json!([with(
                if031("r2"),
                "/payload/CommonBlock/A0/primaryRecipients",
                json!([SUP2])
            )]),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .post(
            &key,
            &json!([with(if031("r3"), "/payload/CommonBlock/S1/senderRoleID", json!("REGS"))]),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(queued(&s, REGS_N, "default").await, [fine, fixed]);
    for reference in ["r2", "r3"] {
        let tx = send_one(&s, &key, if031(reference)).await;
        assert!(!tx.is_empty());
    }
    assert_eq!(queued(&s, REGS_N, "default").await.len(), 4);
}

both_stores!(
    all_accepted_is_202_with_documented_results,
    mixed_is_207,
    none_accepted_is_400,
    unauthenticated_is_401,
    operator_key_cannot_send_403,
    authorisation_only_rejections_are_403,
    too_many_items_413,
    body_too_large_413,
    large_request_within_default_limits_accepted,
    single_item_object_accepted,
    empty_and_non_json_requests_400,
    missing_fields,
    invalid_field_types,
    channel_level_checks,
    event_code_forms_accepted,
    custom_block_schema_violations,
    sender_must_be_caller,
    dcp_acts_for_nominating_participants,
    dcp_must_be_named_exactly,
    roles_held_and_permitted,
    targeted_routing,
    mpan_routing_follows_appointment_history,
    registration_message_changes_appointments,
    bulk_appointment_load,
    bulk_appointment_load_of_a_large_table,
    always_routing_reaches_every_holder,
    sender_is_not_sent_its_own_message,
    no_recipients,
    channels_split_over_endpoints,
    worked_example_obfuscation,
    correlation_ids,
    transaction_ids_unique_and_time_ordered,
    sequential_resend_is_duplicate,
    resend_after_routing_change_is_duplicate,
    reused_reference_with_other_payload_conflicts,
    same_reference_twice_in_one_request,
    concurrent_identical_requests,
    rejected_items_are_not_kept,
    validation_errors_do_not_echo_large_values,
    nul_characters_refused_with_their_path,
);
