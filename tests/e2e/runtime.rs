//! Issue 3 runtime scenarios.
