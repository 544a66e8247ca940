//! # reports
//!
//! Turns a checked run into a `report.html` a person can read in a minute:
//! the verdict, latency and throughput plots with fault periods shaded, a
//! timeline of operations and the failing window. Also writes the index of
//! all runs in a store.
