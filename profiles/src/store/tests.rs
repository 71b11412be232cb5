//! The store against a real sled database in a temporary directory.

use super::{temp::TempDir, *};
use crate::{
    Access,
    model::{EntryKind, FileEntry, Seen},
};

fn stored(path: &str, count: u64) -> StoredProfile {
    let mut profile = Profile::default();
    profile.files.insert(
        FileEntry {
            path: path.into(),
            access: Access::Read,
        },
        Seen {
            count,
            first_ns: 5,
            last_ns: 6,
        },
    );
    let mut learning = Learning::new(1);
    learning.changed(&[EntryKind::File], 5);
    StoredProfile { profile, learning }
}

#[test]
fn profiles_survive_reopening() {
    let dir = TempDir::new("reopen");
    let a = ProfileKey::new("/system.slice/a.service", "rev1").unwrap();
    let b = ProfileKey::new("/system.slice/b.service", "rev1").unwrap();
    {
        let store = dir.open();
        store
            .save_batch([(&a, &stored("/etc/a", 1)), (&b, &stored("/etc/b", 2))])
            .unwrap();
        store.flush().unwrap();
    }
    let store = dir.open();
    assert_eq!(store.load(&a).unwrap(), Some(stored("/etc/a", 1)));
    assert_eq!(store.load(&b).unwrap(), Some(stored("/etc/b", 2)));
    assert_eq!(store.keys().unwrap(), vec![a.clone(), b]);
    assert!(store.remove(&a).unwrap());
    assert_eq!(store.load(&a).unwrap(), None);
}

#[test]
fn modes_are_durable_and_listed() {
    let dir = TempDir::new("modes");
    {
        let store = dir.open();
        assert_eq!(store.mode("/w").unwrap(), None);
        store.set_mode("/w", Mode::Alert).unwrap();
        store.set_mode("/v", Mode::Enforce).unwrap();
    }
    let store = dir.open();
    assert_eq!(store.mode("/w").unwrap(), Some(Mode::Alert));
    assert_eq!(
        store.modes().unwrap(),
        vec![("/v".into(), Mode::Enforce), ("/w".into(), Mode::Alert)]
    );
}

#[test]
fn bad_names_and_corrupt_values_are_clear_errors() {
    assert!(matches!(
        ProfileKey::new("", "r"),
        Err(StoreError::InvalidName {
            what: "workload",
            ..
        })
    ));
    assert!(matches!(
        ProfileKey::new("w", "a\u{0}b"),
        Err(StoreError::InvalidName {
            what: "revision",
            ..
        })
    ));
    let dir = TempDir::new("corrupt");
    let store = dir.open();
    let key = ProfileKey::new("/w", "r").unwrap();
    store
        .profiles
        .insert(key.bytes(), vec![CODEC_VERSION_FOR_TEST, 0xff, 0xff])
        .unwrap();
    let err = store.load(&key).unwrap_err();
    assert!(
        err.to_string().contains("/w/r") && err.to_string().contains("corrupt"),
        "{err}"
    );
}

const CODEC_VERSION_FOR_TEST: u8 = crate::codec::CODEC_VERSION;

#[test]
fn a_second_process_cannot_open_the_same_store() {
    // sled holds an exclusive lock: a second open in this process fails too.
    let dir = TempDir::new("lock");
    let _first = dir.open();
    let second = Store::open(&dir.0);
    assert!(second.is_err(), "the store must be owned by one holder");
}
