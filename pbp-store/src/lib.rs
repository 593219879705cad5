//! Storage for Play-by-Play.
//!
//! This crate will hold the migrations runner, the PostgreSQL repository (diesel-async + bb8), the embedded
//! repository and the caches. It is intentionally empty until the pipelines issue fills it: nothing here
//! pretends to store anything yet.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
