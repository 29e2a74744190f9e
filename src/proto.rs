//! Generated protobuf types and gRPC stubs for `sentinel.v1`.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// `sentinel.v1` messages, clients and servers.
pub mod v1 {
    tonic::include_proto!("sentinel.v1");
}

/// Encoded `FileDescriptorSet` of every `sentinel.v1` file, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/sentinel_descriptor.bin"));
