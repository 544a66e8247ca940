//! # dcf-storage
//!
//! Durable storage of a DCF node (to be written).
