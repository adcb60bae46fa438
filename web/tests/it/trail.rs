//! The message audit trail over HTTP on both stores: for the search (JSON and CSV), the
//! trace API and the pages, who gets what — sender, recipient, another participant, a
//! DCP, operator staff, participants' API keys and nobody signed in — checked on the
//! bodies sent, not on what a browser would show.

use dip_admin::accounts::SessionPolicy;
use dip_testkit::{Db, MS_KEY, REGS_N, SUP1, SUP2, SUP3, both_stores, if909};
use reqwest::Method;
use reqwest::header::{ACCEPT, COOKIE};
use serde_json::json;

use crate::portal::{Auth, Portal, Viewer};

/// The values IF-909 hides from suppliers (as `if909_block` sets them).
const HIDDEN_FROM_SUPPLIERS: [&str; 2] = ["KYST", "2025-01-01T00:00:00Z"];

async fn csv(p: &Portal, viewer: &Viewer<'_>) -> (u16, String) {
    p.text(viewer.auth(), "/api/v1/audit/messages.csv").await
}

async fn every_view_shows_each_viewer_only_its_own(db: Db) {
    let p = Portal::start_on(db, SessionPolicy::default(), false).await;
    let (status, body) = p
        .api(
            Auth::Key(&p.key(MS_KEY)),
            Method::POST,
            "/api/v1/messages",
            Some(json!([if909("we-http")])),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let tx = body["results"][0]["transactionID"].as_str().unwrap().to_owned();

    let (ms, sup1, dcp, ldso, admin) = (
        p.sign_in("ms-user").await,
        p.sign_in("sup1-user").await,
        p.sign_in("dcp-user").await,
        p.sign_in("ldso-user").await,
        p.sign_in("op-auditor").await,
    );
    // (viewer, name, copies it sees; None: the message is not its to see)
    let cases: Vec<(Viewer<'_>, &str, Option<Vec<&str>>)> = vec![
        (Viewer::User(&ms), "sender", Some(vec![SUP1, SUP2, SUP3, REGS_N])),
        (
            Viewer::Key(p.key(MS_KEY)),
            "sender's key",
            Some(vec![SUP1, SUP2, SUP3, REGS_N]),
        ),
        (Viewer::User(&sup1), "recipient", Some(vec![SUP1])),
        (Viewer::Key(p.key(SUP1)), "recipient's key", Some(vec![SUP1])),
        (Viewer::User(&dcp), "DCP of a recipient", Some(vec![SUP2])),
        (Viewer::User(&ldso), "another participant", None),
        (Viewer::Key(p.key(REGS_N).replace('_', "_x")), "a wrong key", None),
        (
            Viewer::User(&admin),
            "operator staff",
            Some(vec![SUP1, SUP2, SUP3, REGS_N]),
        ),
        (Viewer::Nobody, "nobody", None),
    ];
    for (viewer, name, copies) in &cases {
        let (search_status, search) = p.api(viewer.auth(), Method::GET, "/api/v1/audit/messages", None).await;
        let trace_path = format!("/api/v1/audit/messages/{tx}");
        let (trace_status, trace) = p.api(viewer.auth(), Method::GET, &trace_path, None).await;
        let (csv_status, csv_body) = csv(&p, viewer).await;
        let (evidence_status, evidence) = p.text(viewer.auth(), &format!("{trace_path}/evidence")).await;
        match (viewer, copies) {
            (Viewer::Nobody, _) | (Viewer::Key(_), None) => {
                assert_eq!(
                    (search_status, trace_status, csv_status, evidence_status),
                    (401, 401, 401, 401),
                    "{name}"
                );
                continue;
            }
            (_, None) => {
                assert_eq!((search_status, csv_status), (200, 200), "{name}");
                assert_eq!(search["rows"], json!([]), "{name}");
                assert_eq!(csv_body.lines().count(), 1, "{name}: only the header: {csv_body}");
                assert_eq!(trace_status, 404, "{name}: {trace}");
                assert_eq!(evidence_status, 404, "{name}: {evidence}");
                if let Viewer::User(s) = viewer {
                    let (status, html, _) = p.page(Some(s), &format!("/messages/{tx}")).await;
                    assert_eq!(status, 404, "{name}");
                    assert!(!html.contains(MS_KEY), "{name}");
                }
            }
            (_, Some(copies)) => {
                assert_eq!(
                    (search_status, trace_status, csv_status),
                    (200, 200, 200),
                    "{name}: {trace}"
                );
                let listed: Vec<&str> = search["rows"][0]["copies"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["recipient_dip_id"].as_str().unwrap())
                    .collect();
                assert_eq!(&listed, copies, "{name}");
                assert_eq!(trace["copies"].as_array().unwrap().len(), copies.len(), "{name}");
                assert_eq!(csv_body.lines().count(), 1 + copies.len(), "{name}: {csv_body}");
                // The evidence bundle (a tar file) holds the same copies.
                assert_eq!(evidence_status, 200, "{name}: {evidence}");
                assert_eq!(
                    evidence.matches("\"recipientDIPID\"").count(),
                    copies.len(),
                    "{name}: the bundle's copies"
                );
                let recipient = copies.len() == 1;
                // Outside the payload as delivered (whose A0 names the recipients).
                let mut outside = trace.clone();
                outside["payload"] = json!(null);
                let mut bodies = vec![search.to_string(), outside.to_string(), csv_body, evidence];
                if let Viewer::User(s) = viewer {
                    let (status, html, _) = p.page(Some(s), &format!("/messages/{tx}")).await;
                    assert_eq!(status, 200, "{name}");
                    assert!(html.contains(&tx), "{name}");
                    let (status, list, _) = p.page(Some(s), "/messages").await;
                    assert_eq!(status, 200, "{name}");
                    assert!(list.contains(&tx), "{name}");
                    // Everything in the page (its hydration data included) is checked
                    // for masked values; the routing and copies sections for others.
                    let hidden_kept = HIDDEN_FROM_SUPPLIERS.iter().all(|v| !html.contains(v));
                    assert_eq!(hidden_kept, recipient, "{name}: the page's payload");
                    let section = |from: &str, to: &str| {
                        let start = html.find(from).unwrap_or_else(|| panic!("{name}: no {from}"));
                        let end = start + html[start..].find(to).unwrap_or_else(|| panic!("{name}: no {to}"));
                        html[start..end].to_owned()
                    };
                    bodies.push(section("Routing decision</h2>", "Payload</h2>"));
                    bodies.push(section("Recipient copies</h2>", "</main>"));
                    bodies.push(list);
                }
                if !recipient {
                    // The sender and operator staff see the payload as it was sent.
                    let payload = trace["payload"].as_str().unwrap();
                    assert!(HIDDEN_FROM_SUPPLIERS.iter().all(|v| payload.contains(v)), "{name}");
                    continue;
                }
                // A recipient never receives what its role may not see, nor whom else
                // the message went to: not in JSON, CSV or HTML.
                assert!(
                    trace["payload"].as_str().unwrap().contains("«hidden from your role»"),
                    "{name}"
                );
                assert!(
                    HIDDEN_FROM_SUPPLIERS.iter().all(|v| !trace.to_string().contains(v)),
                    "{name}"
                );
                for body in &bodies {
                    for secret in HIDDEN_FROM_SUPPLIERS {
                        assert!(!body.contains(secret), "{name}: {secret} sent to a supplier");
                    }
                    for other in [REGS_N, SUP1, SUP2, SUP3].iter().filter(|d| !copies.contains(d)) {
                        assert!(!body.contains(other), "{name}: {other} shown to a recipient");
                    }
                }
            }
        }
    }
    // A page without a session goes to sign-in, and a participant's user administrator
    // alone may not read messages.
    let (status, _, location) = p.page(None, "/messages").await;
    assert_eq!((status, location.as_deref()), (302, Some("/sign-in?next=/messages")));
    let ua = p.sign_in("sup1-admin").await;
    assert_eq!(
        p.api(Auth::Session(&ua), Method::GET, "/api/v1/audit/messages", None)
            .await
            .0,
        403
    );
    assert_eq!(p.page(Some(&ua), "/messages").await.0, 403);
    let evidence = format!("/api/v1/audit/messages/{tx}/evidence");
    assert_eq!(p.text(Auth::Session(&ua), &evidence).await.0, 403);
}

async fn a_bad_filter_is_a_clear_error_on_the_page_and_the_api(db: Db) {
    let p = Portal::start_on(db, SessionPolicy::default(), false).await;
    let admin = p.sign_in("op-auditor").await;
    let (status, body) = p
        .api(
            Auth::Session(&admin),
            Method::GET,
            "/api/v1/audit/messages?mpan=12",
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["fields"]["mpan"], "An MPAN core is 13 digits.", "{body}");
    let res = p
        .http
        .get(format!("{}/messages?mpan=12", p.base))
        .header(COOKIE, &admin.cookie)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    let html = res.text().await.unwrap();
    assert!(html.contains("An MPAN core is 13 digits."), "{html}");
    let (status, empty) = p
        .api(Auth::Session(&admin), Method::GET, "/api/v1/audit/messages", None)
        .await;
    assert_eq!((status, &empty["total"]), (200, &json!(0)), "{empty}");
}

both_stores!(
    every_view_shows_each_viewer_only_its_own,
    a_bad_filter_is_a_clear_error_on_the_page_and_the_api,
);
