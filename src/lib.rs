//! mcp-credd: obtains and refreshes the OAuth tokens MCP clients need, stores them safely,
//! and writes them into the MCP configuration files editors read.

pub mod app;
pub mod binding;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod dirs;
pub mod doctor;
pub mod exit;
pub mod failure;
pub mod identity;
pub mod init;
pub mod login;
pub mod mcpauth;
pub mod providers;
pub mod refresh;
pub mod render;
pub mod sanitize;
pub mod schedule;
pub mod secret;
pub mod selection;
pub mod service;
pub mod status;
pub mod store;
pub mod timefmt;
