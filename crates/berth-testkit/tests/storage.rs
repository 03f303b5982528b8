//! Images, builds, image transfer and volumes through the `Runtime` trait.

mod common;

use berth_runtime::{Runtime, RuntimeError, chain_ids};
use berth_testkit::{ImageSpec, MemoryRuntime};
use bytes::Bytes;
use common::*;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use std::collections::BTreeSet;
use std::io::Read;

async fn collect(stream: BoxStream<'static, Result<Bytes, RuntimeError>>) -> Vec<u8> {
    let chunks: Vec<Bytes> = stream.map(|c| c.unwrap()).collect().await;
    chunks.concat()
}

fn upload(data: Vec<u8>) -> BoxStream<'static, std::io::Result<Bytes>> {
    stream::once(async move { Ok(Bytes::from(data)) }).boxed()
}

fn tar_entries(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    tar::Archive::new(data)
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let mut content = Vec::new();
            e.read_to_end(&mut content).unwrap();
            (name, content)
        })
        .collect()
}

#[tokio::test]
async fn builds_inherit_from_their_base_and_run_their_steps() {
    let rt = MemoryRuntime::new();
    rt.add_image_spec(ImageSpec {
        tag: "base:1".into(),
        labels: labels(&[("from-base", "yes"), ("shared", "base")]),
        cmd: words(&["serve"]),
        exposed_tcp: vec![8080],
        ..Default::default()
    });
    let dockerfile = "ARG GREETING\nFROM base:1\nARG GREETING\nLABEL shared=child\n\
                      RUN echo \"greeting=$GREETING\" && apt-get install -y curl\n\
                      COPY www /www\nEXPOSE 9000\n";
    let (result, lines) = build(
        &rt,
        dockerfile,
        &[("www/index.html", "hi")],
        "app:b1",
        labels(&[("berth.app", "shop")]),
    )
    .await;
    let id = result.unwrap_or_else(|e| panic!("{e}: {lines:?}"));
    assert!(lines.contains(&"greeting=hello".to_string()), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("Step 5/7 : RUN echo")),
        "{lines:?}"
    );
    let details = rt.image_details("app:b1").await.unwrap().unwrap();
    assert_eq!(details.id, id);
    assert_eq!(details.exposed_tcp, vec![8080, 9000]);
    assert_eq!(
        details.labels,
        labels(&[
            ("berth.app", "shop"),
            ("from-base", "yes"),
            ("shared", "child")
        ])
    );
    let base = rt.image_details("base:1").await.unwrap().unwrap();
    assert_eq!(details.diff_ids.len(), base.diff_ids.len() + 2);
    assert!(details.size > base.size);
    let listed = rt.list_images("berth.app", "shop").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].tags, vec!["app:b1".to_string()]);

    // The image's CMD came from the base: it serves.
    rt.ensure_network(NETWORK, &labels(&[])).await.unwrap();
    let info = rt.run_container(&spec("web", "app:b1", &[])).await.unwrap();
    let response = http_get_retrying(info.ip.unwrap(), 8080, "/").await;
    assert!(response.contains("200 OK"), "{response}");
}

#[tokio::test]
async fn build_failures_say_what_the_engine_says() {
    let rt = MemoryRuntime::new();
    let cases = [
        (
            "FROM scratch\nFROBNICATE x\n",
            "unknown instruction: FROBNICATE",
        ),
        ("FROM nowhere:1\n", "pull access denied for nowhere"),
        (
            "FROM scratch\nCOPY missing /x\n",
            "file not found in build context",
        ),
        (
            "FROM scratch\nRUN echo before-failure && exit 1\n",
            "returned a non-zero code: 1",
        ),
    ];
    for (dockerfile, expected) in cases {
        let (result, lines) = build(&rt, dockerfile, &[], "bad:1", labels(&[])).await;
        match result {
            Err(RuntimeError::Build(message)) => {
                assert!(message.contains(expected), "{message}");
                assert_eq!(lines.last(), Some(&message), "the error ends the output");
            }
            other => panic!("{dockerfile:?}: expected a build error, got {other:?}"),
        }
    }
    let (_, lines) = build(
        &rt,
        "FROM scratch\nRUN echo before-failure && exit 1\n",
        &[],
        "bad:1",
        labels(&[]),
    )
    .await;
    assert!(lines.contains(&"before-failure".to_string()), "{lines:?}");
    assert!(!rt.image_exists("bad:1").await.unwrap());

    let context = context_tar(&[("Dockerfile", "FROM scratch\n")]);
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let missing = rt
        .build_image(
            berth_runtime::BuildRequest {
                context_tar: context.path(),
                dockerfile: "Nope.dockerfile".into(),
                tag: "x:1".into(),
                args: Default::default(),
                labels: Default::default(),
            },
            tx,
        )
        .await;
    assert!(matches!(missing, Err(RuntimeError::Build(m)) if m.contains("Nope.dockerfile")));
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let no_context = rt
        .build_image(
            berth_runtime::BuildRequest {
                context_tar: std::path::Path::new("/nonexistent/context.tar"),
                dockerfile: "Dockerfile".into(),
                tag: "x:1".into(),
                args: Default::default(),
                labels: Default::default(),
            },
            tx,
        )
        .await;
    assert!(
        matches!(no_context, Err(RuntimeError::Io(e)) if e.to_string().contains("/nonexistent"))
    );
}

#[tokio::test]
async fn images_in_use_cannot_be_removed_and_tags_go_first() {
    let rt = MemoryRuntime::new();
    let id = rt.add_image("app:1", &labels(&[]), &["sleep"]);
    rt.ensure_network(NETWORK, &labels(&[])).await.unwrap();
    let info = rt.run_container(&spec("w", "app:1", &[])).await.unwrap();
    match rt.remove_image(&id).await {
        Err(RuntimeError::Engine(message)) => assert!(message.contains("conflict"), "{message}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    rt.remove_container(&info.id).await.unwrap();
    // A FROM-only build: a child image with the same layers.
    let (child, _) = build(&rt, "FROM app:1\n", &[], "app:2", labels(&[("k", "v")])).await;
    let child = child.unwrap();
    assert_ne!(child, id);
    rt.remove_image("app:1").await.unwrap();
    assert!(!rt.image_exists("app:1").await.unwrap());
    assert!(rt.image_exists(&id).await.unwrap(), "kept for its child");
    rt.remove_image(&child).await.unwrap();
    assert!(
        !rt.image_exists(&id).await.unwrap(),
        "its untagged parent went with it"
    );
    assert!(rt.layer_chains().await.unwrap().is_empty());
    rt.remove_image("app:2").await.unwrap();
}

#[tokio::test]
async fn export_and_load_round_trip_and_known_layers_may_be_left_out() {
    let source = MemoryRuntime::new();
    let (built, _) = build(
        &source,
        "FROM scratch\nRUN echo one\nRUN echo two\nCMD [\"serve\"]\nEXPOSE 8080\n",
        &[],
        "shop:dev",
        labels(&[("berth.app", "shop")]),
    )
    .await;
    let id = built.unwrap();
    let saved = collect(source.export_image("shop:dev")).await;
    let names: Vec<String> = tar_entries(&saved).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"manifest.json".to_string()), "{names:?}");
    assert_eq!(
        names.iter().filter(|n| n.ends_with("/layer.tar")).count(),
        2
    );

    let target = MemoryRuntime::new();
    assert_eq!(
        target.load_image(upload(saved.clone())).await.unwrap(),
        vec!["shop:dev"]
    );
    let there = target.image_details("shop:dev").await.unwrap().unwrap();
    let here = source.image_details(&id).await.unwrap().unwrap();
    assert_eq!(there.id, id);
    assert_eq!(there.diff_ids, here.diff_ids);
    assert_eq!(there.labels, here.labels);
    assert_eq!(there.exposed_tcp, vec![8080]);
    assert_eq!(
        target.layer_chains().await.unwrap(),
        source.layer_chains().await.unwrap()
    );

    // Without the first layer's data: fine where that layer is, refused elsewhere.
    let first_chain = chain_ids(&here.diff_ids)[0].clone();
    let manifest: serde_json::Value = serde_json::from_slice(
        &tar_entries(&saved)
            .into_iter()
            .find(|(n, _)| n == "manifest.json")
            .unwrap()
            .1,
    )
    .unwrap();
    let first_layer = manifest[0]["Layers"][0].as_str().unwrap().to_string();
    let mut thin = tar::Builder::new(Vec::new());
    for (name, content) in tar_entries(&saved) {
        if name != first_layer {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            thin.append_data(&mut header, &name, &content[..]).unwrap();
        }
    }
    let thin = thin.into_inner().unwrap();
    let with_layer = MemoryRuntime::new();
    let (_, _) = build(
        &with_layer,
        "FROM scratch\nRUN echo one\n",
        &[],
        "other:1",
        labels(&[]),
    )
    .await;
    assert!(
        with_layer
            .layer_chains()
            .await
            .unwrap()
            .contains(&first_chain)
    );
    assert_eq!(
        with_layer.load_image(upload(thin.clone())).await.unwrap(),
        vec!["shop:dev"]
    );
    let err = MemoryRuntime::new()
        .load_image(upload(thin))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no such file"), "{err}");
    let err = MemoryRuntime::new()
        .load_image(upload(Vec::new()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("held no image"), "{err}");

    // Saved by id: no tags, loaded by id.
    let by_id = collect(source.export_image(&id)).await;
    assert_eq!(
        MemoryRuntime::new()
            .load_image(upload(by_id))
            .await
            .unwrap(),
        vec![id]
    );
}

#[tokio::test]
async fn volumes_persist_across_containers_and_round_trip_as_archives() {
    let rt = MemoryRuntime::new();
    rt.ensure_network(NETWORK, &labels(&[])).await.unwrap();
    rt.add_image("app:1", &labels(&[("berth.rack", "test")]), &["sleep"]);
    rt.ensure_volume("vol-b", &labels(&[("berth.app", "shop")]))
        .await
        .unwrap();
    rt.ensure_volume("vol-a", &labels(&[("berth.app", "shop")]))
        .await
        .unwrap();
    rt.ensure_volume("vol-a", &labels(&[("berth.app", "other")]))
        .await
        .unwrap();
    let names: Vec<String> = rt
        .list_volumes("berth.app", "shop")
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, vec!["vol-a", "vol-b"]);

    let mut writer = spec(
        "writer",
        "app:1",
        &["write", "/data/x", "hello", "&&", "sleep"],
    );
    writer.volumes = vec![("vol-a".into(), "/data".into())];
    let first = rt.run_container(&writer).await.unwrap();
    for _ in 0..100 {
        if rt.read_volume_file("vol-a", "x").is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        rt.read_volume_file("vol-a", "x").unwrap(),
        Bytes::from_static(b"hello")
    );
    let err = rt.remove_volume("vol-a").await.unwrap_err().to_string();
    assert!(err.contains("is in use"), "{err}");
    rt.remove_container(&first.id).await.unwrap();

    let mut reader = spec("reader", "app:1", &["cat", "/data/x"]);
    reader.volumes = vec![("vol-a".into(), "/data".into())];
    let second = rt.run_container(&reader).await.unwrap();
    assert_eq!(rt.wait_container(&second.id).await.unwrap(), 0);
    let lines = rt.tail_logs(&second.id, 10).await.unwrap();
    assert_eq!(lines[0].text, "hello");
    rt.remove_container(&second.id).await.unwrap();

    let helper = rt
        .create_helper(
            "helper",
            "app:1",
            &labels(&[("berth.rack", "")]),
            &[("vol-a".into(), "/mnt".into())],
        )
        .await
        .unwrap();
    assert!(
        rt.list_containers("berth.rack", "test")
            .await
            .unwrap()
            .is_empty()
    );
    let content = collect(rt.download_archive(&helper, "/mnt/.")).await;
    assert_eq!(
        tar_entries(&content),
        vec![
            ("./".to_string(), vec![]),
            ("./x".to_string(), b"hello".to_vec())
        ]
    );
    let whole = collect(rt.download_archive(&helper, "/mnt")).await;
    assert_eq!(tar_entries(&whole)[0].0, "mnt/");
    let missing: Vec<_> = rt.download_archive(&helper, "/nope").collect().await;
    assert!(
        matches!(missing.as_slice(), [Err(RuntimeError::Engine(m))] if m.contains("Could not find"))
    );

    let mut archive = tar::Builder::new(Vec::new());
    for (name, data) in [("x", &b"replaced"[..]), ("sub/y", &b"new"[..])] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        archive.append_data(&mut header, name, data).unwrap();
    }
    rt.upload_archive(&helper, "/mnt", upload(archive.into_inner().unwrap()))
        .await
        .unwrap();
    assert_eq!(
        rt.read_volume_file("vol-a", "x").unwrap(),
        Bytes::from_static(b"replaced")
    );
    assert_eq!(
        rt.read_volume_file("vol-a", "sub/y").unwrap(),
        Bytes::from_static(b"new")
    );
    let err = rt
        .upload_archive(&helper, "/mnt", upload(b"not a tar at all".repeat(64)))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("refused the archive"), "{err}");

    rt.remove_container(&helper).await.unwrap();
    rt.remove_volume("vol-a").await.unwrap();
    rt.remove_volume("vol-a").await.unwrap();
    let left: BTreeSet<String> = rt
        .list_volumes("berth.app", "shop")
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(left, BTreeSet::from(["vol-b".to_string()]));
}
