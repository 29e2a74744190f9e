//! The import file formats: JSON lines (one object per line) or CSV (a header row naming the
//! columns), both with the fields of [`Record`]; each record becomes one import item carrying
//! its line number.

use std::io::BufRead;

use serde::Deserialize;

use crate::proto::v1 as pb;

/// A file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line; blank lines are skipped.
    JsonLines,
    /// A header row, then one record per row.
    Csv,
}

impl Format {
    /// By the file name's extension: `.csv` is CSV, anything else JSON lines.
    pub fn of(path: &std::path::Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("csv") => Format::Csv,
            _ => Format::JsonLines,
        }
    }
}

/// One line of an import file. `kind` is `resource` or `grant`; empty values are unset.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// `resource` or `grant`.
    pub kind: String,
    /// The resource's (or the granted resource's) type.
    pub resource_type: Option<String>,
    /// The resource's (or the granted resource's) id.
    pub resource_id: Option<String>,
    /// A resource's workspace (UUID).
    pub workspace_id: Option<String>,
    /// A resource's owning user (UUID).
    pub owner_id: Option<String>,
    /// A resource's visibility: `private` or `workspace` (the default).
    pub visibility: Option<String>,
    /// A resource's parent's type.
    pub parent_type: Option<String>,
    /// A resource's parent's id.
    pub parent_id: Option<String>,
    /// A grant's user (UUID).
    pub user_id: Option<String>,
    /// A grant's group (UUID).
    pub group_id: Option<String>,
    /// A grant's level: `view` or `edit`.
    pub permission: Option<String>,
    /// A grant's expiry (RFC 3339).
    pub expires_at: Option<String>,
}

/// A line that cannot be imported: its number and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct BadLine {
    /// 1-based line number in the file.
    pub line: u64,
    /// What is wrong, naming the field.
    pub reason: String,
}

fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl Record {
    fn required<'a>(value: &'a Option<String>, field: &str) -> Result<&'a str, String> {
        set(value).ok_or_else(|| format!("{field}: is required"))
    }

    /// The import item of this record at `line`; what is wrong otherwise (only the shape is
    /// checked here: the server decides the rest).
    pub fn into_item(self, line: u64) -> Result<pb::ImportItem, BadLine> {
        self.item(line).map_err(|reason| BadLine { line, reason })
    }

    fn item(self, line: u64) -> Result<pb::ImportItem, String> {
        let resource = pb::ResourceRef {
            resource_type: Self::required(&self.resource_type, "resource_type")?.to_string(),
            resource_id: Self::required(&self.resource_id, "resource_id")?.to_string(),
        };
        let item = match self.kind.trim() {
            "resource" => {
                for (value, field) in [
                    (&self.user_id, "user_id"),
                    (&self.group_id, "group_id"),
                    (&self.permission, "permission"),
                    (&self.expires_at, "expires_at"),
                ] {
                    if set(value).is_some() {
                        return Err(format!("{field}: is a grant field, not a resource's"));
                    }
                }
                let parent = match (set(&self.parent_type), set(&self.parent_id)) {
                    (None, None) => None,
                    (Some(kind), Some(id)) => Some(pb::ResourceRef {
                        resource_type: kind.to_string(),
                        resource_id: id.to_string(),
                    }),
                    (None, Some(_)) => return Err("parent_type: is required with parent_id".into()),
                    (Some(_), None) => return Err("parent_id: is required with parent_type".into()),
                };
                let visibility = match set(&self.visibility) {
                    None | Some("workspace") => pb::Visibility::Workspace,
                    Some("private") => pb::Visibility::Private,
                    Some(other) => {
                        return Err(format!(
                            "visibility: must be private or workspace, not {other:?}"
                        ));
                    }
                };
                pb::import_item::Item::Resource(pb::RegisterResourceRequest {
                    resource_type: resource.resource_type,
                    resource_id: resource.resource_id,
                    workspace_id: Self::required(&self.workspace_id, "workspace_id")?.to_string(),
                    owner_id: set(&self.owner_id).unwrap_or_default().to_string(),
                    visibility: visibility as i32,
                    parent,
                    upsert: true,
                })
            }
            "grant" => {
                for (value, field) in [
                    (&self.workspace_id, "workspace_id"),
                    (&self.owner_id, "owner_id"),
                    (&self.visibility, "visibility"),
                    (&self.parent_type, "parent_type"),
                    (&self.parent_id, "parent_id"),
                ] {
                    if set(value).is_some() {
                        return Err(format!("{field}: is a resource field, not a grant's"));
                    }
                }
                let grantee = match (set(&self.user_id), set(&self.group_id)) {
                    (Some(user), None) => pb::grantee::Grantee::UserId(user.to_string()),
                    (None, Some(group)) => pb::grantee::Grantee::GroupId(group.to_string()),
                    _ => {
                        return Err(
                            "user_id: exactly one of user_id and group_id is required".into()
                        );
                    }
                };
                let permission = match Self::required(&self.permission, "permission")? {
                    "view" => pb::Permission::View,
                    "edit" => pb::Permission::Edit,
                    other => {
                        return Err(format!("permission: must be view or edit, not {other:?}"));
                    }
                };
                let expires_at = match set(&self.expires_at) {
                    None => None,
                    Some(at) => {
                        let at = chrono::DateTime::parse_from_rfc3339(at)
                            .map_err(|_| format!("expires_at: {at:?} is not an RFC 3339 time"))?;
                        Some(prost_types::Timestamp {
                            seconds: at.timestamp(),
                            nanos: at.timestamp_subsec_nanos() as i32,
                        })
                    }
                };
                pb::import_item::Item::Grant(pb::ShareRequest {
                    resource: Some(resource),
                    grantee: Some(pb::Grantee {
                        grantee: Some(grantee),
                    }),
                    permission: permission as i32,
                    expires_at,
                })
            }
            "" => return Err("kind: is required (resource or grant)".into()),
            other => return Err(format!("kind: must be resource or grant, not {other:?}")),
        };
        Ok(pb::ImportItem {
            line,
            item: Some(item),
        })
    }
}

/// Reads a file's items in order, each with its line number.
pub struct Items<R: BufRead> {
    inner: Inner<R>,
}

enum Inner<R: BufRead> {
    Lines {
        lines: std::io::Lines<R>,
        line: u64,
    },
    Csv {
        reader: csv::Reader<R>,
        headers: Option<csv::StringRecord>,
    },
}

impl<R: BufRead> Items<R> {
    /// Items of `reader` in `format`.
    pub fn new(reader: R, format: Format) -> Self {
        let inner = match format {
            Format::JsonLines => Inner::Lines {
                lines: reader.lines(),
                line: 0,
            },
            Format::Csv => Inner::Csv {
                reader: csv::ReaderBuilder::new()
                    .trim(csv::Trim::All)
                    .from_reader(reader),
                headers: None,
            },
        };
        Self { inner }
    }
}

impl<R: BufRead> Iterator for Items<R> {
    type Item = Result<pb::ImportItem, BadLine>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Lines { lines, line } => loop {
                *line += 1;
                let text = match lines.next()? {
                    Ok(text) => text,
                    Err(err) => {
                        return Some(Err(BadLine {
                            line: *line,
                            reason: format!("cannot be read: {err}"),
                        }));
                    }
                };
                if text.trim().is_empty() {
                    continue;
                }
                let at = *line;
                return Some(
                    serde_json::from_str::<Record>(&text)
                        .map_err(|err| BadLine {
                            line: at,
                            reason: format!("not an import record: {err}"),
                        })
                        .and_then(|record| record.into_item(at)),
                );
            },
            Inner::Csv { reader, headers } => {
                let bad = |line, err: csv::Error| BadLine {
                    line,
                    reason: format!("not an import record: {err}"),
                };
                if headers.is_none() {
                    match reader.headers() {
                        Ok(names) => *headers = Some(names.clone()),
                        Err(err) => return Some(Err(bad(1, err))),
                    }
                }
                let mut record = csv::StringRecord::new();
                match reader.read_record(&mut record) {
                    Ok(false) => None,
                    Ok(true) => {
                        let line = record.position().map_or(0, |p| p.line());
                        Some(
                            record
                                .deserialize::<Record>(headers.as_ref())
                                .map_err(|err| bad(line, err))
                                .and_then(|r| r.into_item(line)),
                        )
                    }
                    Err(err) => {
                        let line = err.position().map_or(0, |p| p.line());
                        Some(Err(bad(line, err)))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str, format: Format) -> Vec<Result<pb::ImportItem, BadLine>> {
        Items::new(std::io::Cursor::new(text.to_string()), format).collect()
    }

    const WS: &str = "5f0c8a4e-6d2b-4c1e-9a7f-0b1c2d3e4f50";

    #[test]
    fn json_lines_carry_their_line_numbers() {
        let text = format!(
            "{{\"kind\":\"resource\",\"resource_type\":\"folder\",\"resource_id\":\"f\",\"workspace_id\":\"{WS}\"}}\n\n\
             {{\"kind\":\"grant\",\"resource_type\":\"folder\",\"resource_id\":\"f\",\"group_id\":\"{WS}\",\"permission\":\"edit\"}}\n"
        );
        let got = items(&text, Format::JsonLines);
        assert_eq!(got.len(), 2);
        let (first, second) = (got[0].clone().unwrap(), got[1].clone().unwrap());
        assert_eq!((first.line, second.line), (1, 3));
        match second.item {
            Some(pb::import_item::Item::Grant(g)) => {
                assert_eq!(g.permission, pb::Permission::Edit as i32)
            }
            other => panic!("not a grant: {other:?}"),
        }
    }

    #[test]
    fn malformed_lines_name_the_line_and_field() {
        let text = format!(
            "{{\"kind\":\"resource\",\"resource_type\":\"doc\",\"resource_id\":\"d\",\"workspace_id\":\"{WS}\"}}\n\
             {{\"kind\":\"grant\",\"resource_type\":\"doc\",\"resource_id\":\"d\",\"user_id\":\"{WS}\",\"permission\":\"own\"}}\n\
             not json\n\
             {{\"kind\":\"resource\",\"resource_type\":\"doc\",\"resource_id\":\"d\",\"colour\":\"red\"}}\n"
        );
        let got = items(&text, Format::JsonLines);
        assert!(got[0].is_ok());
        let bad: Vec<BadLine> = got.into_iter().filter_map(Result::err).collect();
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), [2, 3, 4]);
        assert!(
            bad[0].reason.starts_with("permission:"),
            "{}",
            bad[0].reason
        );
        assert!(bad[2].reason.contains("colour"), "{}", bad[2].reason);
    }

    #[test]
    fn csv_columns_may_come_in_any_order_and_be_empty() {
        let text = format!(
            "resource_id,kind,resource_type,workspace_id,parent_type,parent_id,user_id,permission\n\
             f,resource,folder,{WS},,,,\n\
             d,resource,doc,{WS},folder,f,,\n\
             d,grant,doc,,,,{WS},view\n\
             e,resource,doc,{WS},folder,,,\n"
        );
        let got = items(&text, Format::Csv);
        assert_eq!(got.len(), 4);
        assert_eq!(got[1].as_ref().unwrap().line, 3);
        match &got[1].as_ref().unwrap().item {
            Some(pb::import_item::Item::Resource(r)) => {
                assert_eq!(r.parent.as_ref().unwrap().resource_id, "f");
                assert!(r.upsert);
            }
            other => panic!("not a resource: {other:?}"),
        }
        let bad = got[3].clone().unwrap_err();
        assert_eq!(bad.line, 5);
        assert!(bad.reason.starts_with("parent_id:"), "{}", bad.reason);
    }

    #[test]
    fn grants_need_exactly_one_grantee() {
        let both = Record {
            kind: "grant".into(),
            resource_type: Some("doc".into()),
            resource_id: Some("d".into()),
            user_id: Some(WS.into()),
            group_id: Some(WS.into()),
            permission: Some("view".into()),
            ..Record::default()
        };
        assert!(
            both.into_item(9)
                .unwrap_err()
                .reason
                .starts_with("user_id:")
        );
    }
}
