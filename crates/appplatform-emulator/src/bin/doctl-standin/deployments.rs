//! Deployments: waiting for one to finish (`apps create --wait`) and godo's `Stringify` of
//! its progress in the error doctl prints when it fails.

use std::time::Duration;

use serde_json::Value;

use crate::{CmdResult, Ctx, err};

pub(crate) async fn wait_for_deployment(ctx: &Ctx, app_id: &str, dep_id: &str) -> CmdResult {
    let interval = std::env::var("DOCTL_STANDIN_POLL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis);
    let mut dotted = false;
    let result = async {
        for attempt in 0..180 {
            if attempt != 0 {
                eprint!(".");
                dotted = true;
            }
            let answer = ctx
                .client
                .call(
                    "GET",
                    &format!("/v2/apps/{app_id}/deployments/{dep_id}"),
                    None,
                )
                .await?;
            let progress = answer
                .pointer("/deployment/progress")
                .cloned()
                .unwrap_or(Value::Null);
            let n = |k: &str| progress.get(k).and_then(Value::as_i64).unwrap_or(0);
            if n("success_steps") == n("total_steps") {
                return Ok(());
            }
            if n("error_steps") > 0 {
                return err(format!(
                    "error deploying app ({app_id}) (deployment ID: {dep_id}):\n{}",
                    stringify_progress(&progress)
                ));
            }
            tokio::time::sleep(interval).await;
        }
        err(format!("timeout waiting to app ({app_id}) deployment"))
    }
    .await;
    if dotted {
        eprintln!();
    }
    result
}

/// `godo.Stringify(progress)`.
fn stringify_progress(p: &Value) -> String {
    let n = |k: &str| p.get(k).and_then(Value::as_i64).unwrap_or(0);
    let mut out = format!(
        "godo.DeploymentProgress{{PendingSteps:{}, RunningSteps:{}, SuccessSteps:{}, ErrorSteps:{}, TotalSteps:{}",
        n("pending_steps"),
        n("running_steps"),
        n("success_steps"),
        n("error_steps"),
        n("total_steps")
    );
    for (key, name) in [("steps", "Steps"), ("summary_steps", "SummarySteps")] {
        if let Some(Value::Array(steps)) = p.get(key) {
            out.push_str(&format!(
                ", {name}:[{}]",
                steps
                    .iter()
                    .map(stringify_step)
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
    }
    out.push('}');
    out
}

fn stringify_step(step: &Value) -> String {
    let q = |k: &str| format!("{:?}", step.get(k).and_then(Value::as_str).unwrap_or(""));
    let mut out = format!(
        "godo.DeploymentProgressStep{{Name:{}, Status:{}",
        q("name"),
        q("status")
    );
    if let Some(Value::Array(steps)) = step.get("steps") {
        out.push_str(&format!(
            ", Steps:[{}]",
            steps
                .iter()
                .map(stringify_step)
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    out.push_str(", StartedAt:time.Time{wall:, ext:}, EndedAt:time.Time{wall:, ext:}");
    if let Some(reason) = step.get("reason").filter(|r| r.is_object()) {
        let rq = |k: &str| format!("{:?}", reason.get(k).and_then(Value::as_str).unwrap_or(""));
        out.push_str(&format!(
            ", Reason:godo.DeploymentProgressStepReason{{Code:{}, Message:{}}}",
            rq("code"),
            rq("message")
        ));
    }
    out.push_str(&format!(
        ", ComponentName:{}, MessageBase:{}}}",
        q("component_name"),
        q("message_base")
    ));
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn stringify_matches_godo() {
        let step = json!({"name": "deploy", "status": "ERROR", "reason": {"code": "C", "message": "m \"q\""}, "component_name": "w"});
        assert_eq!(
            stringify_step(&step),
            "godo.DeploymentProgressStep{Name:\"deploy\", Status:\"ERROR\", StartedAt:time.Time{wall:, ext:}, EndedAt:time.Time{wall:, ext:}, Reason:godo.DeploymentProgressStepReason{Code:\"C\", Message:\"m \\\"q\\\"\"}, ComponentName:\"w\", MessageBase:\"\"}"
        );
    }
}
