//! mcp-credd: obtains and refreshes the OAuth tokens MCP clients need, stores them safely,
//! and writes them into the MCP configuration files editors read.

pub mod clock;
pub mod config;
pub mod secret;
pub mod timefmt;
pub mod identity;
pub mod schedule;
pub mod store;
