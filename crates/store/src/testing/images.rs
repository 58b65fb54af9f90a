//! The image catalogue: logins are per project and per host, package
//! revisions count up per name, images come back least recently used first.

use super::Backend;
use crate::{EngineImage, StoreError};
use gantry_core::ProjectId;

pub async fn logins_are_per_project_revisions_count_up_and_images_list_oldest_use_first(
    b: &dyn Backend,
) {
    let store = b.store();
    let a = ProjectId::default_project();
    let b: ProjectId = "other".parse().expect("id");
    store
        .put_registry(&a, "r.example:5000", "alice", "sealed-1")
        .await
        .expect("put");
    store
        .put_registry(&a, "r.example:5000", "alice", "sealed-2")
        .await
        .expect("replace");
    let login = store
        .registry_login(&a, "r.example:5000")
        .await
        .expect("login")
        .expect("some");
    assert_eq!(login.sealed_password, "sealed-2");
    assert!(store
        .registry_login(&b, "r.example:5000")
        .await
        .expect("login")
        .is_none());
    assert!(store
        .registry_login(&a, "other.example")
        .await
        .expect("login")
        .is_none());
    assert_eq!(store.list_registries(&a).await.expect("list").len(), 1);
    assert!(matches!(
        store.delete_registry(&b, "r.example:5000").await,
        Err(StoreError::NotFound(_))
    ));
    store
        .delete_registry(&a, "r.example:5000")
        .await
        .expect("delete");

    for (i, key) in ["k1", "k2"].iter().enumerate() {
        let rev = store
            .add_package_rev(&a, "etl", key, "abc", 10)
            .await
            .expect("rev");
        assert_eq!(rev.rev, i as u32 + 1);
    }
    assert_eq!(
        store
            .get_package(&a, "etl", None)
            .await
            .expect("latest")
            .object_key,
        "k2"
    );
    assert_eq!(
        store
            .get_package(&a, "etl", Some(1))
            .await
            .expect("rev 1")
            .object_key,
        "k1"
    );
    assert!(store.get_package(&b, "etl", None).await.is_err());

    let image = |reference: &str| EngineImage {
        worker_id: super::wid("w"),
        reference: reference.into(),
        image_id: format!("sha256:{reference}"),
        kind: "pulled".into(),
        size: 5,
        warm: false,
        last_used: 0,
        created_at: 0,
    };
    for r in ["one", "two"] {
        store.touch_image(&image(r)).await.expect("touch");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    store.touch_image(&image("one")).await.expect("use again");
    let listed: Vec<String> = store
        .list_images(Some(&super::wid("w")))
        .await
        .expect("list")
        .into_iter()
        .map(|i| i.reference)
        .collect();
    assert_eq!(listed, vec!["two", "one"]);
    store
        .forget_image(&super::wid("w"), "two")
        .await
        .expect("forget");
    assert_eq!(store.list_images(None).await.expect("list").len(), 1);
}
