//! Reading trees side by side, entry by entry, for the comparisons that skip folders two
//! trees have alike (changed paths, merges by folder).

use std::collections::BTreeMap;

use git2::Tree;

/// The git mode of a tree entry that is a folder.
pub(crate) const FOLDER_MODE: i32 = 0o040000;

/// One tree's entry of a name: its git mode and object, `None` when the tree has no such
/// entry (or there is no tree).
pub(crate) type Entry = Option<(i32, git2::Oid)>;

/// Every name found in any of `trees` (a missing tree holds nothing), sorted, with each
/// tree's entry of that name.
pub(crate) fn entries_by_name<const N: usize>(trees: [Option<&Tree<'_>>; N]) -> BTreeMap<Vec<u8>, [Entry; N]> {
    let mut entries: BTreeMap<Vec<u8>, [Entry; N]> = BTreeMap::new();
    for (side, tree) in trees.into_iter().enumerate() {
        for entry in tree.into_iter().flat_map(Tree::iter) {
            entries.entry(entry.name_bytes().to_vec()).or_insert([None; N])[side] =
                Some((entry.filemode_raw(), entry.id()));
        }
    }
    entries
}

/// Tells whether an entry is a folder.
pub(crate) fn is_folder(entry: &Entry) -> bool {
    entry.is_some_and(|(mode, _)| mode == FOLDER_MODE)
}
