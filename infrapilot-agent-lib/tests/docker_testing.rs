//! The Docker test helpers themselves: the test image runs busybox, and a guard removes what
//! it labeled, also when its test panics.

// Test code: a failure is a panic with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use bollard::query_parameters::{ListContainersOptions, ListNetworksOptions, ListVolumesOptions};
use infrapilot_agent_lib::testing::{RunOptions, TEST_IMAGE, TestDocker, ensure_test_image};

async fn labeled_objects(filter: &str) -> usize {
    let docker = infrapilot_agent_lib::testing::connect().await.unwrap();
    let filters = Some(HashMap::from([(
        "label".to_owned(),
        vec![filter.to_owned()],
    )]));
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: filters.clone(),
            ..Default::default()
        }))
        .await
        .unwrap();
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: filters.clone(),
        }))
        .await
        .unwrap();
    let volumes = docker
        .list_volumes(Some(ListVolumesOptions { filters }))
        .await
        .unwrap()
        .volumes
        .unwrap_or_default();
    containers.len() + networks.len() + volumes.len()
}

#[tokio::test]
async fn the_test_image_runs_busybox_and_the_guard_cleans_up() {
    assert_eq!(ensure_test_image().await.unwrap(), TEST_IMAGE);
    // Twice is fine.
    assert_eq!(ensure_test_image().await.unwrap(), TEST_IMAGE);
    let docker = TestDocker::new("testing_guard").await.unwrap();
    let filter = docker.label_filter();
    let c = docker
        .run(
            "echo",
            &["sh", "-c", "echo hello from busybox; sleep 30"],
            RunOptions::default(),
        )
        .await
        .unwrap();
    assert!(c.name.starts_with("ipt-testing_guard-"), "{c:?}");
    let network = docker.network("net").await.unwrap();
    let volume = docker.volume("data").await.unwrap();
    assert_ne!(network, volume);
    assert_eq!(labeled_objects(&filter).await, 3);
    let inspect = docker
        .docker()
        .inspect_container(
            &c.id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .unwrap();
    assert_eq!(inspect.state.unwrap().running, Some(true));
    drop(docker);
    assert_eq!(labeled_objects(&filter).await, 0);
}

#[tokio::test]
async fn a_panicking_test_leaves_nothing_behind() {
    let (tx, rx) = std::sync::mpsc::channel();
    let test = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let docker = TestDocker::new("testing_panic").await.unwrap();
            tx.send(docker.label_filter()).unwrap();
            docker
                .run("sleeper", &["sleep", "60"], RunOptions::default())
                .await
                .unwrap();
            docker.volume("v").await.unwrap();
            panic!("the test fails");
        })
    });
    assert!(test.join().is_err(), "the test thread panicked");
    let filter = rx.recv().unwrap();
    assert_eq!(labeled_objects(&filter).await, 0);
}
