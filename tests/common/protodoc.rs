//! The contract's comments, read from the proto files: for every RPC, the paragraphs of its
//! comment that start with a "Word:" label (`Tier:`, `Errors:`, …). Tests check the server and
//! the suite against what these say.

use std::collections::BTreeMap;

/// One RPC's comment.
#[derive(Debug, Clone)]
pub struct RpcDoc {
    /// `Service/Method`, as in `refused(…)` and in the error-coverage report.
    pub name: String,
    /// `/sentinel.v1.Service/Method`, the gRPC path.
    pub path: String,
    /// Labelled paragraphs ("Tier", "Errors", …) → their text on one line.
    pub sections: BTreeMap<String, String>,
}

impl RpcDoc {
    /// A labelled paragraph, or "" when the comment has none.
    pub fn section(&self, label: &str) -> &str {
        self.sections.get(label).map_or("", String::as_str)
    }
}

/// Every RPC of proto/sentinel/v1, in file order.
pub fn rpc_docs() -> Vec<RpcDoc> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/proto/sentinel/v1");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("proto dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "proto"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let mut service = String::new();
        let mut sections = BTreeMap::<String, String>::new();
        let mut label: Option<String> = None;
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("service ") {
                service = rest.trim_end_matches('{').trim().to_string();
                sections.clear();
                label = None;
            } else if let Some(rest) = line.strip_prefix("rpc ") {
                let method = rest.split('(').next().unwrap().trim();
                out.push(RpcDoc {
                    name: format!("{service}/{method}"),
                    path: format!("/sentinel.v1.{service}/{method}"),
                    sections: std::mem::take(&mut sections),
                });
                label = None;
            } else if let Some(comment) = line.strip_prefix("//") {
                let comment = comment.trim();
                let labelled = comment.split_once(':').filter(|(word, _)| {
                    word.starts_with(|c: char| c.is_ascii_uppercase())
                        && word.chars().all(|c| c.is_ascii_alphabetic())
                });
                if let Some((word, rest)) = labelled {
                    label = Some(word.to_string());
                    sections.insert(word.to_string(), rest.trim().to_string());
                } else if let Some(text) = label.as_ref().and_then(|l| sections.get_mut(l)) {
                    text.push(' ');
                    text.push_str(comment);
                }
            } else {
                // A blank or code line ends the comment of whatever came before.
                sections.clear();
                label = None;
            }
        }
    }
    out
}

/// The gRPC codes named in a text (`NOT_FOUND`, `PERMISSION_DENIED`, …), each once.
pub fn codes_in(text: &str) -> Vec<String> {
    const CODES: [&str; 16] = [
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    let mut out = Vec::new();
    for word in text.split(|c: char| !(c.is_ascii_uppercase() || c == '_')) {
        if CODES.contains(&word) && !out.iter().any(|c| c == word) {
            out.push(word.to_string());
        }
    }
    out
}
