//! The fake's GraphQL endpoint: validates each operation against the schema of the version
//! it answers as, records it and answers as the platform does (or as it is told to fail).

use std::time::Duration;

use apollo_compiler::ExecutableDocument;
use apollo_compiler::executable::Selection;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::{
    CONNECTOR_EXCHANGE, CONNECTOR_USER_ID, Call, FakeOpencti, Outage, TOKEN, WORKER_EXCHANGE,
};

fn error(status: StatusCode, message: &str) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({ "errors": [{ "message": message, "name": "VALIDATION_ERROR" }] })),
    )
}

/// The fields of `input` (the JSON of input type `type_name`) that `schema` does not define
/// for that type: a platform refuses the whole operation for any of them.
fn unknown_input_fields(
    schema: &apollo_compiler::Schema,
    type_name: &str,
    input: &Value,
) -> Vec<String> {
    let Some(apollo_compiler::schema::ExtendedType::InputObject(def)) = schema.types.get(type_name)
    else {
        return vec![format!("{type_name} (no such input type)")];
    };
    input
        .as_object()
        .map(|o| {
            o.keys()
                .filter(|k| !def.fields.keys().any(|f| f.as_str() == k.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The root field of a valid operation (`workEdit.<sub>` for work edits), or the answer.
#[allow(clippy::type_complexity)]
fn root_field(
    schema: &apollo_compiler::validation::Valid<apollo_compiler::Schema>,
    query: &str,
) -> Result<String, (StatusCode, &'static str, Option<String>)> {
    let doc = ExecutableDocument::parse_and_validate(schema, query, "op.graphql").map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            "operation does not validate against the schema",
            Some(format!("{query}\n{}", e.errors)),
        )
    })?;
    let Ok(op) = doc.operations.get(None) else {
        return Err((StatusCode::BAD_REQUEST, "one operation expected", None));
    };
    let root = op.selection_set.selections.iter().find_map(|s| match s {
        Selection::Field(f) => Some(f),
        _ => None,
    });
    let Some(root) = root else {
        return Err((StatusCode::BAD_REQUEST, "no field", None));
    };
    let mut field = root.name.to_string();
    if field == "workEdit"
        && let Some(Selection::Field(sub)) = root.selection_set.selections.first()
    {
        field = format!("workEdit.{}", sub.name);
    }
    Ok(field)
}

pub(super) async fn graphql(
    State(fake): State<FakeOpencti>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    answer(fake, headers, body, None).await
}

pub(super) async fn graphql_replica(
    State(fake): State<FakeOpencti>,
    Path(replica): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    answer(fake, headers, body, Some(replica)).await
}

async fn answer(
    fake: FakeOpencti,
    headers: HeaderMap,
    body: Value,
    replica: Option<String>,
) -> (StatusCode, Json<Value>) {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return (
            StatusCode::OK,
            Json(
                json!({ "errors": [{ "message": "You must be logged in to do this.", "name": "AUTH_REQUIRED" }] }),
            ),
        );
    }
    let query = body["query"].as_str().unwrap_or_default().to_string();
    let mut variables = body.get("variables").cloned().unwrap_or(Value::Null);
    let version = fake.state.lock().unwrap().version.clone();
    let key = (version.clone(), query.clone());
    let cached = fake.state.lock().unwrap().validated.get(&key).cloned();
    let field = match cached {
        Some(field) => field,
        None => match root_field(crate::schema_for(&version), &query) {
            Ok(field) => {
                fake.state
                    .lock()
                    .unwrap()
                    .validated
                    .insert(key, field.clone());
                field
            }
            Err((status, message, invalid)) => {
                if let Some(invalid) = invalid {
                    fake.state.lock().unwrap().invalid.push(invalid);
                }
                return error(status, message);
            }
        },
    };
    if field == "registerConnector" {
        let unknown = unknown_input_fields(
            crate::schema_for(&version),
            "RegisterConnectorInput",
            &variables["input"],
        );
        if !unknown.is_empty() {
            let message = format!(
                "Variable \"$input\" got invalid value; field(s) {unknown:?} not defined by type \"RegisterConnectorInput\" (OpenCTI {version})."
            );
            fake.state.lock().unwrap().invalid.push(message.clone());
            return error(StatusCode::BAD_REQUEST, &message);
        }
    }
    if field == "workEdit.addExpectations" && fake.state.lock().unwrap().dead_works {
        fake.state.lock().unwrap().calls.push(Call {
            field: "workEdit.addExpectations(not alive)".into(),
            variables,
            draft_id: None,
            at: std::time::Instant::now(),
            replica,
            work_id: None,
        });
        return (
            StatusCode::OK,
            Json(
                json!({ "errors": [{ "message": "Work not alive", "name": "WORK_NOT_ALIVE" }], "data": null }),
            ),
        );
    }
    if field == "stixBundlePush" && !fake.state.lock().unwrap().keep_bundles {
        let len = variables["bundle"].as_str().map_or(0, str::len);
        variables["bundle"] = json!(len);
    }
    let draft_id = headers
        .get("opencti-draft-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(agent) = headers.get("user-agent").and_then(|v| v.to_str().ok()) {
        fake.state
            .lock()
            .unwrap()
            .user_agents
            .insert(agent.to_string());
    }
    if fake.state.lock().unwrap().refuse.contains(&field) {
        return (
            StatusCode::OK,
            Json(
                json!({ "errors": [{ "message": "You are not allowed to do this.", "name": "FORBIDDEN_ACCESS" }] }),
            ),
        );
    }
    let outage = fake.state.lock().unwrap().outage;
    if let Some(outage) = outage {
        fake.state.lock().unwrap().calls.push(Call {
            field: format!("{field}({outage:?})"),
            variables: variables.clone(),
            draft_id: draft_id.clone(),
            at: std::time::Instant::now(),
            replica: replica.clone(),
            work_id: None,
        });
        if outage == Outage::Hold {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"message": "503 Service Temporarily Unavailable"})),
        );
    }
    let hangs = fake.state.lock().unwrap().hang.contains(&field);
    if hangs {
        fake.state.lock().unwrap().calls.push(Call {
            field: format!("{field}(hung)"),
            variables,
            draft_id,
            at: std::time::Instant::now(),
            replica,
            work_id: None,
        });
        // Longer than any test: the client must give up on its own.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return error(StatusCode::GATEWAY_TIMEOUT, "hung");
    }
    if field == "stixBundlePush" {
        let mut st = fake.state.lock().unwrap();
        if st.fail_pushes_after > 0 {
            st.fail_pushes_after -= 1;
        } else if st.fail_pushes > 0 {
            st.fail_pushes -= 1;
            st.calls.push(Call {
                field: "stixBundlePush(failed)".into(),
                variables,
                draft_id,
                at: std::time::Instant::now(),
                replica: replica.clone(),
                work_id: None,
            });
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"errors": [{"message": "platform restarting"}]})),
            );
        }
    }
    let data = match field.as_str() {
        "about" => json!({ "about": { "version": version } }),
        "me" => {
            json!({ "me": { "id": "88ec0c6a-13ce-5e39-b486-354fe4a7084f", "name": "connector-user" } })
        }
        "registerConnector" => {
            let id = variables["input"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            fake.declare_queues(&id).await;
            let state = fake
                .state
                .lock()
                .unwrap()
                .states
                .get(&id)
                .cloned()
                .flatten();
            let push_routing = if fake.state.lock().unwrap().unbound_push {
                format!("push_routing_unbound_{id}")
            } else {
                format!("push_routing_{id}")
            };
            json!({ "registerConnector": {
                "id": id,
                "connector_state": state,
                "config": {
                    "connection": { "host": "127.0.0.1", "vhost": "/", "use_ssl": false, "port": 5672, "user": "guest", "pass": "guest" },
                    "listen": FakeOpencti::listen_queue(&id),
                    "listen_routing": format!("listen_routing_{id}"),
                    "listen_exchange": CONNECTOR_EXCHANGE,
                    "push": FakeOpencti::push_queue(&id),
                    "push_routing": push_routing,
                    "push_exchange": WORKER_EXCHANGE,
                },
                "connector_user_id": CONNECTOR_USER_ID,
            }})
        }
        "pingConnector" => {
            let id = variables["id"].as_str().unwrap_or_default().to_string();
            let mut st = fake.state.lock().unwrap();
            st.infos
                .insert(id.clone(), variables["connectorInfo"].clone());
            if let Some(lagging) = st.lagging.remove(&id) {
                // A slow platform answers the state of an earlier ping.
                st.states
                    .insert(id.clone(), variables["state"].as_str().map(str::to_string));
                return (
                    StatusCode::OK,
                    Json(
                        json!({"data": { "pingConnector": { "id": id, "connector_state": lagging } }}),
                    ),
                );
            }
            if let Some(pos) = st.reset.iter().position(|r| *r == id) {
                // The platform discards the sent state once after a reset.
                st.reset.remove(pos);
                st.states.insert(id.clone(), Some(String::new()));
            } else {
                st.states
                    .insert(id.clone(), variables["state"].as_str().map(str::to_string));
            }
            json!({ "pingConnector": { "id": id, "connector_state": st.states.get(&id).cloned().flatten() } })
        }
        "workAdd" => {
            let mut st = fake.state.lock().unwrap();
            st.works += 1;
            json!({ "workAdd": { "id": format!("work_{}_{}", variables["connectorId"].as_str().unwrap_or(""), st.works) } })
        }
        f if f.starts_with("workEdit.") => {
            let sub = f.trim_start_matches("workEdit.");
            json!({ "workEdit": { sub: variables["id"].clone() } })
        }
        "stixCoreObject" => {
            let id = variables["id"].as_str().unwrap_or_default();
            let st = fake.state.lock().unwrap();
            // `toStix` is the export registered in `stix`, if any (a string, as the platform's).
            let entity = st.entities.get(id).cloned().map(|mut e| {
                e["toStix"] = st
                    .stix
                    .get(id)
                    .map(|s| Value::String(s.to_string()))
                    .unwrap_or(Value::Null);
                e
            });
            json!({ "stixCoreObject": entity })
        }
        "markingDefinition" => {
            let id = variables["id"].as_str().unwrap_or_default();
            json!({ "markingDefinition": fake.state.lock().unwrap().markings.get(id).cloned() })
        }
        "workEdit.ping" => json!({ "workEdit": { "ping": variables["id"] } }),
        "connector" => {
            let id = variables["id"].as_str().unwrap_or_default();
            let st = fake.state.lock().unwrap();
            let bytes = st.queue_bytes.get(id).copied().unwrap_or(0.0);
            let info = st.infos.get(id).cloned().unwrap_or(Value::Null);
            let info = json!({
                "last_run_datetime": info["last_run_datetime"],
                "next_run_datetime": info["next_run_datetime"],
            });
            let state = st.states.get(id).cloned().flatten();
            json!({ "connector": {
                "id": id,
                "connector_state": state,
                "connector_info": info,
                "connector_queue_details": { "messages_number": 0.0, "messages_size": bytes },
            } })
        }
        "stixBundlePush" => json!({ "stixBundlePush": true }),
        "playbookStepExecution" => json!({ "playbookStepExecution": true }),
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the fake does not answer {other}"),
            );
        }
    };
    // Recorded once handled, so a test that saw the call also sees its effects (queues).
    let work_id = (field == "workAdd")
        .then(|| data["workAdd"]["id"].as_str().map(str::to_string))
        .flatten();
    fake.state.lock().unwrap().calls.push(Call {
        field,
        variables,
        draft_id,
        at: std::time::Instant::now(),
        replica,
        work_id,
    });
    (StatusCode::OK, Json(json!({ "data": data })))
}
