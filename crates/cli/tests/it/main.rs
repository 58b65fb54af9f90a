//! End-to-end tests: the real `gantry` binary, the real Docker engine, the
//! real SQLite store and HTTP server. Images are built locally by
//! `scripts/images.sh` (no registry). Docker must answer: `.ci/run` starts it.

mod api;
mod backup;
mod browser;
mod cli;
mod configs;
mod dashboard;
mod engine;
mod fleet;
mod fleet_pg;
mod images;
mod iron;
mod jobs;
mod keboola;
mod lifecycle;
mod limits;
mod logs;
mod logship;
mod metrics;
mod notifications;
mod openapi;
mod pipelines;
mod run;
mod schedules;
mod storage;
mod tenancy;
mod triggers;
mod util;
mod warm;
mod webhooks;
