//! Allmende: a cooperative in which organisations pool their money to fund the open-source
//! software they depend on.
//!
//! The crate's map (see DESIGN.md): settings in [`config`], the database and every difference
//! between SQLite and PostgreSQL in [`db`], money in [`money`], the ledger in [`ledger`] and its
//! invariants in [`verify`], languages in [`i18n`], the cooperative's overview in
//! [`cooperative`], the demo data in [`demo`], and HTTP in [`web`].

pub mod config;
pub mod cooperative;
pub mod db;
pub mod demo;
pub mod i18n;
pub mod ledger;
pub mod money;
pub mod verify;
pub mod web;

