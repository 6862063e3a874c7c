//! Subcommands of the `limitkv` binary that act on running servers as clients
//! (`limitkv cluster apply`). A surface: it talks to servers over TCP and reads files.

pub mod cluster;
