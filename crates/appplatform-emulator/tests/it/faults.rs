//! Faults on demand.

use std::time::Duration;

use appplatform_emulator::HttpFault;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn rate_limit_burst_then_normal_service() {
    let backend = FakePlatform::new();
    let emulator = start(&backend).await;
    emulator.faults().rate_limit(2, 1);
    let expected = &api_responses("rate-limit-429-no-retry")[0];
    for _ in 0..2 {
        let (status, headers, body) =
            send(&emulator, "GET", "/v2/apps?page=1&per_page=200", None).await;
        assert_eq!(status, 429);
        assert_shape(&expected["body"], &body, "", &["id", "message"]);
        assert_eq!(headers["retry-after"], "1");
        assert_eq!(headers["ratelimit-remaining"], "0");
    }
    let (status, _, _) = send(&emulator, "GET", "/v2/apps", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn server_errors_in_every_shape() {
    let backend = FakePlatform::new();
    let emulator = start(&backend).await;
    emulator.faults().server_error(1, 500);
    emulator
        .faults()
        .http(HttpFault::EmptyServerError { status: 500 }, 1);
    emulator.faults().http(HttpFault::BadGatewayHtml, 1);
    let (status, headers, body) = send(&emulator, "GET", "/v2/apps", None).await;
    assert_eq!(status, 500);
    assert_eq!(body, api_responses("server-error-500")[0]["body"]);
    assert!(headers.contains_key("x-request-id"));
    let (status, headers, body) = send(&emulator, "GET", "/v2/apps", None).await;
    assert_eq!(status, 500);
    assert_eq!(body, json!(""));
    assert!(!headers.contains_key("x-request-id"));
    let (status, _, body) = send(&emulator, "GET", "/v2/apps", None).await;
    assert_eq!(status, 502);
    assert_eq!(body, api_responses("server-error-502-html-body")[0]["body"]);
    let (status, _, _) = send(&emulator, "GET", "/v2/apps", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn admin_endpoint_queues_faults() {
    let backend = FakePlatform::new();
    let emulator = start(&backend).await;
    let resp = http()
        .post(format!("{}/_emulator/faults", emulator.url()))
        .bearer_auth(TOKEN)
        .body(
            json!({"fault": "http", "kind": "rate_limited", "retry_after": 3, "count": 1})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, headers, _) = send(&emulator, "GET", "/v2/apps", None).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "3");
    let resp = http()
        .post(format!("{}/_emulator/faults", emulator.url()))
        .bearer_auth("wrong")
        .body(json!({"fault": "clear"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = http()
        .post(format!("{}/_emulator/faults", emulator.url()))
        .bearer_auth(TOKEN)
        .body("{\"fault\": \"nonsense\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn pace_walks_the_phases_in_order() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = appplatform_emulator::Emulator::builder()
        .backend(std::sync::Arc::new(backend.clone()))
        .token(TOKEN)
        .pace(Duration::from_millis(800))
        .start()
        .await
        .unwrap();
    let (_, _, created) = send(
        &emulator,
        "POST",
        "/v2/apps",
        Some(request_body("apps-create-worker-success", 0)),
    )
    .await;
    let dep = created["app"]["pending_deployment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let order = [
        "PENDING_BUILD",
        "BUILDING",
        "PENDING_DEPLOY",
        "DEPLOYING",
        "ACTIVE",
    ];
    let mut seen: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, body) = send(
            &emulator,
            "GET",
            &format!("/v2/apps/{W}/deployments/{dep}"),
            None,
        )
        .await;
        let phase = body["deployment"]["phase"].as_str().unwrap().to_owned();
        let progress = &body["deployment"]["progress"];
        assert!(progress["total_steps"].as_u64().unwrap() > 0);
        if phase != "ACTIVE" {
            assert!(
                progress["success_steps"].as_u64().unwrap_or(0)
                    < progress["total_steps"].as_u64().unwrap()
            );
        }
        if seen.last() != Some(&phase) {
            seen.push(phase.clone());
        }
        if phase == "ACTIVE" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never became ACTIVE: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Phases only move forward (a slow machine may skip some).
    let positions: Vec<usize> = seen
        .iter()
        .map(|p| order.iter().position(|o| o == p).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
}

#[tokio::test]
async fn refused_upgrade_is_403() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start_with_worker(&backend).await;
    emulator.faults().refuse_upgrades(1);
    let (_, _, exec) = send(
        &emulator,
        "GET",
        &format!("/v2/apps/{W}/components/sandbox/exec"),
        None,
    )
    .await;
    let url = exec["url"].as_str().unwrap();
    let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    // A used or unknown token is refused too.
    let bogus = format!("ws://{}/exec?token=nope", emulator.addr());
    assert!(tokio_tungstenite::connect_async(bogus).await.is_err());
}
