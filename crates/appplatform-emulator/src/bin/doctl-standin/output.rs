//! What doctl prints on success: JSON re-encoded in godo's field order, or Go `tabwriter`
//! tables of apps, deployments and instances (with `--format` and `--no-header`).

use appplatform_emulator::godo::{self, encode_indented, reencode};
use serde_json::Value;

use crate::{CmdResult, Ctx};

fn display_json(items: &[Value], schema: &'static godo::Struct) {
    let list: Vec<Value> = items.iter().map(|v| reencode(v, schema)).collect();
    print!("{}", encode_indented(&Value::Array(list)));
}

fn go_display_time(value: Option<&Value>) -> String {
    use time::format_description::well_known::Rfc3339;
    let text = value.and_then(Value::as_str).unwrap_or(godo::ZERO_TIME);
    let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) else {
        return "0001-01-01 00:00:00 +0000 UTC".to_owned();
    };
    let t = t.to_offset(time::UtcOffset::UTC);
    let frac = godo::go_fraction(t.nanosecond());
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}{frac} +0000 UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Go's `text/tabwriter` with padding 4: every cell but the last of a row padded. `columns`
/// are (`--format` key, header); `--format` picks and orders them, `--no-header` drops the
/// header line.
fn table(ctx: &Ctx, columns: &[(&str, &str)], rows: Vec<Vec<String>>) {
    let picked: Vec<usize> = match ctx.args.flag("format") {
        Some(format) => format
            .split(',')
            .filter_map(|key| {
                columns
                    .iter()
                    .position(|(k, _)| k.eq_ignore_ascii_case(key.trim()))
            })
            .collect(),
        None => (0..columns.len()).collect(),
    };
    let mut all: Vec<Vec<String>> = Vec::new();
    if !ctx.args.has("no-header") {
        all.push(picked.iter().map(|&i| columns[i].1.to_owned()).collect());
    }
    all.extend(rows.into_iter().map(|row| {
        picked
            .iter()
            .map(|&i| row.get(i).cloned().unwrap_or_default())
            .collect()
    }));
    let cols = picked.len();
    let mut widths = vec![0usize; cols];
    for row in &all {
        for (i, cell) in row.iter().enumerate().take(cols.saturating_sub(1)) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &all {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < cols {
                out.push_str(&format!("{cell:<width$}", width = widths[i] + 4));
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    print!("{out}");
}

pub(crate) fn s(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

pub(crate) fn display_apps(ctx: &Ctx, apps: &[Value]) -> CmdResult {
    if ctx.json {
        display_json(apps, &godo::APP);
        return Ok(());
    }
    let rows = apps
        .iter()
        .map(|a| {
            vec![
                s(a, "/id"),
                s(a, "/spec/name"),
                s(a, "/default_ingress"),
                s(a, "/active_deployment/id"),
                s(a, "/in_progress_deployment/id"),
                go_display_time(a.get("created_at")),
                go_display_time(a.get("updated_at")),
            ]
        })
        .collect();
    table(
        ctx,
        &[
            ("ID", "ID"),
            ("Spec.Name", "Spec Name"),
            ("DefaultIngress", "Default Ingress"),
            ("ActiveDeployment.ID", "Active Deployment ID"),
            ("InProgressDeployment.ID", "In Progress Deployment ID"),
            ("Created", "Created At"),
            ("Updated", "Updated At"),
        ],
        rows,
    );
    Ok(())
}

pub(crate) fn display_deployments(ctx: &Ctx, deps: &[Value]) -> CmdResult {
    if ctx.json {
        display_json(deps, &godo::DEPLOYMENT);
        return Ok(());
    }
    let n = |d: &Value, k: &str| {
        d.pointer(&format!("/progress/{k}"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let rows = deps
        .iter()
        .map(|d| {
            let mut progress = format!("{}/{}", n(d, "success_steps"), n(d, "total_steps"));
            if n(d, "error_steps") > 0 {
                progress.push_str(&format!(" (errors: {})", n(d, "error_steps")));
            }
            vec![
                s(d, "/id"),
                s(d, "/cause"),
                progress,
                s(d, "/phase"),
                go_display_time(d.get("created_at")),
                go_display_time(d.get("updated_at")),
            ]
        })
        .collect();
    table(
        ctx,
        &[
            ("ID", "ID"),
            ("Cause", "Cause"),
            ("Progress", "Progress"),
            ("Phase", "Phase"),
            ("Created", "Created At"),
            ("Updated", "Updated At"),
        ],
        rows,
    );
    Ok(())
}

pub(crate) fn display_instances(ctx: &Ctx, instances: Option<&Value>) -> CmdResult {
    let list = instances.and_then(Value::as_array);
    if ctx.json {
        match list {
            Some(items) => display_json(items, &godo::INSTANCE),
            None => println!("null"),
        }
        return Ok(());
    }
    let rows = list
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    vec![
                        s(i, "/instance_name"),
                        s(i, "/component_name"),
                        s(i, "/component_type"),
                        s(i, "/instance_alias"),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(
        ctx,
        &[
            ("Name", "Name"),
            ("ComponentName", "ComponentName"),
            ("ComponentType", "ComponentType"),
            ("InstanceAlias", "InstanceAlias"),
        ],
        rows,
    );
    Ok(())
}
