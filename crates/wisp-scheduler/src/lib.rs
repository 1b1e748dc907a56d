//! wisp-scheduler
