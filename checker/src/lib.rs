//! # checker
//!
//! Decides whether a recorded history of operations is correct: the history
//! model (Jepsen's invoke/ok/fail/info), importers for other tools' formats,
//! a linearizability checker, an Elle-style list-append cycle checker, a set
//! checker and statistics. It depends on no other crate of this workspace so
//! that it can check any tool's histories.
