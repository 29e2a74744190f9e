//! The starting corpus of each target, written into `fuzz/corpus/<target>/`: for every RPC a
//! few message shapes (ids as the harness's placeholders) with the credential of its first tier,
//! valid and near-valid tokens, CSV files and sign-in query strings. The corpus is committed;
//! `scripts/fuzz.sh --seeds` writes it again (after RPCs change).

use std::path::Path;

use super::{OTHER_USER_PLACEHOLDER, REDIRECT_URI, USER_PLACEHOLDER, WORKSPACE_PLACEHOLDER};
use sentinel::credentials::tiers::{TIERS, Tier};

/// Appends `value` as a protobuf varint.
pub fn varint(mut value: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends a length-delimited protobuf field.
pub fn bytes_field(field: u64, value: &[u8], out: &mut Vec<u8>) {
    varint(field << 3 | 2, out);
    varint(value.len() as u64, out);
    out.extend_from_slice(value);
}

fn int_field(field: u64, value: u64, out: &mut Vec<u8>) {
    varint(field << 3, out);
    varint(value, out);
}

fn message(fields: &[(u64, Value)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (field, value) in fields {
        match value {
            Value::Text(text) => bytes_field(*field, text.as_bytes(), &mut out),
            Value::Int(value) => int_field(*field, *value, &mut out),
            Value::Message(inner) => bytes_field(*field, &message(inner), &mut out),
        }
    }
    out
}

enum Value {
    Text(&'static str),
    Int(u64),
    Message(Vec<(u64, Value)>),
}

use Value::{Int, Message, Text};

fn shapes() -> Vec<Vec<u8>> {
    let csv = "email,name,workspace,role\nnew@fuzz.test,New,fuzz,viewer\n";
    vec![
        Vec::new(),
        message(&[(1, Text(WORKSPACE_PLACEHOLDER))]),
        message(&[
            (1, Text(WORKSPACE_PLACEHOLDER)),
            (2, Text(USER_PLACEHOLDER)),
        ]),
        message(&[
            (1, Text(WORKSPACE_PLACEHOLDER)),
            (2, Text(OTHER_USER_PLACEHOLDER)),
            (3, Int(2)),
        ]),
        message(&[
            (1, Text(WORKSPACE_PLACEHOLDER)),
            (2, Text("bob@fuzz.test")),
            (4, Int(3)),
        ]),
        message(&[
            (1, Text("doc")),
            (2, Text("d1")),
            (3, Text(WORKSPACE_PLACEHOLDER)),
            (5, Int(1)),
        ]),
        message(&[
            (1, Text("doc")),
            (2, Text("view")),
            (3, Text(WORKSPACE_PLACEHOLDER)),
            (4, Int(2)),
            (6, Message(vec![(2, Text("ct1.AAAAAAAAAAE"))])),
        ]),
        message(&[
            (1, Message(vec![(1, Text("doc")), (2, Text("d1"))])),
            (2, Message(vec![(1, Text(OTHER_USER_PLACEHOLDER))])),
            (3, Int(1)),
        ]),
        message(&[(1, Text(csv)), (2, Int(1))]),
        message(&[(1, Text("Fuzz two")), (2, Text("fuzz-two"))]),
        message(&[
            (1, Text("github")),
            (2, Text(REDIRECT_URI)),
            (3, Text("state")),
        ]),
        message(&[(4, Int(2)), (5, Text("eyJ9"))]),
    ]
}

fn credential(tier: Tier) -> u8 {
    match tier {
        Tier::Public => 0,
        Tier::User => 1,
        Tier::Admin => 2,
        Tier::Service => 3,
        Tier::Dual => 4,
        Tier::Browser => 6,
    }
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::write(dir.join(name), data).expect("write seed");
}

/// Writes the corpus of every target under `root`.
pub fn write_all(root: &Path) {
    let dir = |name: &str| {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("corpus directory");
        dir
    };

    let grpc = dir("grpc");
    for (index, (path, tiers)) in TIERS.iter().enumerate() {
        let method = path.rsplit('/').next().unwrap_or_default();
        let tier = tiers.first().copied().unwrap_or(Tier::Public);
        for (shape, body) in shapes().iter().enumerate() {
            let mut data = vec![index as u8, credential(tier)];
            data.extend_from_slice(body);
            write(&grpc, &format!("{method}-{shape}"), &data);
        }
    }

    let tokens = dir("tokens");
    let harness = super::harness();
    let token = harness.access_token.clone();
    let mut parts = token.split('.');
    let (header, payload) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    for (name, text) in [
        ("access", token.clone()),
        ("unsigned", format!("{header}.{payload}.")),
        ("none", format!("eyJhbGciOiJub25lIn0.{payload}.")),
        ("truncated", token[..token.len() / 2].to_string()),
        ("consistency", "ct1.AAAAAAAAAAE".to_string()),
        ("consistency-negative", "ct1._____________w".to_string()),
        ("service-key", "sk_live_0123456789abcdef".to_string()),
    ] {
        write(&tokens, name, text.as_bytes());
    }

    let csv = dir("csv");
    for (name, text) in [
        (
            "basic",
            "email,name,workspace,role\nann@fuzz.test,Ann,fuzz,editor\n",
        ),
        ("quoted", "email,name\n\"x@fuzz.test\",\"A, \"\"B\"\"\"\n"),
        (
            "slug-column",
            "Email,Workspace_Slug,Role\ny@fuzz.test,new-space,owner\n",
        ),
        (
            "bad-role",
            "email,workspace,role\nz@fuzz.test,fuzz,emperor\n",
        ),
        ("no-email", "name\nNobody\n"),
    ] {
        let mut data = vec![0];
        data.extend_from_slice(text.as_bytes());
        write(&csv, name, &data);
    }

    let http = dir("http");
    for (route, name, query) in [
        (
            0u8,
            "login",
            format!(
                "redirect_uri={REDIRECT_URI}&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&state=s"
            ),
        ),
        (1, "callback", "code=abc&state=forged".to_string()),
        (
            1,
            "callback-error",
            "error=access_denied&error_description=line%0Abreak&state=x".to_string(),
        ),
        (4, "jwks", String::new()),
    ] {
        let mut data = vec![route, 9];
        data.extend_from_slice(b"127.0.0.1");
        data.extend_from_slice(query.as_bytes());
        write(&http, name, &data);
    }
    println!("corpus written to {}", root.display());
}
