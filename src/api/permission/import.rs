//! PermissionService.ImportResources: a stream of messages, each parsed into import items and
//! imported on its own (atomic, one revision), their counts summed.

use futures::StreamExt;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status, Streaming};

use super::messages::key_of;
use super::writes::register_parts;
use crate::authz::resources::{
    ImportCounts, ImportItem, ImportOp, NewGrant, check_import_len, import_item_error,
};
use crate::credentials;
use crate::error::Error;
use crate::model::{Revision, Written};
use crate::proto::v1 as pb;
use crate::services::Services;

/// One item of a message; its errors name fields within the item (`grant.resource`).
fn item(service: &str, item: pb::ImportItem) -> Result<ImportItem, Error> {
    use pb::import_item::Item;
    let op = match item.item {
        None => {
            return Err(Error::invalid(
                "item",
                "is required: one of resource, grant",
            ));
        }
        Some(Item::Resource(r)) => ImportOp::Resource(register_parts(service, r)?.0),
        Some(Item::Grant(r)) => ImportOp::Grant {
            key: key_of(service, r.resource.as_ref(), "resource")?,
            grant: NewGrant::try_from(&r)?,
        },
    };
    Ok(ImportItem {
        line: item.line,
        op,
    })
}

/// The item kind's name in the request (`grant`), for naming a field of an unparsed one.
fn kind_name(item: &pb::ImportItem) -> &'static str {
    use pb::import_item::Item;
    match &item.item {
        None => "",
        Some(Item::Resource(_)) => "resource",
        Some(Item::Grant(_)) => "grant",
    }
}

/// An error that ends the stream after `messages` committed messages, saying so.
fn after(err: Error, messages: u64, last_line: u64) -> Error {
    if messages == 0 {
        return err;
    }
    let through = if last_line > 0 {
        format!(" (through line {last_line})")
    } else {
        String::new()
    };
    let note = format!("; the {messages} messages before this one were imported{through}");
    match err {
        Error::InvalidArgument { field, reason } => Error::InvalidArgument {
            field,
            reason: format!("{reason}{note}"),
        },
        other => other,
    }
}

/// A message's items and its last line; refused as a whole when one item is malformed.
fn parse(
    service: &str,
    message: pb::ImportResourcesRequest,
) -> Result<(Vec<ImportItem>, u64), Error> {
    check_import_len(message.items.len())?;
    let lines = message.items.iter().map(|i| i.line).max().unwrap_or(0);
    let items = message
        .items
        .into_iter()
        .enumerate()
        .map(|(i, it)| {
            let (kind, line) = (kind_name(&it), it.line);
            item(service, it).map_err(|err| import_item_error(i, line, kind, err))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok((items, lines))
}

/// What the stream's committed messages did.
#[derive(Default)]
struct Done {
    counts: ImportCounts,
    messages: u64,
    last_line: u64,
    revision: Option<Revision>,
}

/// A message being written, with its last line.
type Writing = (JoinHandle<Result<Written<ImportCounts>, Error>>, u64);

impl Done {
    /// Waits for a message's write and counts it; its refusal, saying what was done before.
    async fn finish(&mut self, (write, lines): Writing) -> Result<(), Error> {
        let written = write
            .await
            .map_err(|_| Error::Unavailable)?
            .map_err(|e| after(e, self.messages, self.last_line))?;
        self.counts += written.value;
        self.messages += 1;
        self.last_line = self.last_line.max(lines);
        self.revision = Some(written.revision);
        Ok(())
    }
}

/// Runs an ImportResources stream. The message being written is awaited only once the next one
/// is received and parsed (messages are still written one after another, in order).
pub(super) async fn import(
    state: &Services,
    request: Request<Streaming<pb::ImportResourcesRequest>>,
) -> Result<Response<pb::ImportResourcesResponse>, Status> {
    let service = credentials::service(&request)?;
    let caller = credentials::caller(&request)?;
    let mut stream = request.into_inner();
    let mut done = Done::default();
    let mut writing: Option<Writing> = None;
    while let Some(message) = stream.next().await {
        let parsed = parse(&service.service_name, message?);
        if let Some(write) = writing.take() {
            done.finish(write).await?;
        }
        let (items, lines) = parsed.map_err(|e| after(e, done.messages, done.last_line))?;
        let (resources, caller) = (state.resources.clone(), caller.clone());
        let write = tokio::spawn(async move { resources.import(&caller, items).await });
        writing = Some((write, lines));
    }
    if let Some(write) = writing.take() {
        done.finish(write).await?;
    }
    let Some(revision) = done.revision else {
        return Err(Error::invalid("items", "the stream sent no message").into());
    };
    let counts = done.counts;
    Ok(Response::new(pb::ImportResourcesResponse {
        resources_created: counts.resources_created,
        resources_updated: counts.resources_updated,
        resources_unchanged: counts.resources_unchanged,
        grants_set: counts.grants_set,
        grants_unchanged: counts.grants_unchanged,
        messages: done.messages,
        consistency_token: revision.token().to_string(),
    }))
}
