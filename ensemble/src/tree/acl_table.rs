//! Interned, reference-counted ACL lists (ZooKeeper's `ReferenceCountedACLCache`).
//!
//! Nearly every znode carries one of a handful of ACL lists, so znodes store a small
//! [`AclId`] and the lists live here once. The table owns the lists and their reference
//! counts; which znode holds which id is the tree's business. A list whose count drops to
//! zero is only freed by [`AclTable::sweep`], which the tree calls after each transaction,
//! so a multi's undo log can still put back a znode that referred to it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::Acl;

/// Index of an ACL list in the [`AclTable`].
pub(super) type AclId = u32;

/// The interned ACL lists. Deterministic: the same calls give the same ids on every replica.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct AclTable {
    /// Slot per id; `None` is a free slot.
    slots: Vec<Option<Slot>>,
    /// Id of each live list.
    ids: BTreeMap<Vec<Acl>, AclId>,
    /// Free slots, reused last-freed first.
    free: Vec<AclId>,
    /// Ids whose count reached zero since the last sweep. Always empty between
    /// transactions, hence not snapshotted.
    #[serde(skip)]
    unreferenced: Vec<AclId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Slot {
    acl: Vec<Acl>,
    refs: u64,
}

impl AclTable {
    /// The id of `acl`, adding it if it is new. Takes no reference: storing the id in a
    /// znode goes through [`AclTable::acquire`].
    pub(super) fn intern(&mut self, acl: &[Acl]) -> AclId {
        if let Some(&id) = self.ids.get(acl) {
            return id;
        }
        let slot = Some(Slot {
            acl: acl.to_vec(),
            refs: 0,
        });
        let id = match self.free.pop() {
            Some(id) => {
                if let Some(s) = self.slots.get_mut(id as usize) {
                    *s = slot;
                }
                id
            }
            None => {
                self.slots.push(slot);
                AclId::try_from(self.slots.len() - 1).unwrap_or(AclId::MAX)
            }
        };
        self.ids.insert(acl.to_vec(), id);
        // Nobody refers to it yet: if nobody does by the end of the txn, sweep frees it.
        self.unreferenced.push(id);
        id
    }

    /// Counts one more znode holding `id`.
    pub(super) fn acquire(&mut self, id: AclId) {
        if let Some(Some(slot)) = self.slots.get_mut(id as usize) {
            slot.refs += 1;
        }
    }

    /// Counts one znode less holding `id`.
    pub(super) fn release(&mut self, id: AclId) {
        if let Some(Some(slot)) = self.slots.get_mut(id as usize) {
            slot.refs = slot.refs.saturating_sub(1);
            if slot.refs == 0 {
                self.unreferenced.push(id);
            }
        }
    }

    /// The list behind `id` (empty for an unknown id, which the tree never stores).
    pub(super) fn get(&self, id: AclId) -> &[Acl] {
        match self.slots.get(id as usize) {
            Some(Some(slot)) => &slot.acl,
            _ => &[],
        }
    }

    /// Frees the lists no znode holds any more. Called after each transaction, never
    /// inside one.
    pub(super) fn sweep(&mut self) {
        for id in std::mem::take(&mut self.unreferenced) {
            let Some(entry) = self.slots.get_mut(id as usize) else {
                continue;
            };
            if entry.as_ref().is_some_and(|slot| slot.refs == 0) {
                if let Some(slot) = entry.take() {
                    self.ids.remove(&slot.acl);
                    self.free.push(id);
                }
            }
        }
    }

    /// Number of live lists.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(user: &str) -> Vec<Acl> {
        vec![Acl {
            perms: 31,
            scheme: "digest".into(),
            id: format!("{user}:x"),
        }]
    }

    #[test]
    fn interns_once_and_frees_on_sweep() {
        let mut t = AclTable::default();
        let open = t.intern(&Acl::open_unsafe());
        t.acquire(open);
        assert_eq!(t.intern(&Acl::open_unsafe()), open);
        let a = t.intern(&digest("a"));
        t.acquire(a);
        t.acquire(a);
        t.sweep();
        assert_eq!(t.len(), 2);
        t.release(a);
        t.sweep();
        assert_eq!(t.get(a), digest("a").as_slice());
        t.release(a);
        // Still readable until the sweep: an undo log may put it back.
        assert_eq!(t.get(a), digest("a").as_slice());
        t.sweep();
        assert_eq!(t.len(), 1);
        assert!(t.get(a).is_empty());
        // The freed slot is reused.
        let b = t.intern(&digest("b"));
        assert_eq!(b, a);
        assert_eq!(t.get(open), Acl::open_unsafe().as_slice());
    }

    #[test]
    fn unreferenced_new_list_is_swept_and_revived_list_is_kept() {
        let mut t = AclTable::default();
        let a = t.intern(&digest("a"));
        t.sweep();
        assert_eq!(t.len(), 0);
        let a2 = t.intern(&digest("a"));
        assert_eq!(a, a2);
        t.acquire(a2);
        t.release(a2);
        t.acquire(a2);
        t.sweep();
        assert_eq!(t.len(), 1);
        assert_eq!(t.get(a2), digest("a").as_slice());
    }
}
