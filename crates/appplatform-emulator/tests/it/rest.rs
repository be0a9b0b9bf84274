//! The REST contract against the recorded API answers.

use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn create_worker_matches_fixture() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start(&backend).await;
    let (status, headers, body) = send(
        &emulator,
        "POST",
        "/v2/apps",
        Some(request_body("apps-create-worker-success", 0)),
    )
    .await;
    let expected = &api_responses("apps-create-worker-success")[0];
    assert_eq!(status, 200);
    assert_shape(&expected["body"], &body, "", EXACT);
    assert_eq!(body["app"]["id"], W);
    assert_eq!(body["app"]["spec"], expected["body"]["app"]["spec"]);
    for h in [
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "x-request-id",
    ] {
        assert!(headers.contains_key(h), "missing header {h}");
    }
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");
}

#[tokio::test]
async fn create_service_adds_ingress_like_the_api() {
    let backend = FakePlatform::new().with_ids(&[S]);
    let emulator = start(&backend).await;
    let (status, _, body) = send(
        &emulator,
        "POST",
        "/v2/apps",
        Some(request_body("apps-create-service-success", 0)),
    )
    .await;
    let expected = &api_responses("apps-create-service-success")[0];
    assert_eq!(status, 200);
    assert_shape(&expected["body"], &body, "", EXACT);
    assert_eq!(
        body["app"]["spec"]["ingress"],
        expected["body"]["app"]["spec"]["ingress"]
    );
}

#[tokio::test]
async fn invalid_spec_is_400_with_the_field() {
    let backend = FakePlatform::new();
    let emulator = start(&backend).await;
    let (status, headers, body) = send(
        &emulator,
        "POST",
        "/v2/apps",
        Some(request_body("apps-create-invalid-spec-400", 0)),
    )
    .await;
    let expected = &api_responses("apps-create-invalid-spec-400")[0];
    assert_eq!(status, 400);
    assert_shape(&expected["body"], &body, "", &["id"]);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("error validating app spec field \"services.health_check.port\": "),
        "{message}"
    );
    assert_eq!(
        headers["x-request-id"],
        body["request_id"].as_str().unwrap()
    );
    assert_eq!(backend.app_count(), 0, "nothing created");
}

#[tokio::test]
async fn malformed_bodies_and_unknown_fields_are_400_and_the_server_keeps_serving() {
    let backend = FakePlatform::new();
    let emulator = start(&backend).await;
    for body in [
        "{not json".to_owned(),
        "[1,2]".to_owned(),
        json!({"spec": {"name": "ok-app", "workers": [{"name": "wk", "image": {"registry_type": "GHCR", "registry": "o", "repository": "r", "tag": "latest"}}]}, "bogus": 1}).to_string(),
        json!({"spec": {"name": "ok-app", "workers": [{"name": "wk", "image": {"registry_type": "GHCR", "registry": "o", "repository": "r", "tag": "latest"}}], "sandbox_mode": true}}).to_string(),
        json!({}).to_string(),
    ] {
        let (status, _, answer) = send(&emulator, "POST", "/v2/apps", Some(body.clone())).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(answer["id"], "bad_request");
    }
    let (_, _, answer) = send(
        &emulator,
        "POST",
        "/v2/apps",
        Some(json!({"spec": {"name": "ok-app", "workers": [{"name": "wk", "image": {"registry_type": "GHCR", "registry": "o", "repository": "r", "tag": "latest"}}], "sandbox_mode": true}}).to_string()),
    )
    .await;
    assert_eq!(
        answer["message"],
        "error validating app spec field \"sandbox_mode\": unknown field"
    );
    let (status, _, _) = send(&emulator, "GET", "/v2/apps", None).await;
    assert_eq!(status, 200);
    assert_eq!(backend.app_count(), 0);
}

#[tokio::test]
async fn taken_name_is_409() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start(&backend).await;
    create_worker(&emulator).await;
    let (status, _, body) = send(
        &emulator,
        "POST",
        "/v2/apps",
        Some(request_body("apps-create-worker-success", 0)),
    )
    .await;
    assert_eq!(status, 409);
    assert_shape(
        &api_responses("apps-create-conflict-409")[0]["body"],
        &body,
        "",
        &["id", "message"],
    );
}

#[tokio::test]
async fn bad_or_missing_token_is_401() {
    let backend = FakePlatform::new();
    let emulator = start(&backend).await;
    let expected = &api_responses("auth-bad-token-401")[0];
    for auth in [Some("Bearer wrong"), None, Some("Basic TOKEN")] {
        let mut req = http().get(format!("{}/v2/apps?page=1&per_page=200", emulator.url()));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_shape(&expected["body"], &body, "", &["id", "message"]);
    }
}

#[tokio::test]
async fn get_walks_to_active_only_when_the_backend_is_active() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start(&backend).await;
    create_worker(&emulator).await;
    backend.set_state(W, FakeState::Deploying);
    let (status, _, body) = send(&emulator, "GET", &format!("/v2/apps/{W}"), None).await;
    assert_eq!(status, 200);
    assert_shape(
        &api_responses("apps-get-deploying-worker")[0]["body"],
        &body,
        "",
        EXACT,
    );

    backend.set_state(W, FakeState::Active);
    let (_, _, body) = send(&emulator, "GET", &format!("/v2/apps/{W}"), None).await;
    assert_shape(
        &api_responses("apps-get-active-worker")[0]["body"],
        &body,
        "",
        EXACT,
    );
    let dep = &body["app"]["active_deployment"];
    assert_eq!(
        dep["progress"]["success_steps"],
        dep["progress"]["total_steps"]
    );
}

#[tokio::test]
async fn active_service_has_urls() {
    let backend = FakePlatform::new().with_ids(&[S]);
    let emulator = start(&backend).await;
    create_from_fixture(&emulator, "apps-create-service-success").await;
    let (_, _, body) = send(&emulator, "GET", &format!("/v2/apps/{S}"), None).await;
    assert_shape(
        &api_responses("apps-get-active-service")[0]["body"],
        &body,
        "",
        EXACT,
    );
}

#[tokio::test]
async fn failed_deployment_is_error_with_reason() {
    let backend = FakePlatform::new().with_ids(&[E]);
    let emulator = start(&backend).await;
    emulator.faults().fail_next_deployment(
        "Your deploy failed because your container exited with a non-zero exit code.",
    );
    let spec =
        request_body("apps-create-worker-success", 0).replace("sandbox-7f3a", "sandbox-bad-5e1c");
    send(&emulator, "POST", "/v2/apps", Some(spec)).await;
    let (_, _, body) = send(&emulator, "GET", &format!("/v2/apps/{E}"), None).await;
    assert_shape(
        &api_responses("apps-get-error")[0]["body"],
        &body,
        "",
        EXACT,
    );
    let dep_id = body["app"]["in_progress_deployment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, _, list) = send(
        &emulator,
        "GET",
        &format!("/v2/apps/{E}/deployments?page=1&per_page=200"),
        None,
    )
    .await;
    assert_shape(
        &api_responses("apps-list-deployments-error")[0]["body"],
        &list,
        "",
        EXACT,
    );
    let (_, _, one) = send(
        &emulator,
        "GET",
        &format!("/v2/apps/{E}/deployments/{dep_id}"),
        None,
    )
    .await;
    assert_shape(
        &api_responses("apps-get-deployment-error")[0]["body"],
        &one,
        "",
        EXACT,
    );
}

#[tokio::test]
async fn backend_failure_is_error_with_the_backend_reason() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start(&backend).await;
    create_worker(&emulator).await;
    backend.set_state(
        W,
        FakeState::Failed("image not found: sandbox-python".into()),
    );
    let (_, _, body) = send(&emulator, "GET", &format!("/v2/apps/{W}"), None).await;
    let dep = &body["app"]["in_progress_deployment"];
    assert_eq!(dep["phase"], "ERROR");
    assert_eq!(dep["progress"]["error_steps"], 1);
    assert!(body.to_string().contains("image not found: sandbox-python"));
}

#[tokio::test]
async fn unknown_ids_are_404() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start(&backend).await;
    create_worker(&emulator).await;
    let expected = &api_responses("apps-get-not-found-404")[0]["body"];
    for (method, path) in [
        ("GET", format!("/v2/apps/{X}")),
        ("DELETE", format!("/v2/apps/{X}")),
        ("GET", "/v2/apps/sandbox-7f3a".to_owned()),
        ("GET", format!("/v2/apps/{W}/deployments/{X}")),
        (
            "GET",
            format!("/v2/apps/{W}/components/nosuchcomponent/exec"),
        ),
        ("GET", format!("/v2/apps/{X}/instances")),
    ] {
        let (status, _, body) = send(&emulator, method, &path, None).await;
        assert_eq!(status, 404, "{method} {path}");
        assert_shape(expected, &body, "", &["id", "message"]);
    }
}

#[tokio::test]
async fn list_paginates_with_links_and_meta() {
    let backend = FakePlatform::new().with_ids(&[W, S]);
    let emulator = start(&backend).await;
    let (_, _, empty) = send(&emulator, "GET", "/v2/apps?page=1&per_page=200", None).await;
    assert_eq!(empty, api_responses("apps-list-empty")[0]["body"]);
    create_worker(&emulator).await;
    create_from_fixture(&emulator, "apps-create-service-success").await;
    let (_, _, two) = send(&emulator, "GET", "/v2/apps?page=1&per_page=200", None).await;
    // The recording has `"links":{"pages":{}}` here and `"links":{}` elsewhere; both mean "one
    // page". The emulator always sends `{}` for a single page.
    let mut expected = api_responses("apps-list-two")[0]["body"].clone();
    expected["links"] = json!({});
    assert_shape(&expected, &two, "", EXACT);
    let pages = api_responses("apps-list-paginated");
    let (_, _, p1) = send(&emulator, "GET", "/v2/apps?page=1&per_page=1", None).await;
    assert_shape(&pages[0]["body"], &p1, "", EXACT);
    assert!(
        p1["links"]["pages"]["last"]
            .as_str()
            .unwrap()
            .ends_with("/v2/apps?page=2&per_page=1")
    );
    let (_, _, p2) = send(&emulator, "GET", "/v2/apps?page=2&per_page=1", None).await;
    assert_shape(&pages[1]["body"], &p2, "", EXACT);
    assert_eq!(p2["apps"][0]["id"], S);
}

#[tokio::test]
async fn delete_removes_the_app_from_emulator_and_backend() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start(&backend).await;
    create_worker(&emulator).await;
    let (status, _, body) = send(&emulator, "DELETE", &format!("/v2/apps/{W}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(body, api_responses("apps-delete-force-success")[0]["body"]);
    assert_eq!(backend.app_count(), 0);
    let (status, _, _) = send(&emulator, "GET", &format!("/v2/apps/{W}"), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn deployments_and_instances_match_fixtures() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start(&backend).await;
    create_worker(&emulator).await;
    let (_, _, list) = send(
        &emulator,
        "GET",
        &format!("/v2/apps/{W}/deployments?page=1&per_page=200"),
        None,
    )
    .await;
    assert_shape(
        &api_responses("apps-list-deployments-active-worker")[0]["body"],
        &list,
        "",
        EXACT,
    );
    let dep_id = list["deployments"][0]["id"].as_str().unwrap().to_owned();
    let (_, _, one) = send(
        &emulator,
        "GET",
        &format!("/v2/apps/{W}/deployments/{dep_id}"),
        None,
    )
    .await;
    assert_shape(
        &api_responses("apps-get-deployment-active")[0]["body"],
        &one,
        "",
        EXACT,
    );
    let (_, _, inst) = send(&emulator, "GET", &format!("/v2/apps/{W}/instances"), None).await;
    assert_eq!(inst, api_responses("apps-list-instances")[0]["body"]);
}

#[tokio::test]
async fn update_records_a_new_deployment() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start(&backend).await;
    create_worker(&emulator).await;
    let put = requests("apps-create-upsert-409")[2]["body"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, body) = send(&emulator, "PUT", &format!("/v2/apps/{W}"), Some(put)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["app"]["pending_deployment"]["phase"], "PENDING_BUILD");
    let (_, _, list) = send(&emulator, "GET", &format!("/v2/apps/{W}/deployments"), None).await;
    assert_eq!(list["meta"]["total"], 2);
    assert_eq!(list["deployments"][0]["cause"], "app spec updated");
    assert_eq!(list["deployments"][0]["phase"], "ACTIVE");
    assert_eq!(list["deployments"][1]["phase"], "SUPERSEDED");
}

#[tokio::test]
async fn exec_and_logs_urls_have_doctl_shapes() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start(&backend).await;
    let created = create_worker(&emulator).await;
    let dep = created["app"]["pending_deployment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, exec) = send(
        &emulator,
        "GET",
        &format!("/v2/apps/{W}/components/sandbox/exec"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let url = exec["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!(
            "ws://127.0.0.1:{}/exec?token=",
            emulator.addr().port()
        )),
        "{url}"
    );
    let (status, _, exec) = send(
        &emulator,
        "GET",
        &format!("/v2/apps/{W}/deployments/{dep}/components/sandbox/exec?instance_name=sandbox-5d9f-x2v9k"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{exec}");
    let live = format!(
        "/v2/apps/{W}/deployments/{dep}/logs?type=RUN&follow=true&tail_lines=-1&component_name=sandbox"
    );
    let (_, _, body) = send(&emulator, "GET", &live, None).await;
    assert!(
        body["live_url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{body}"
    );
    let historic = live.replace("follow=true", "follow=false");
    let (_, _, body) = send(&emulator, "GET", &historic, None).await;
    let url = body["historic_urls"][0].as_str().unwrap().to_owned();
    // Fetched without auth, like a presigned URL.
    let text = http().get(&url).send().await.unwrap().text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0].starts_with("sandbox 20") && lines[0].ends_with(" line 1"),
        "{text}"
    );
}

#[tokio::test]
async fn unimplemented_routes_say_so() {
    let backend = FakePlatform::new();
    let emulator = start(&backend).await;
    let (status, _, body) = send(&emulator, "GET", "/v2/apps/regions", None).await;
    // `regions` reads as an app id on this route: a 404, like an unknown app.
    assert_eq!(status, 404, "{body}");
    let (status, _, body) = send(&emulator, "GET", "/v2/droplets", None).await;
    assert_eq!(status, 501);
    assert_eq!(body["id"], "not_implemented");
}

#[tokio::test]
async fn requests_are_recorded_with_bodies() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start(&backend).await;
    create_worker(&emulator).await;
    let recorded = emulator.received_requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].method, "POST");
    assert_eq!(recorded[0].path, "/v2/apps");
    assert_eq!(
        String::from_utf8_lossy(&recorded[0].body),
        request_body("apps-create-worker-success", 0)
    );
    assert!(
        !format!("{:?}", recorded[0]).contains(TOKEN),
        "token redacted in Debug"
    );
}

#[tokio::test]
async fn yaml_bodies_new_deployments_and_rename_conflicts() {
    let backend = FakePlatform::new().with_ids(&[W, S]);
    let emulator = start(&backend).await;
    let yaml = "spec:\n  name: yaml-app\n  workers:\n    - name: sandbox\n      image: {registry_type: GHCR, registry: o, repository: sandbox-python, tag: latest}\n";
    let resp = http()
        .post(format!("{}/v2/apps", emulator.url()))
        .bearer_auth(TOKEN)
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["app"]["spec"]["name"], "yaml-app");

    let (status, _, dep) = send(
        &emulator,
        "POST",
        &format!("/v2/apps/{W}/deployments"),
        Some("{\"force_build\":false}".into()),
    )
    .await;
    assert_eq!(status, 200, "{dep}");
    assert_eq!(dep["deployment"]["phase"], "PENDING_BUILD");
    assert_eq!(dep["deployment"]["cause"], "manual");
    let (_, _, list) = send(&emulator, "GET", &format!("/v2/apps/{W}/deployments"), None).await;
    assert_eq!(list["meta"]["total"], 2);

    send(
        &emulator,
        "POST",
        "/v2/apps",
        Some(request_body("apps-create-worker-success", 0)),
    )
    .await;
    let rename = json!({"spec": {"name": "sandbox-7f3a", "workers": [{"name": "sandbox", "image": {"registry_type": "GHCR", "registry": "o", "repository": "r", "tag": "latest"}}]}});
    let (status, _, body) = send(
        &emulator,
        "PUT",
        &format!("/v2/apps/{W}"),
        Some(rename.to_string()),
    )
    .await;
    assert_eq!(status, 409, "{body}");
}
