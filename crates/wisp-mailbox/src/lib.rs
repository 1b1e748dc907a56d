//! wisp-mailbox
