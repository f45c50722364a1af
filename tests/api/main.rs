//! Integration tests: one binary, the real server on a random port, a fresh database per test.
//! SQLite by default; PostgreSQL when ALLMENDE_TEST_DATABASE_URL=postgres://… is set.

// Tests state their expectations with unwrap: a failure is the test failing.
#![allow(clippy::unwrap_used)]

mod accounts;
mod authz;
mod catalogue;
mod cli;
mod demo;
mod hardening_accounts;
mod hardening_bank;
mod hardening_governance;
mod hardening_keys;
mod hardening_text;
mod helpers;
mod ledger;
mod mail;
mod membership;
mod organisations;
mod payments;
mod payouts;
mod pledges;
mod proposals;
mod recurring;
mod reviews;
mod rounds;
mod smtp_server;
mod stripe_server;
mod web;
