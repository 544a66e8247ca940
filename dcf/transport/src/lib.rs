//! # dcf-transport
//!
//! Node-to-node transport of DCF (to be written).
