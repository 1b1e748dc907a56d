//! Exact-topic routing on the owner's side of a mailbox.

use std::collections::HashMap;

use rustc_hash::FxBuildHasher;

/// Identifies a listener registered by the owning process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(pub u32);

/// Where a message with a given topic goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Listener(ListenerId),
    Inbox,
}

/// A topic already has a listener.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("topic {topic:?} already has listener {existing:?}")]
pub struct AlreadyListening {
    pub topic: String,
    pub existing: ListenerId,
}

/// Exact-topic listeners; unknown topics fall back to the inbox.
#[derive(Debug, Default)]
pub struct TopicRouter {
    listeners: HashMap<String, ListenerId, FxBuildHasher>,
}

impl TopicRouter {
    /// A router with no listeners (allocates nothing).
    pub const fn new() -> TopicRouter {
        TopicRouter { listeners: HashMap::with_hasher(FxBuildHasher) }
    }

    /// Routes `topic` to `id`; fails if the topic already has a listener.
    pub fn listen(&mut self, topic: &str, id: ListenerId) -> Result<(), AlreadyListening> {
        if let Some(&existing) = self.listeners.get(topic) {
            return Err(AlreadyListening { topic: topic.to_owned(), existing });
        }
        self.listeners.insert(topic.to_owned(), id);
        Ok(())
    }

    /// Removes the listener of `topic`, returning it.
    pub fn unlisten(&mut self, topic: &str) -> Option<ListenerId> {
        self.listeners.remove(topic)
    }

    /// Where a message on `topic` goes.
    pub fn route(&self, topic: &str) -> Route {
        match self.listener_for(topic) {
            Some(id) => Route::Listener(id),
            None => Route::Inbox,
        }
    }

    /// The listener of `topic`, if any.
    pub fn listener_for(&self, topic: &str) -> Option<ListenerId> {
        self.listeners.get(topic).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_exact_topics_and_falls_back_to_inbox() {
        let mut router = TopicRouter::default();
        assert_eq!(router.route("a"), Route::Inbox);
        router.listen("a", ListenerId(1)).expect("free topic");
        assert_eq!(router.route("a"), Route::Listener(ListenerId(1)));
        assert_eq!(router.route("a.b"), Route::Inbox);
        assert_eq!(router.route(""), Route::Inbox);
        let error = router.listen("a", ListenerId(2)).expect_err("taken");
        assert_eq!(error.existing, ListenerId(1));
        assert_eq!(router.listener_for("a"), Some(ListenerId(1)));
        assert_eq!(router.unlisten("a"), Some(ListenerId(1)));
        assert_eq!(router.unlisten("a"), None);
        assert_eq!(router.route("a"), Route::Inbox);
        router.listen("a", ListenerId(2)).expect("free again");
    }
}
