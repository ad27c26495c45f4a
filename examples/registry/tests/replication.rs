//! Push replication through the real binary: pushes reach a distribution 2.8.2 target with their
//! signatures (through the referrers tag schema, which distribution lacks an API for), outside
//! the covered repositories and tags nothing goes, an outage of the target with our registry
//! killed and restarted meanwhile loses nothing, deletes follow, and two replicas over one S3
//! bucket send each manifest once.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::distribution::Distribution;
use support::images::{digest_at, registry, seed};
use support::wait::until;
use support::{Api, Server, skopeo, verify_layout_blobs};

/// The sum of a metric's series whose labels include every one of `labels`.
async fn metric(addr: &str, name: &str, labels: &[&str]) -> f64 {
    let text = Api::new(addr)
        .get("/metrics")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// The referrers the tag schema's index on `addr` lists for `subject`.
async fn schema_referrers(addr: &str, repo: &str, subject: &str) -> String {
    let tag = subject.replace(':', "-");
    let r = reqwest::Client::new()
        .get(format!("http://{addr}/v2/{repo}/manifests/{tag}"))
        .header("accept", "application/vnd.oci.image.index.v1+json")
        .send()
        .await
        .unwrap();
    match r.status().as_u16() {
        200 => r.text().await.unwrap(),
        _ => String::new(),
    }
}

fn config(dir: &std::path::Path, target: &str, extra: &str) -> String {
    let path = dir.join("replication.toml");
    std::fs::write(
        &path,
        format!(
            "[[replication]]\nname = \"dr\"\nurl = \"http://{target}\"\nrepositories = [\"prod/*\"]\ntags = [\"^v\"]\n{extra}"
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

#[cfg_attr(
    not(all(has_skopeo, has_docker_registry)),
    ignore = "skipped: skopeo and docker-registry are not installed (apt-get install skopeo docker-registry)"
)]
#[tokio::test(flavor = "multi_thread")]
async fn pushes_reach_distribution_with_signatures_through_outages_and_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut target = Distribution::start(tmp.path());
    let config = config(tmp.path(), &target.addr, "delete = true\n");
    let data = tmp.path().join("data");
    let ours = Server::start(&data, &["--config", &config]);

    let v1 = seed(tmp.path(), &ours.addr, "prod/app", "v1", 1).await;
    let other = seed(tmp.path(), &ours.addr, "prod/app", "latest", 2).await;
    seed(tmp.path(), &ours.addr, "dev/app", "v1", 3).await;
    until(
        "v1 and its signature on the target",
        Duration::from_secs(60),
        async || {
            digest_at(&target.addr, "prod/app", "v1").as_deref() == Some(&v1.index)
                && schema_referrers(&target.addr, "prod/app", &v1.index)
                    .await
                    .contains(&v1.signature)
        },
    )
    .await;
    for child in &v1.children {
        assert_eq!(
            digest_at(&target.addr, "prod/app", child).as_ref(),
            Some(child)
        );
    }
    // A real client pulls every platform from the target, every digest verified.
    let pulled = tmp.path().join("pulled");
    let cache = tmp.path().join("skopeo-pull");
    std::fs::create_dir_all(&cache).unwrap();
    skopeo(
        &cache,
        &[
            "copy",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{}/prod/app:v1", target.addr),
            &format!("oci:{}:v1", pulled.display()),
        ],
    )
    .unwrap();
    assert_eq!(verify_layout_blobs(&pulled), 2 * 4 + 1);
    // Outside the tags and repositories covered, nothing went.
    assert_eq!(digest_at(&target.addr, "prod/app", "latest"), None);
    assert_eq!(digest_at(&target.addr, "prod/app", &other.index), None);
    assert_eq!(digest_at(&target.addr, "dev/app", "v1"), None);

    // The target goes away; a push waits in the queue, and our registry is killed meanwhile.
    target.stop();
    let v2 = seed(tmp.path(), &ours.addr, "prod/app", "v2", 4).await;
    let status = || {
        registry(&[
            "--config",
            &config,
            "--storage",
            &format!("fs:{}", data.display()),
            "replication",
            "status",
        ])
        .unwrap()
    };
    until(
        "a failed attempt on record",
        Duration::from_secs(60),
        async || status().contains("unreachable"),
    )
    .await;
    assert!(
        metric(
            &ours.addr,
            "registry_replication_failures_total",
            &[r#"target="dr""#]
        )
        .await
            > 0.0
    );
    drop(ours);
    let before = status();
    assert!(before.contains("backlog 2"), "{before}");
    let ours = Server::start(&data, &["--config", &config]);
    target.resume();
    // The new process drains the queue of the one killed once its heartbeat is stale.
    until("v2 after the outage", Duration::from_secs(90), async || {
        digest_at(&target.addr, "prod/app", "v2").as_deref() == Some(&v2.index)
            && schema_referrers(&target.addr, "prod/app", &v2.index)
                .await
                .contains(&v2.signature)
    })
    .await;
    until("an empty backlog", Duration::from_secs(30), async || {
        status().contains("backlog 0")
    })
    .await;

    // A manifest deleted here goes there too.
    let r = reqwest::Client::new()
        .delete(format!(
            "http://{}/v2/prod/app/manifests/{}",
            ours.addr, v1.index
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    until(
        "v1 deleted on the target",
        Duration::from_secs(60),
        async || digest_at(&target.addr, "prod/app", &v1.index).is_none(),
    )
    .await;
    assert_eq!(
        digest_at(&target.addr, "prod/app", "v2").as_deref(),
        Some(v2.index.as_str())
    );
    assert!(
        metric(
            &ours.addr,
            "registry_replication_copied_total",
            &[r#"target="dr""#]
        )
        .await
            >= 1.0
    );
}

#[cfg_attr(
    not(all(has_moto, has_skopeo)),
    ignore = "skipped: moto_server and skopeo are not installed (pip install 'moto[server]'; apt-get install skopeo)"
)]
#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_over_one_bucket_send_each_push_once() {
    use registry_storage::testing::MotoServer;
    let tmp = tempfile::tempdir().unwrap();
    let moto = MotoServer::start();
    let bucket = format!("reg-{}", uuid::Uuid::new_v4().simple());
    moto.bucket(&bucket);
    let endpoint = moto.endpoint();
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    let target = Server::start(&tmp.path().join("target"), &[]);
    let config = config(tmp.path(), &target.addr, "");
    let storage = format!("s3://{bucket}/store");
    let replicas = [
        Server::start_with(&storage, &["--config", &config], &env),
        Server::start_with(&storage, &["--config", &config], &env),
    ];
    let mut pushed = Vec::new();
    for n in 0..4u64 {
        let through = &replicas[(n % 2) as usize];
        let tag = format!("v{n}");
        pushed.push((
            tag.clone(),
            seed(tmp.path(), &through.addr, "prod/app", &tag, 10 + n).await,
        ));
    }
    until(
        "every push on the target",
        Duration::from_secs(60),
        async || {
            let mut all = true;
            for (tag, image) in &pushed {
                let (_, referrers) = Api::new(&target.addr)
                    .answer(&format!("/v2/prod/app/referrers/{}", image.index))
                    .await;
                all &= digest_at(&target.addr, "prod/app", tag).as_deref() == Some(&image.index)
                    && referrers.contains(&image.signature);
            }
            all
        },
    )
    .await;
    for replica in &replicas {
        until("an empty queue", Duration::from_secs(30), async || {
            metric(
                &replica.addr,
                "registry_replication_queue_depth",
                &[r#"target="dr""#],
            )
            .await
                == 0.0
        })
        .await;
    }
    // Each image is 4 manifests (2 children, the index, the signature), each put once.
    let puts = metric(
        &target.addr,
        "registry_http_requests_total",
        &[r#"route="manifest""#, r#"method="PUT""#],
    )
    .await;
    assert_eq!(puts, 16.0);
    let copied: f64 = [
        metric(&replicas[0].addr, "registry_replication_copied_total", &[]).await,
        metric(&replicas[1].addr, "registry_replication_copied_total", &[]).await,
    ]
    .iter()
    .sum();
    // A tag and a signature per push, each applied by one replica.
    assert_eq!(copied, 8.0);
}
