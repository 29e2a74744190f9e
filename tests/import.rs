//! PermissionService.ImportResources on both backends: messages each committed at one revision,
//! read back with the import's token on another instance; importing the same items again
//! changes nothing; every refusal (empty or oversized message, no kind, a malformed field, an
//! unknown parent, a grant across workspaces, a repeated resource, a cycle, a move to another
//! workspace) names its item and line and writes nothing of its message. Also the
//! `sentinel import resources` command: JSON lines and CSV, a malformed line stopping it before
//! anything is sent, and a stopped import resumed from its last checkpoint.

mod common;

use common::clients::{fresh, perms, rref, user_grantee};
use common::contract::refused;
use common::resources::{create_group, lookup_all};
use common::{Backend, TestApp, allowed, service_key, sign_in, with_service_key};
use sentinel::proto::v1::import_item::Item;
use sentinel::proto::v1::{
    self as pb, ImportItem, ImportResourcesRequest, Permission, RegisterResourceRequest,
    ShareRequest, Visibility,
};
use tonic::{Code, Status};

both_backends!(
    an_import_is_committed_message_by_message_and_can_be_sent_again,
    a_refused_item_refuses_its_message_only,
    the_import_command_reads_files_and_resumes,
);

fn resource(line: u64, t: &str, id: &str, workspace: &str, parent: Option<&str>) -> ImportItem {
    ImportItem {
        line,
        item: Some(Item::Resource(RegisterResourceRequest {
            resource_type: t.into(),
            resource_id: id.into(),
            workspace_id: workspace.into(),
            owner_id: String::new(),
            visibility: Visibility::Private as i32,
            parent: parent.and_then(|p| rref("folder", p)),
            upsert: false,
        })),
    }
}

fn grant(line: u64, t: &str, id: &str, user: impl ToString, permission: Permission) -> ImportItem {
    ImportItem {
        line,
        item: Some(Item::Grant(ShareRequest {
            resource: rref(t, id),
            grantee: user_grantee(user),
            permission: permission as i32,
            expires_at: None,
        })),
    }
}

async fn import(
    app: &TestApp,
    key: &str,
    messages: Vec<Vec<ImportItem>>,
) -> Result<pb::ImportResourcesResponse, Status> {
    let stream = tokio_stream::iter(
        messages
            .into_iter()
            .map(|items| ImportResourcesRequest { items }),
    );
    perms(app)
        .import_resources(with_service_key(stream, key))
        .await
        .map(|r| r.into_inner())
}

fn revision(token: &str) -> i64 {
    sentinel::model::ConsistencyToken::parse("token", token)
        .unwrap()
        .revision()
        .0
}

fn counts(r: &pb::ImportResourcesResponse) -> [u64; 6] {
    [
        r.resources_created,
        r.resources_updated,
        r.resources_unchanged,
        r.grants_set,
        r.grants_unchanged,
        r.messages,
    ]
}

async fn an_import_is_committed_message_by_message_and_can_be_sent_again(backend: Backend) {
    let (a, db) = TestApp::spawn(backend).await;
    let b = TestApp::start(db.config()).await;
    let key = service_key(&a, "docs").await;
    let ann = sign_in(&a, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(&a, "bob@example.com", "acme", "viewer").await;
    let w = ann.scope.as_ref().unwrap().workspace.id;
    let team = create_group(&a, &ann.access_token, w, "team").await;
    let w = w.to_string();
    let first = vec![
        resource(1, "folder", "f", &w, None),
        resource(2, "doc", "d1", &w, Some("f")),
        resource(3, "doc", "d2", &w, None),
        grant(4, "doc", "d2", bob.user.id, Permission::View),
        ImportItem {
            line: 5,
            item: Some(Item::Grant(ShareRequest {
                resource: rref("folder", "f"),
                grantee: common::clients::group_grantee(team),
                permission: Permission::Edit as i32,
                expires_at: None,
            })),
        },
    ];
    // The second message's resources hang under the first's.
    let second = vec![
        resource(6, "folder", "g", &w, Some("f")),
        resource(7, "doc", "d3", &w, None),
        grant(8, "doc", "d3", bob.user.id, Permission::Edit),
        grant(9, "doc", "d3", bob.user.id, Permission::Edit),
    ];
    // The current revision: a write that changes nothing answers it.
    let before = perms(&a)
        .write_batch(with_service_key(
            pb::WriteBatchRequest {
                operations: vec![pb::WriteOperation {
                    operation: Some(pb::write_operation::Operation::Delete(
                        pb::DeleteResourceRequest {
                            resource: rref("doc", "none"),
                            allow_missing: true,
                        },
                    )),
                }],
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner()
        .consistency_token;
    let before = revision(&before);
    let response = import(&a, &key, vec![first.clone(), second.clone()])
        .await
        .unwrap();
    assert_eq!(counts(&response), [5, 0, 0, 3, 1, 2], "{response:?}");
    assert_eq!(
        revision(&response.consistency_token),
        before + 2,
        "one revision a message"
    );
    // Read-your-writes on the other instance with the import's token.
    let (_, ids) = lookup_all(
        &b,
        &key,
        &bob.access_token,
        "doc",
        "view",
        10,
        fresh(&response.consistency_token),
    )
    .await;
    assert_eq!(ids, ["d2", "d3"]);
    assert!(allowed(&b, &key, &bob.access_token, "doc", "d3", "edit").await);
    assert!(!allowed(&b, &key, &bob.access_token, "doc", "d1", "view").await);
    // The same items again change nothing and take no revision.
    let again = import(&a, &key, vec![first.clone(), second.clone()])
        .await
        .unwrap();
    assert_eq!(counts(&again), [0, 0, 5, 0, 4, 2], "{again:?}");
    assert_eq!(again.consistency_token, response.consistency_token);
    // Changed items replace what they describe.
    let mut changed = first.clone();
    if let Some(Item::Resource(r)) = &mut changed[2].item {
        r.visibility = Visibility::Workspace as i32;
    }
    changed[3] = grant(4, "doc", "d2", bob.user.id, Permission::Edit);
    let updated = import(&a, &key, vec![changed]).await.unwrap();
    assert_eq!(counts(&updated), [0, 1, 2, 1, 1, 1], "{updated:?}");
    assert!(allowed(&a, &key, &bob.access_token, "doc", "d2", "edit").await);
    assert!(allowed(&a, &key, &ann.access_token, "doc", "d2", "view").await);
    // One audit event a message that changed something.
    assert_eq!(common::audit_count(&db, "resources.imported").await, 3);
    b.stop().await;
    a.stop().await;
}

async fn a_refused_item_refuses_its_message_only(backend: Backend) {
    let (app, db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let zed = sign_in(&app, "zed@example.com", "other", "owner").await;
    let w = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let other = zed.scope.as_ref().unwrap().workspace.id.to_string();
    import(
        &app,
        &key,
        vec![vec![
            resource(1, "folder", "a", &w, None),
            resource(2, "folder", "b", &w, Some("a")),
        ]],
    )
    .await
    .unwrap();
    let new0 = || resource(10, "doc", "new0", &w, None);
    let cases: Vec<(Vec<ImportItem>, &str)> = vec![
        (vec![], "items: must hold 1 to 5000"),
        (
            (0..5001)
                .map(|n| resource(n, "doc", &format!("n{n}"), &w, None))
                .collect(),
            "items: must hold 1 to 5000 items (it holds 5001)",
        ),
        (
            vec![
                new0(),
                ImportItem {
                    line: 11,
                    item: None,
                },
            ],
            "items[1].item: is required: one of resource, grant (line 11)",
        ),
        (
            vec![new0(), resource(12, "Doc", "x", &w, None)],
            "items[1].resource.resource_type",
        ),
        (
            vec![new0(), resource(13, "doc", "x", &w, Some("absent"))],
            "items[1]: parent resource not found (line 13)",
        ),
        (
            vec![
                new0(),
                grant(14, "doc", "new0", zed.user.id, Permission::View),
            ],
            "items[1]: the grantee is not a member of the resource's workspace (line 14)",
        ),
        (
            vec![new0(), resource(15, "doc", "new0", &w, None)],
            "items[1].resource.resource_id: repeats items[0]",
        ),
        (
            vec![new0(), resource(16, "folder", "a", &w, Some("b"))],
            "items[1]: the parent would create a cycle (line 16)",
        ),
        (
            vec![new0(), resource(17, "folder", "b", &other, None)],
            "items[1]: workspace_id: the resource is registered in another workspace",
        ),
        (
            vec![
                new0(),
                grant(18, "doc", "later", ann.user.id, Permission::View),
                resource(19, "doc", "later", &w, None),
            ],
            "items[1]: resource not found (line 18)",
        ),
    ];
    for (items, says) in cases {
        let status = refused(
            "PermissionService/ImportResources",
            Code::InvalidArgument,
            import(&app, &key, vec![items]).await,
        );
        assert!(status.message().contains(says), "{says}: {status:?}");
        assert!(
            !allowed(&app, &key, &ann.access_token, "doc", "new0", "view").await,
            "{says}: nothing is written"
        );
    }
    // A refused second message leaves the first committed, and says so.
    let status = refused(
        "PermissionService/ImportResources",
        Code::InvalidArgument,
        import(
            &app,
            &key,
            vec![
                vec![new0()],
                vec![
                    resource(21, "doc", "new1", &w, None),
                    resource(22, "doc", "x", &w, Some("absent")),
                ],
            ],
        )
        .await,
    );
    assert!(
        status
            .message()
            .contains("the 1 messages before this one were imported (through line 10)"),
        "{status:?}"
    );
    assert!(allowed(&app, &key, &ann.access_token, "doc", "new0", "view").await);
    assert!(!allowed(&app, &key, &ann.access_token, "doc", "new1", "view").await);
    assert_eq!(common::audit_count(&db, "resources.imported").await, 2);
    app.stop().await;
}

/// Runs `sentinel import resources` against `app`; (success, stdout, stderr).
async fn command(app: &TestApp, key: &str, args: &[&str]) -> (bool, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sentinel"));
    for (name, _) in std::env::vars() {
        if name.starts_with("SENTINEL_") {
            command.env_remove(name);
        }
    }
    let output = command
        .args(["import", "resources", "--server", &app.base_url])
        .env("SENTINEL_SERVICE_KEY", key)
        .args(args)
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn the_import_command_reads_files_and_resumes(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(&app, "bob@example.com", "acme", "viewer").await;
    let w = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let dir = tempfile::tempdir().unwrap();
    let line = |kind: &str, id: &str, extra: &str| {
        format!("{{\"kind\":\"{kind}\",\"resource_type\":\"doc\",\"resource_id\":\"{id}\"{extra}}}")
    };
    let res = |id: &str| line("resource", id, &format!(",\"workspace_id\":\"{w}\""));
    let grant = |id: &str| {
        line(
            "grant",
            id,
            &format!(",\"user_id\":\"{}\",\"permission\":\"view\"", bob.user.id),
        )
    };
    // 1,200 lines: 600 resources and a grant on each, sent 100 a message, 500 a stream.
    let mut lines: Vec<String> = Vec::new();
    for n in 0..600 {
        lines.push(res(&format!("d{n:03}")));
        lines.push(grant(&format!("d{n:03}")));
    }
    // Line 801 names a parent nobody registers: the import stops in its second stream, after
    // the first checkpoint (line 500) and three more committed messages.
    let good = lines[800].clone();
    lines[800] = line(
        "resource",
        "d400",
        &format!(",\"workspace_id\":\"{w}\",\"parent_type\":\"doc\",\"parent_id\":\"zz\""),
    );
    let file = dir.path().join("acl.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let path = file.to_str().unwrap();
    let args = ["--file", path, "--batch", "100", "--checkpoint", "500"];
    let (ok, _, stderr) = command(&app, &key, &args).await;
    assert!(!ok);
    assert!(
        stderr.contains("items[0]: parent resource not found (line 801)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("were imported (through line 800)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("items through line 500 are imported"),
        "{stderr}"
    );
    let progress = std::fs::read_to_string(sentinel::import::progress_path(&file)).unwrap();
    assert!(progress.contains("\"line\":500"), "{progress}");
    assert!(allowed(&app, &key, &bob.access_token, "doc", "d399", "view").await);
    assert!(!allowed(&app, &key, &bob.access_token, "doc", "d400", "view").await);
    // Fixed, in a file of the same size (the progress names it), and resumed after line 500.
    let padding = " ".repeat(lines[800].len() - good.len());
    lines[800] = good + &padding;
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let (ok, stdout, stderr) = command(&app, &key, &[&args[..], &["--resume"]].concat()).await;
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("imported 700 items"), "{stdout}");
    assert!(
        stdout.contains("resources 200 created, 0 updated, 150 unchanged"),
        "{stdout}"
    );
    assert!(!sentinel::import::progress_path(&file).exists());
    let (_, ids) = lookup_all(&app, &key, &bob.access_token, "doc", "view", 1000, None).await;
    assert_eq!(ids.len(), 600);
    // A malformed line stops the command before anything is sent.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        format!(
            "kind,resource_type,resource_id,workspace_id,visibility\n\
             resource,doc,c1,{w},private\n\
             resource,doc,c2,{w},secret\n"
        ),
    )
    .unwrap();
    let (ok, _, stderr) = command(&app, &key, &["--file", bad.to_str().unwrap()]).await;
    assert!(!ok);
    assert!(
        stderr.contains("bad.csv:3: visibility: must be private or workspace"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    assert!(!allowed(&app, &key, &ann.access_token, "doc", "c1", "view").await);
    // CSV, with the columns in any order.
    let csv = dir.path().join("more.csv");
    std::fs::write(
        &csv,
        format!(
            "resource_id,kind,resource_type,workspace_id,user_id,permission\n\
             c1,resource,doc,{w},,\n\
             c1,grant,doc,,{},edit\n",
            bob.user.id
        ),
    )
    .unwrap();
    let (ok, stdout, stderr) = command(&app, &key, &["--file", csv.to_str().unwrap(), "-q"]).await;
    assert!(ok, "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert!(stdout.contains("grants 1 set"), "{stdout}");
    assert!(allowed(&app, &key, &bob.access_token, "doc", "c1", "edit").await);
    app.stop().await;
}
