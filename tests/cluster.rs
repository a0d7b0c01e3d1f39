//! Two nodes partitioned by hotel behind HAProxy, whose configuration comes from the same
//! cluster file the nodes read (`innkeep cluster haproxy-config`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{booking, client, plus, send, today, try_send, Server, Starting, SECRET};
use crate::webdriver::free_port;

/// Where Debian's `haproxy` package puts HAProxy; `INNKEEP_HAPROXY` overrides it.
const HAPROXY: &str = "/usr/sbin/haproxy";

/// Most time HAProxy gets to start answering (a loaded 2-core machine).
const PROXY_START_TIMEOUT: Duration = Duration::from_secs(30);

/// HAProxy, or a failure saying how to get it: README's test command installs it.
fn haproxy_binary() -> PathBuf {
    let path =
        std::env::var_os("INNKEEP_HAPROXY").map_or_else(|| PathBuf::from(HAPROXY), PathBuf::from);
    assert!(
        path.is_file(),
        "{} is missing (Debian package `haproxy`; set INNKEEP_HAPROXY to use another path). \
         The cluster test needs it: run the README's test command, `scripts/test.sh`, which \
         installs it when it is missing.",
        path.display()
    );
    path
}

/// A running HAProxy, killed when dropped.
struct Proxy {
    child: Child,
    base: String,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    /// Checks and starts HAProxy on `config` (in the foreground), and waits until it
    /// answers on `port`.
    async fn start(config: &Path, port: u16) -> Proxy {
        let haproxy = haproxy_binary();
        let check = Command::new(&haproxy)
            .args(["-c", "-f"])
            .arg(config)
            .output()
            .expect("run haproxy -c");
        assert!(
            check.status.success(),
            "haproxy refused the generated configuration: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = config.with_extension("log");
        let child = Command::new(&haproxy)
            .args(["-db", "-f"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("haproxy log"))
            .spawn()
            .expect("start haproxy");
        let mut proxy = Proxy {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        // HAProxy has no readiness signal to wait on: poll until its frontend answers.
        let c = client();
        let deadline = Instant::now() + PROXY_START_TIMEOUT;
        loop {
            if let Ok(r) = c.get(format!("{}/healthz", proxy.base)).send().await {
                if r.status() == 200 {
                    break proxy;
                }
            }
            let exited = proxy.child.try_wait().expect("haproxy status");
            if exited.is_some() || Instant::now() >= deadline {
                panic!(
                    "haproxy did not answer within {PROXY_START_TIMEOUT:?} (exit: {exited:?}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Creates hotel `id` through `base` (one room type `STD`, `rooms` rooms).
async fn hotel_at(c: &reqwest::Client, base: &str, id: &str, rooms: usize) {
    let put = |path: String, body: Value| {
        let c = c.clone();
        let url = format!("{base}{path}");
        async move {
            let (status, body, _) = send(c.put(&url).json(&body)).await;
            assert!((200..300).contains(&status), "PUT {url} → {status} {body}");
        }
    };
    put(
        format!("/v1/hotels/{id}"),
        json!({"name": format!("Hotel {id}"), "time_zone": "Asia/Shanghai", "currency": "CNY"}),
    )
    .await;
    put(
        format!("/v1/hotels/{id}/room-types/STD"),
        json!({"name": "Standard", "capacity": 2, "base_rate": 10000}),
    )
    .await;
    for n in 1..=rooms {
        put(
            format!("/v1/hotels/{id}/rooms/{n}"),
            json!({"room_type": "STD"}),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn haproxy_routes_each_hotel_to_the_node_serving_its_partition() {
    let dir = tempfile::tempdir().unwrap();
    let (port_a, port_b, port_proxy) = (free_port(), free_port(), free_port());
    let (addr_a, addr_b) = (format!("127.0.0.1:{port_a}"), format!("127.0.0.1:{port_b}"));
    let cluster_file = dir.path().join("cluster.toml");
    std::fs::write(
        &cluster_file,
        format!(
            "[[nodes]]\nid = \"a\"\naddress = \"{addr_a}\"\n\
             [[nodes]]\nid = \"b\"\naddress = \"{addr_b}\"\n\
             [[partitions]]\nid = \"p1\"\nprimary = \"a\"\nhotels = [\"H1\"]\n\
             [[partitions]]\nid = \"p2\"\nprimary = \"b\"\nhotels = [\"H2\"]\n"
        ),
    )
    .unwrap();
    let file = cluster_file.to_str().unwrap();
    let node = |id: &'static str, listen: &str| {
        let data = dir.path().join(id);
        let env = [
            ("INNKEEP_LISTEN", listen),
            ("INNKEEP_CLUSTER_NODE_ID", id),
            ("INNKEEP_CLUSTER_FILE", file),
        ];
        Server::start(&data, &env)
    };
    let a = node("a", &addr_a);
    let b = node("b", &addr_b);

    // The proxy's configuration, from the same file.
    let generated = Command::new(env!("CARGO_BIN_EXE_innkeep"))
        .args(["cluster", "haproxy-config", "--file", file, "--bind"])
        .arg(format!("127.0.0.1:{port_proxy}"))
        .output()
        .unwrap();
    assert!(generated.status.success(), "{generated:?}");
    let config = dir.path().join("haproxy.cfg");
    std::fs::write(&config, &generated.stdout).unwrap();
    let proxy = Proxy::start(&config, port_proxy).await;

    // Everything through the proxy: set-up, bookings, reads, a payment.
    let c = client();
    hotel_at(&c, &proxy.base, "H1", 3).await;
    hotel_at(&c, &proxy.base, "H2", 3).await;
    let arrival = plus(today("Asia/Shanghai"), 2);
    let mut booked = Vec::new();
    for (hotel, nights) in [("H1", 1), ("H2", 1), ("H1", 2), ("H2", 3)] {
        let (status, body, _) = send(
            c.post(proxy.url(&format!("/v1/hotels/{hotel}/reservations")))
                .json(&booking(arrival, plus(arrival, nights))),
        )
        .await;
        assert_eq!(status, 201, "{hotel}: {body}");
        assert_eq!(body["hotel_id"], hotel);
        booked.push(body);
    }
    for r in &booked {
        let (hotel, id) = (r["hotel_id"].as_str().unwrap(), r["id"].as_str().unwrap());
        let (status, body, _) =
            send(c.get(proxy.url(&format!("/v1/hotels/{hotel}/reservations/{id}")))).await;
        assert_eq!((status, &body), (200, r));
        // It lives on its hotel's node only.
        let (owner, other) = if hotel == "H1" { (&a, &b) } else { (&b, &a) };
        let (status, _, _) = send(c.get(owner.url(&format!("/v1/reservations/{id}")))).await;
        assert_eq!(status, 200);
        let (status, body, _) = send(c.get(other.url(&format!("/v1/reservations/{id}")))).await;
        assert_eq!(status, 404, "{body}");
    }
    let paid = &booked[1];
    let callback = json!({
        "out_trade_no": paid["payment"]["out_trade_no"],
        "trade_no": "T-cluster",
        "status": "succeeded",
        "amount": paid["payment"]["amount"]["amount"],
        "currency": paid["payment"]["amount"]["currency"],
    });
    let bytes = callback.to_string();
    let signature = innkeep_http::routes::payments::signature_header(
        SECRET.as_bytes(),
        jiff::Timestamp::now().as_second(),
        bytes.as_bytes(),
    );
    let (status, body, _) = send(
        c.post(proxy.url("/v1/hotels/H2/payments/notify"))
            .header("content-type", "application/json")
            .header("x-signature", signature)
            .body(bytes),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = paid["id"].as_str().unwrap();
    let (_, body, _) = send(c.get(proxy.url(&format!("/v1/hotels/H2/reservations/{id}")))).await;
    assert_eq!(body["status"], "confirmed", "{body}");

    // Straight at the wrong node: 421, naming the owner.
    let (status, body, _) = send(c.get(a.url("/v1/hotels/H2"))).await;
    assert_eq!(status, 421, "{body}");
    assert_eq!(body["code"], "misdirected");
    assert_eq!(
        body["owner"],
        json!({"partition": "p2", "node": "b", "address": addr_b})
    );
    // What the proxy's checks see: each partition ready on its owner only.
    for (server, mine, theirs) in [(&a, "p1", "p2"), (&b, "p2", "p1")] {
        let (status, _, _) = send(c.get(server.url(&format!("/readyz?partition={mine}")))).await;
        assert_eq!(status, 200);
        let (status, body, _) =
            send(c.get(server.url(&format!("/readyz?partition={theirs}")))).await;
        assert_eq!((status, body["code"].as_str()), (503, Some("not_owner")));
    }
}

/// Where Debian's `nats-server` package puts the server; `INNKEEP_NATS_SERVER` overrides
/// it.
const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// A `nats-server -js` on a loopback port, its store in a directory of its own; killed
/// when dropped.
struct Nats {
    child: Child,
    url: String,
    binary: PathBuf,
    port: u16,
    store: tempfile::TempDir,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nats {
    /// Sends `signal` (`-STOP`, `-CONT`) to the server.
    fn signal(&self, signal: &str) {
        // `kill` from the command line: the crate forbids unsafe code, so no libc::kill.
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Starts it and waits until it accepts connections.
    async fn start() -> Nats {
        let binary = std::env::var_os("INNKEEP_NATS_SERVER")
            .map_or_else(|| PathBuf::from(NATS_SERVER), PathBuf::from);
        assert!(
            binary.is_file(),
            "{} is missing (Debian package `nats-server`; set INNKEEP_NATS_SERVER to use \
             another path). The stream test needs it: run the README's test command, \
             `scripts/test.sh`, which installs it when it is missing.",
            binary.display()
        );
        let store = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Self::spawn(&binary, port, store.path());
        let mut nats = Nats {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            binary,
            port,
            store,
        };
        nats.wait_accepting().await;
        nats
    }

    fn spawn(binary: &Path, port: u16, store: &Path) -> Child {
        Command::new(binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server")
    }

    /// SIGKILLs it and starts it again on the same port and store.
    async fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(&self.binary, self.port, self.store.path());
        self.wait_accepting().await;
    }

    async fn wait_accepting(&mut self) {
        // No readiness signal to wait on: poll until a client gets through.
        let deadline = Instant::now() + PROXY_START_TIMEOUT;
        loop {
            if async_nats::connect(self.url.as_str()).await.is_ok() {
                return;
            }
            let exited = self.child.try_wait().expect("nats-server status");
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "nats-server did not accept connections within {PROXY_START_TIMEOUT:?} (exit: {exited:?})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Node `a` of a cluster of its own, serving one partition per hotel of `hotels` (`p1`
/// holds the first, `p2` the second, …) and publishing to `nats`: its listen address and
/// the environment that makes it so, with `extra` variables.
struct OneNode {
    listen: String,
    file: PathBuf,
    url: String,
}

impl OneNode {
    /// Its leases last the longest a file allows: these tests pause and restart NATS,
    /// and a lease that lapsed meanwhile would (rightly) stop the node serving.
    fn new(dir: &Path, nats: &Nats, hotels: &[&str]) -> OneNode {
        Self::with_lease(dir, nats, hotels, innkeep_http::cluster::MAX_LEASE_TTL_MS)
    }

    /// [`OneNode::new`] whose cluster file sets the partitions' leases to last
    /// `lease_ttl_ms`.
    fn with_lease(dir: &Path, nats: &Nats, hotels: &[&str], lease_ttl_ms: u64) -> OneNode {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut text = format!(
            "lease_ttl_ms = {lease_ttl_ms}\n[[nodes]]\nid = \"a\"\naddress = \"{listen}\"\n"
        );
        for (i, hotel) in hotels.iter().enumerate() {
            text.push_str(&format!(
                "[[partitions]]\nid = \"p{}\"\nprimary = \"a\"\nhotels = [\"{hotel}\"]\n",
                i + 1
            ));
        }
        let file = dir.join("cluster.toml");
        std::fs::write(&file, text).unwrap();
        OneNode {
            listen,
            file,
            url: nats.url.clone(),
        }
    }

    fn env<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env = vec![
            ("INNKEEP_LISTEN", self.listen.as_str()),
            ("INNKEEP_CLUSTER_NODE_ID", "a"),
            ("INNKEEP_CLUSTER_FILE", self.file.to_str().unwrap()),
            ("INNKEEP_CLUSTER_NATS_URL", self.url.as_str()),
        ];
        env.extend_from_slice(extra);
        env
    }
}

/// One message of a partition's stream.
#[derive(Debug)]
struct Published {
    /// `Innkeep-Seq`: the event's journal sequence.
    seq: u64,
    /// `Nats-Msg-Id`.
    id: String,
    /// The body.
    body: Value,
}

/// Every message of `partition`'s stream, in stream order.
async fn read_stream(nats: &Nats, partition: &str) -> Vec<Published> {
    let client = async_nats::connect(nats.url.as_str()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let Ok(mut stream) = jetstream
        .get_stream(innkeep::stream::stream_name(partition))
        .await
    else {
        return Vec::new();
    };
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    for n in 1..=last {
        let m = stream.get_raw_message(n).await.unwrap();
        assert_eq!(m.subject.as_str(), innkeep::stream::subject(partition));
        let header = |name: &str| m.headers.get(name).unwrap().as_str().to_owned();
        out.push(Published {
            seq: header("Innkeep-Seq").parse().unwrap(),
            id: header("Nats-Msg-Id"),
            body: serde_json::from_slice(&m.payload).unwrap(),
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn async_each_partitions_events_reach_its_stream_once_and_in_order_across_a_kill_9() {
    let nats = Nats::start().await;
    let dir = tempfile::tempdir().unwrap();
    let node = OneNode::new(dir.path(), &nats, &["H1", "H2"]);
    let data = dir.path().join("a");
    // Acknowledged once in the local journal: bookings go on while NATS is paused.
    let env = node.env(&[("INNKEEP_CLUSTER_REPLICATION", "async")]);
    let c = client();
    let a = Server::start(&data, &env);
    hotel_at(&c, &a.url(""), "H1", 4).await;
    hotel_at(&c, &a.url(""), "H2", 4).await;
    let arrival = plus(today("Asia/Shanghai"), 1);
    // Acknowledged bookings: (hotel, reservation id).
    let mut acked: Vec<(String, String)> = Vec::new();
    let book = |hotel: &'static str, day: i64| {
        let c = c.clone();
        let url = a.url(&format!("/v1/hotels/{hotel}/reservations"));
        let stay = booking(plus(arrival, day), plus(arrival, day + 1));
        async move {
            // No answer (the node was killed first) is no acknowledgement.
            match try_send(c.post(&url).json(&stay)).await {
                Ok((status, body, _)) => (hotel, status, body),
                Err(_) => (hotel, 0, Value::Null),
            }
        }
    };
    for day in 0..6 {
        for hotel in ["H1", "H2"] {
            let (hotel, status, body) = book(hotel, day).await;
            assert_eq!(status, 201, "{body}");
            acked.push((hotel.to_owned(), body["id"].as_str().unwrap().to_owned()));
        }
    }
    // NATS paused: the next bookings are acknowledged (the journal has them) but cannot
    // be published; some are still in flight when the node is killed.
    nats.signal("-STOP");
    let in_flight: Vec<_> = (6..16)
        .flat_map(|day| ["H1", "H2"].map(|h| tokio::spawn(book(h, day))))
        .collect();
    let mut in_flight = in_flight.into_iter();
    if let Some(first) = in_flight.next() {
        let (hotel, status, body) = first.await.unwrap();
        assert_eq!(status, 201, "{body}");
        acked.push((hotel.to_owned(), body["id"].as_str().unwrap().to_owned()));
    }
    a.kill();
    for task in in_flight {
        let (hotel, status, body) = task.await.unwrap();
        if status == 201 {
            acked.push((hotel.to_owned(), body["id"].as_str().unwrap().to_owned()));
        }
    }
    nats.signal("-CONT");
    let a = Server::start(&data, &env);
    let book = |hotel: &'static str, day: i64| {
        let c = c.clone();
        let url = a.url(&format!("/v1/hotels/{hotel}/reservations"));
        let stay = booking(plus(arrival, day), plus(arrival, day + 1));
        async move { send(c.post(&url).json(&stay)).await }
    };
    for day in 16..20 {
        for hotel in ["H1", "H2"] {
            let (status, body, _) = book(hotel, day).await;
            assert_eq!(status, 201, "{body}");
            acked.push((hotel.to_owned(), body["id"].as_str().unwrap().to_owned()));
        }
    }

    // Every acknowledged booking reaches its partition's stream (published after the
    // acknowledgement, so wait for it), once, and only there.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (p1, p2) = loop {
        let (p1, p2) = (
            read_stream(&nats, "p1").await,
            read_stream(&nats, "p2").await,
        );
        let created = |stream: &[Published], id: &str| {
            stream
                .iter()
                .filter(|m| {
                    m.body["type"] == "reservation.created"
                        && m.body["data"]["reservation_id"] == id
                })
                .count()
        };
        let all_there = acked.iter().all(|(hotel, id)| {
            let (mine, other) = if hotel == "H1" {
                (&p1, &p2)
            } else {
                (&p2, &p1)
            };
            created(mine, id) >= 1 && created(other, id) == 0
        });
        if all_there {
            for (hotel, id) in &acked {
                let mine = if hotel == "H1" { &p1 } else { &p2 };
                assert_eq!(created(mine, id), 1, "{id} published more than once");
            }
            break (p1, p2);
        }
        assert!(
            Instant::now() < deadline,
            "acknowledged bookings missing from the streams"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for (partition, hotel, stream) in [("p1", "H1", &p1), ("p2", "H2", &p2)] {
        // In journal order, each once: strictly increasing sequence numbers.
        let seqs: Vec<u64> = stream.iter().map(|m| m.seq).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{partition}: out of order or repeated: {seqs:?}"
        );
        for m in stream {
            assert_eq!(m.body["hotel_id"], hotel, "{partition}: {:?}", m.body);
            assert_eq!(m.body["format"], 1);
            assert_eq!(m.body["id"], m.seq);
            assert_eq!(m.id, format!("a.{}", m.seq));
        }
        // The hotel's set-up comes first: the hotel, its room type, its rooms.
        assert_eq!(
            stream[0].body["type"], "setup.updated",
            "{:?}",
            stream[0].body
        );
    }
    drop(a);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publisher_never_appends_after_another_writers_message() {
    let nats = Nats::start().await;
    let dir = tempfile::tempdir().unwrap();
    let node = OneNode::new(dir.path(), &nats, &["H1", "H2"]);
    // Synchronous replication (the default); a change waiting for its stream gives up
    // after a second.
    let env = node.env(&[("INNKEEP_LIMITS_REQUEST_TIMEOUT_MS", "1000")]);
    let c = client();
    let a = Server::start(&dir.path().join("a"), &env);
    hotel_at(&c, &a.url(""), "H1", 1).await;
    hotel_at(&c, &a.url(""), "H2", 1).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    // Set-up published: the hotel, its room type, its room.
    while read_stream(&nats, "p1").await.len() < 3 || read_stream(&nats, "p2").await.len() < 3 {
        assert!(Instant::now() < deadline, "set-up not published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Someone else appends to p1's stream (a node that also believes it serves p1).
    let jetstream =
        async_nats::jetstream::new(async_nats::connect(nats.url.as_str()).await.unwrap());
    jetstream
        .publish(innkeep::stream::subject("p1"), "{\"foreign\": true}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let arrival = plus(today("Asia/Shanghai"), 1);
    let book = |hotel: &str| {
        let (c, url) = (
            c.clone(),
            a.url(&format!("/v1/hotels/{hotel}/reservations")),
        );
        let stay = booking(arrival, plus(arrival, 1));
        async move { send(c.post(&url).json(&stay)).await }
    };
    // A booking in H1: durable here, but its stream refuses it, so it is never
    // acknowledged (the client's deadline passes).
    let waiting = tokio::spawn(book("H1"));
    // p1's publisher finds the foreign message and stops, saying why...
    let refused = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = a
            .log
            .recv_timeout(left)
            .expect("p1's publisher did not say it stopped");
        if crate::harness::message(&line).starts_with("another writer appended") {
            break line;
        }
    };
    assert_eq!(refused["fields"]["partition"], "p1", "{refused}");
    let (status, body, _) = waiting.await.unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("timeout")),
        "{body}"
    );
    // ...and the node acknowledges nothing more, in any partition: it is not ready, and
    // a change is refused at once.
    let (status, body, _) = send(c.get(a.url("/readyz"))).await;
    assert_eq!(status, 503, "{body}");
    let (status, body, _) = book("H2").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("not_owner")),
        "{body}"
    );
    // p1's stream ends with the foreign message: nothing was written after it.
    let client = async_nats::connect(nats.url.as_str()).await.unwrap();
    let mut p1 = async_nats::jetstream::new(client)
        .get_stream(innkeep::stream::stream_name("p1"))
        .await
        .unwrap();
    let last = p1.info().await.unwrap().state.last_sequence;
    assert_eq!(
        last, 4,
        "set-up, then the foreign message, and nothing after it"
    );
    let foreign = p1.get_raw_message(4).await.unwrap();
    assert_eq!(&foreign.payload[..], b"{\"foreign\": true}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_a_change_is_acknowledged_only_once_its_stream_has_it() {
    let nats = Nats::start().await;
    let dir = tempfile::tempdir().unwrap();
    let node = OneNode::new(dir.path(), &nats, &["H1"]);
    let env = node.env(&[
        ("INNKEEP_CLUSTER_REPLICATION", "sync"),
        // Long enough to outlast NATS's pause below.
        ("INNKEEP_LIMITS_REQUEST_TIMEOUT_MS", "30000"),
        ("INNKEEP_CLUSTER_REPLICATION_STALL_MS", "300"),
    ]);
    let c = client();
    let a = Server::start(&dir.path().join("a"), &env);
    hotel_at(&c, &a.url(""), "H1", 2).await;
    let arrival = plus(today("Asia/Shanghai"), 1);
    let book = |day: i64| {
        let (c, url) = (c.clone(), a.url("/v1/hotels/H1/reservations"));
        let stay = booking(plus(arrival, day), plus(arrival, day + 1));
        async move { send(c.post(&url).json(&stay)).await }
    };
    let in_stream = |stream: &[Published], id: &str| {
        stream.iter().any(|m| {
            m.body["type"] == "reservation.created" && m.body["data"]["reservation_id"] == id
        })
    };
    // Acknowledged: already in the stream, without waiting for it.
    let (status, body, _) = book(0).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap();
    assert!(
        in_stream(&read_stream(&nats, "p1").await, id),
        "acknowledged before published"
    );
    // NATS paused: durable here, but not acknowledged...
    nats.signal("-STOP");
    let mut waiting = tokio::spawn(book(1));
    let early = tokio::time::timeout(Duration::from_millis(500), &mut waiting).await;
    assert!(
        early.is_err(),
        "acknowledged while NATS could not have it: {early:?}"
    );
    // Replication has stalled: the node says it is not ready...
    let ready = |want: u16| {
        let (c, url) = (c.clone(), a.url("/readyz"));
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let (status, _, _) = send(c.get(&url)).await;
                if status == want {
                    return;
                }
                assert!(Instant::now() < deadline, "/readyz never answered {want}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    ready(503).await;
    // ...until the stream has it.
    nats.signal("-CONT");
    let (status, body, _) = waiting.await.unwrap();
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap();
    assert!(
        in_stream(&read_stream(&nats, "p1").await, id),
        "acknowledged before published"
    );
    ready(200).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_whose_journal_is_behind_its_stream_publishes_nothing() {
    let nats = Nats::start().await;
    let dir = tempfile::tempdir().unwrap();
    let node = OneNode::new(dir.path(), &nats, &["H1"]);
    let env = node.env(&[]);
    let c = client();
    let a = Server::start(&dir.path().join("first"), &env);
    // Acknowledged (sync): the hotel, its room type and its room are in the stream.
    hotel_at(&c, &a.url(""), "H1", 1).await;
    a.kill();
    // The same node id on an empty data dir: its journal is behind what its stream holds.
    let a = Server::start(&dir.path().join("second"), &env);
    // Logged during start-up or after it.
    let refusal = |line: &Value| {
        crate::harness::message(line).starts_with("this partition's stream holds later events")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    if !a.startup.iter().any(refusal) {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = a
                .log
                .recv_timeout(left)
                .expect("the publisher did not refuse");
            if refusal(&line) {
                break;
            }
        }
    }
    let (status, body, _) = send(c.get(a.url("/readyz"))).await;
    assert_eq!(status, 503, "{body}");
    let (status, body, _) = send(
        c.put(a.url("/v1/hotels/H1"))
            .json(&json!({"name": "Again", "time_zone": "Asia/Shanghai", "currency": "CNY"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("not_owner")),
        "{body}"
    );
    assert_eq!(
        read_stream(&nats, "p1").await.len(),
        3,
        "nothing published over the old events"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn async_a_stream_resumes_without_gap_after_nats_restarts() {
    let mut nats = Nats::start().await;
    let dir = tempfile::tempdir().unwrap();
    let node = OneNode::new(dir.path(), &nats, &["H1"]);
    let env = node.env(&[("INNKEEP_CLUSTER_REPLICATION", "async")]);
    let c = client();
    let a = Server::start(&dir.path().join("a"), &env);
    hotel_at(&c, &a.url(""), "H1", 3).await;
    let arrival = plus(today("Asia/Shanghai"), 1);
    let mut acked = Vec::new();
    let book_days = |days: std::ops::Range<i64>| {
        let (c, url) = (c.clone(), a.url("/v1/hotels/H1/reservations"));
        async move {
            let mut ids = Vec::new();
            for day in days {
                let stay = booking(plus(arrival, day), plus(arrival, day + 1));
                let (status, body, _) = send(c.post(&url).json(&stay)).await;
                assert_eq!(status, 201, "{body}");
                ids.push(body["id"].as_str().unwrap().to_owned());
            }
            ids
        }
    };
    acked.extend(book_days(0..5).await);
    // NATS killed: bookings go on (async); then it comes back with its store.
    nats.signal("-KILL");
    acked.extend(book_days(5..10).await);
    nats.restart().await;
    acked.extend(book_days(10..15).await);
    let deadline = Instant::now() + Duration::from_secs(30);
    let stream = loop {
        let stream = read_stream(&nats, "p1").await;
        let created: Vec<&str> = stream
            .iter()
            .filter(|m| m.body["type"] == "reservation.created")
            .filter_map(|m| m.body["data"]["reservation_id"].as_str())
            .collect();
        if created.len() >= acked.len() {
            assert_eq!(created, acked, "every booking once, in order");
            break stream;
        }
        assert!(
            Instant::now() < deadline,
            "bookings missing: {} of {}",
            created.len(),
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let seqs: Vec<u64> = stream.iter().map(|m| m.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    // Every event the node committed, not only the bookings: the set-up too, gapless.
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    // The publisher's progress is on /metrics: its cursor reached the last event.
    let last = *seqs.last().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = c
            .get(a.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let cursor = text
            .lines()
            .find(|l| l.starts_with("innkeep_stream_cursor{partition=\"p1\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok());
        let published = text
            .lines()
            .any(|l| l.starts_with("innkeep_stream_published_total{partition=\"p1\"}"));
        if published && cursor == Some(last as f64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stream metrics: cursor {cursor:?}, want {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The lease the partitions' tests below set: long enough that a loaded machine renews in
/// time (every quarter of it), short enough to wait out.
const TEST_LEASE_TTL_MS: u64 = innkeep_http::cluster::DEFAULT_LEASE_TTL_MS;

/// The lease bucket, as the nodes make it, for a test that plays another node.
async fn lease_bucket(nats: &Nats) -> async_nats::jetstream::kv::Store {
    lease_bucket_with(nats, Duration::from_millis(TEST_LEASE_TTL_MS)).await
}

/// [`lease_bucket`] of a cluster whose leases last `ttl`.
async fn lease_bucket_with(nats: &Nats, ttl: Duration) -> async_nats::jetstream::kv::Store {
    let jetstream =
        async_nats::jetstream::new(async_nats::connect(nats.url.as_str()).await.unwrap());
    innkeep::lease::open_bucket(&jetstream, ttl).await.unwrap()
}

/// Who holds `partition`'s lease, if anyone.
async fn lease_holder(
    bucket: &async_nats::jetstream::kv::Store,
    partition: &str,
) -> Option<String> {
    bucket
        .get(partition)
        .await
        .unwrap()
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

/// Waits for the node's log line starting with `prefix` (logged after "ready").
fn wait_logged(a: &Server, prefix: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = a
            .log
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the node never logged {prefix:?}"));
        if crate::harness::message(&line).starts_with(prefix) {
            return line;
        }
    }
}

/// Sends `signal` (`-STOP`, `-CONT`) to the node's process.
fn signal_node(a: &Server, signal: &str) {
    // `kill` from the command line: the crate forbids unsafe code, so no libc::kill.
    let status = Command::new("kill")
        .args([signal, &a.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Waits until every thread of the node is stopped: `kill` returns before they all are.
fn wait_stopped(a: &Server) {
    let tasks = format!("/proc/{}/task", a.child.id());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stopped = std::fs::read_dir(&tasks).unwrap().all(|task| {
            let stat =
                std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap_or_default();
            // The state follows the command name, which is in parentheses.
            let state = stat.rsplit(')').next().unwrap_or_default().trim_start();
            state.starts_with('T') || state.starts_with('t')
        });
        if stopped {
            return;
        }
        assert!(Instant::now() < deadline, "the node did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `/readyz?partition=p1` until it answers `want`.
async fn partition_ready(c: &reqwest::Client, a: &Server, want: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body, _) = send(c.get(a.url("/readyz?partition=p1"))).await;
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz?partition=p1 never answered {want}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_primary_whose_lease_another_node_holds_stands_by_until_it_can_take_it() {
    let nats = Nats::start().await;
    let dir = tempfile::tempdir().unwrap();
    let node = OneNode::with_lease(dir.path(), &nats, &["H1"], TEST_LEASE_TTL_MS);
    // Another node holds p1's lease when `a` starts (it took p1 over while `a` was away),
    // renewing it as a node does.
    let bucket = lease_bucket(&nats).await;
    let revision = bucket.create("p1", "b".into()).await.unwrap();
    let renewing = tokio_util::sync::CancellationToken::new();
    let renewer = tokio::spawn({
        let (bucket, renewing) = (bucket.clone(), renewing.clone());
        async move {
            let mut revision = revision;
            loop {
                tokio::select! {
                    () = renewing.cancelled() => return revision,
                    () = tokio::time::sleep(Duration::from_millis(TEST_LEASE_TTL_MS / 4)) => {}
                }
                revision = bucket.update("p1", "b".into(), revision).await.unwrap();
            }
        }
    });
    let c = client();
    let env = node.env(&[]);
    let mut starting = Starting::spawn(&dir.path().join("a"), &env);
    let base = starting.wait_listening().expect("it listens");
    assert!(starting.wait_logged("standing by"), "it never stood by");
    // Deposed, `a` serves nothing from its own journal: it stands by, not ready.
    for path in ["/readyz", "/readyz?partition=p1"] {
        let (status, body, _) = send(c.get(format!("{base}{path}"))).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (503, Some("not_ready")),
            "{body}"
        );
    }
    let (status, body, _) = send(
        c.put(format!("{base}/v1/hotels/H1"))
            .json(&json!({"name": "H1", "time_zone": "Asia/Shanghai", "currency": "CNY"})),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(lease_holder(&bucket, "p1").await.as_deref(), Some("b"));
    // The other node lets go: `a` takes the lease over and serves.
    renewing.cancel();
    let revision = renewer.await.unwrap();
    bucket
        .delete_expect_revision("p1", Some(revision))
        .await
        .unwrap();
    let a = tokio::task::spawn_blocking(move || starting.wait_ready())
        .await
        .unwrap()
        .expect("it took the partition");
    partition_ready(&c, &a, 200).await;
    assert_eq!(lease_holder(&bucket, "p1").await.as_deref(), Some("a"));
    hotel_at(&c, &a.url(""), "H1", 1).await;
    // Its events are published under the lease, after its takeover message.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stream = loop {
        let stream = read_stream(&nats, "p1").await;
        if stream.len() >= 4 {
            break stream;
        }
        assert!(
            Instant::now() < deadline,
            "set-up not published: {stream:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(stream[0].body["type"], "partition.taken_over");
    assert!(stream.iter().all(|m| m.body["node"] == "a"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_primary_whose_lease_lapsed_serves_and_publishes_nothing_more() {
    let nats = Nats::start().await;
    let dir = tempfile::tempdir().unwrap();
    let node = OneNode::with_lease(dir.path(), &nats, &["H1"], TEST_LEASE_TTL_MS);
    // Synchronous replication (the default): acknowledged once the stream has it.
    let env = node.env(&[("INNKEEP_LIMITS_REQUEST_TIMEOUT_MS", "30000")]);
    let c = client();
    let a = Server::start(&dir.path().join("a"), &env);
    // Ready means its lease was tried for; it holds it.
    let bucket = lease_bucket(&nats).await;
    assert_eq!(lease_holder(&bucket, "p1").await.as_deref(), Some("a"));
    partition_ready(&c, &a, 200).await;
    hotel_at(&c, &a.url(""), "H1", 2).await;
    let arrival = plus(today("Asia/Shanghai"), 1);
    let book = |day: i64| {
        let (c, url) = (c.clone(), a.url("/v1/hotels/H1/reservations"));
        let stay = booking(plus(arrival, day), plus(arrival, day + 1));
        async move { send(c.post(&url).json(&stay)).await }
    };
    let (status, body, _) = book(0).await;
    assert_eq!(status, 201, "{body}");
    // Its lease renewed across several TTLs: still held, still serving.
    for day in 1..4 {
        tokio::time::sleep(Duration::from_millis(TEST_LEASE_TTL_MS / 2)).await;
        let (status, body, _) = book(day).await;
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(lease_holder(&bucket, "p1").await.as_deref(), Some("a"));
    let published = read_stream(&nats, "p1").await;
    // Paused (a stalled VM, a long GC elsewhere): its lease lapses...
    signal_node(&a, "-STOP");
    // ...while a booking reaches it. (A request the node took just before it stopped
    // passed the check then; its acknowledgement waits for the stream, which it never
    // reaches here: 503 `timeout` at its deadline.)
    wait_stopped(&a);
    let waiting = tokio::spawn(book(10));
    let deadline = Instant::now() + Duration::from_secs(30);
    while lease_holder(&bucket, "p1").await.is_some() {
        assert!(
            Instant::now() < deadline,
            "the paused node's lease never lapsed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Another node takes the lease and, as a new owner does before serving, appends to the
    // partition's stream after its last message.
    bucket.create("p1", "b".into()).await.unwrap();
    let jetstream =
        async_nats::jetstream::new(async_nats::connect(nats.url.as_str()).await.unwrap());
    let last_id = published.last().unwrap().id.clone();
    jetstream
        .send_publish(
            innkeep::stream::subject("p1"),
            async_nats::jetstream::message::PublishMessage::build()
                .payload("{\"takeover\": \"b\"}".into())
                .message_id("b.takeover")
                .expected_last_message_id(&last_id),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    signal_node(&a, "-CONT");
    // The booking that waited is refused, not acknowledged; so is every later change, and
    // the proxy's check says so.
    let (status, body, _) = waiting.await.unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("not_owner")),
        "{body}"
    );
    let body = partition_ready(&c, &a, 503).await;
    assert_eq!(body["code"], "not_owner", "{body}");
    let (status, body, _) = book(11).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("not_owner")),
        "{body}"
    );
    let lost = wait_logged(&a, "lost this partition's lease");
    assert_eq!(lost["fields"]["partition"], "p1", "{lost}");
    // Nothing of the old owner's reached the stream after the new owner's message; the
    // lease is still the new owner's.
    let client = async_nats::connect(nats.url.as_str()).await.unwrap();
    let mut p1 = async_nats::jetstream::new(client)
        .get_stream(innkeep::stream::stream_name("p1"))
        .await
        .unwrap();
    let last = p1.info().await.unwrap().state.last_sequence;
    assert_eq!(last, published.len() as u64 + 1);
    let takeover = p1.get_raw_message(last).await.unwrap();
    assert_eq!(&takeover.payload[..], b"{\"takeover\": \"b\"}");
    assert_eq!(lease_holder(&bucket, "p1").await.as_deref(), Some("b"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_whose_partition_stream_ends_with_another_nodes_message_serves_none_of_it() {
    let nats = Nats::start().await;
    let dir = tempfile::tempdir().unwrap();
    let node = OneNode::with_lease(dir.path(), &nats, &["H1"], TEST_LEASE_TTL_MS);
    // Node `b` owned p1 last: the stream ends with its message.
    let jetstream =
        async_nats::jetstream::new(async_nats::connect(nats.url.as_str()).await.unwrap());
    jetstream
        .get_or_create_stream(async_nats::jetstream::stream::Config {
            name: innkeep::stream::stream_name("p1"),
            subjects: vec![innkeep::stream::subject("p1")],
            duplicate_window: innkeep::stream::DUPLICATE_WINDOW,
            ..Default::default()
        })
        .await
        .unwrap();
    jetstream
        .send_publish(
            innkeep::stream::subject("p1"),
            async_nats::jetstream::message::PublishMessage::build()
                .payload("{\"from\": \"b\"}".into())
                .header("Innkeep-Node", "b")
                .header("Innkeep-Seq", "7")
                .message_id("b.7"),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    // Acknowledged without the stream (async): serving p1 here would sell from a history
    // that is not the partition's.
    let env = node.env(&[("INNKEEP_CLUSTER_REPLICATION", "async")]);
    let c = client();
    let a = Server::start(&dir.path().join("a"), &env);
    let body = partition_ready(&c, &a, 503).await;
    assert_eq!(body["code"], "not_owner", "{body}");
    let (status, body, _) = send(
        c.put(a.url("/v1/hotels/H1"))
            .json(&json!({"name": "H1", "time_zone": "Asia/Shanghai", "currency": "CNY"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("not_owner")),
        "{body}"
    );
    let logged = |line: &Value| {
        crate::harness::message(line).starts_with("this partition's stream ends with another")
    };
    if !a.startup.iter().any(logged) {
        wait_logged(&a, "this partition's stream ends with another");
    }
    // It let its lease go, and wrote nothing to the stream.
    let bucket = lease_bucket(&nats).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while lease_holder(&bucket, "p1").await.is_some() {
        assert!(Instant::now() < deadline, "the fenced node kept its lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(read_stream_len(&nats, "p1").await, 1);
}

/// How many messages `partition`'s stream holds.
async fn read_stream_len(nats: &Nats, partition: &str) -> u64 {
    let client = async_nats::connect(nats.url.as_str()).await.unwrap();
    let mut stream = async_nats::jetstream::new(client)
        .get_stream(innkeep::stream::stream_name(partition))
        .await
        .unwrap();
    stream.info().await.unwrap().state.messages
}

#[tokio::test(flavor = "multi_thread")]
async fn a_primary_cut_off_from_nats_stops_serving_its_partition_and_serves_again_once_renewed() {
    let nats = Nats::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The node stops serving at three quarters of the lease after its last renewal, and
    // NATS is resumed right then: a quarter (2 s) before NATS could forget the key.
    let node = OneNode::with_lease(dir.path(), &nats, &["H1"], 8_000);
    let env = node.env(&[("INNKEEP_CLUSTER_REPLICATION", "async")]);
    let c = client();
    let a = Server::start(&dir.path().join("a"), &env);
    hotel_at(&c, &a.url(""), "H1", 2).await;
    let arrival = plus(today("Asia/Shanghai"), 1);
    let book = |day: i64| {
        let (c, url) = (c.clone(), a.url("/v1/hotels/H1/reservations"));
        let stay = booking(plus(arrival, day), plus(arrival, day + 1));
        async move { send(c.post(&url).json(&stay)).await }
    };
    let (status, body, _) = book(0).await;
    assert_eq!(status, 201, "{body}");
    // NATS unreachable: once the lease's validity ends here, p1 is not served...
    nats.signal("-STOP");
    let body = partition_ready(&c, &a, 503).await;
    assert_eq!(body["code"], "not_owner", "{body}");
    let (status, body, _) = book(1).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("not_owner")),
        "{body}"
    );
    // ...until a renewal gets through: nobody else took the lease, so the node serves
    // again, with nothing lost.
    nats.signal("-CONT");
    partition_ready(&c, &a, 200).await;
    let (status, body, _) = book(1).await;
    assert_eq!(status, 201, "{body}");
    wait_logged(&a, "this partition's lease is renewed");
    let bucket = lease_bucket_with(&nats, Duration::from_millis(8_000)).await;
    assert_eq!(lease_holder(&bucket, "p1").await.as_deref(), Some("a"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_takes_over_a_dead_primarys_partition_with_every_acknowledged_booking() {
    let nats = Nats::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pair = Pair::new(dir.path());
    let (env_a, env_c) = (pair.env(&nats, "a"), pair.env(&nats, "c"));
    let c = client();
    // Synchronous replication (the default): every acknowledged booking is in the stream.
    let a = Server::start(&dir.path().join("a"), &env_a);
    // The standby answers, but serves nothing while it follows the stream.
    let mut standby = Starting::spawn(&dir.path().join("c"), &env_c);
    let c_base = standby.wait_listening().expect("the standby listens");
    let (status, body, _) = send(c.get(format!("{c_base}/readyz?partition=p1"))).await;
    assert_eq!(status, 503, "{body}");
    hotel_at(&c, &a.url(""), "H1", 2).await;
    let arrival = plus(today("Asia/Shanghai"), 1);
    let book = |base: String, day: i64| {
        let c = c.clone();
        let stay = booking(plus(arrival, day), plus(arrival, day + 1));
        async move {
            send(
                c.post(format!("{base}/v1/hotels/H1/reservations"))
                    .json(&stay),
            )
            .await
        }
    };
    let mut acked = Vec::new();
    // Both rooms on the first night, one on the next two.
    for day in [0, 0, 1, 2] {
        let (status, body, _) = book(a.url(""), day).await;
        assert_eq!(status, 201, "{body}");
        acked.push(body["id"].as_str().unwrap().to_owned());
    }
    // The primary dies; the standby takes its lease once it lapses, reads the stream to its
    // end and serves.
    a.kill();
    let died = Instant::now();
    let c_node = tokio::task::spawn_blocking(move || standby.wait_ready())
        .await
        .unwrap()
        .expect("the standby took over");
    eprintln!("writes resumed {:?} after the primary died", died.elapsed());
    let (status, body, _) = send(c.get(format!("{c_base}/readyz?partition=p1"))).await;
    assert_eq!(status, 200, "{body}");
    // Every acknowledged booking is there...
    for id in &acked {
        let (status, body, _) =
            send(c.get(format!("{c_base}/v1/hotels/H1/reservations/{id}"))).await;
        assert_eq!(status, 200, "{id}: {body}");
    }
    // ...no night is sold twice...
    let (status, body, _) = book(c_base.clone(), 0).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("sold_out")),
        "{body}"
    );
    // ...and it sells what is left, publishing after its takeover message.
    let (status, body, _) = book(c_base.clone(), 1).await;
    assert_eq!(status, 201, "{body}");
    let new_id = body["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let stream = loop {
        let stream = read_stream(&nats, "p1").await;
        if stream
            .last()
            .is_some_and(|m| m.body["data"]["reservation_id"] == new_id.as_str())
        {
            break stream;
        }
        assert!(
            Instant::now() < deadline,
            "the new owner's booking never reached the stream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let takeover = stream
        .iter()
        .position(|m| m.body["type"] == "partition.taken_over")
        .expect("a takeover message");
    assert_eq!(stream[takeover].body["node"], "c");
    assert!(stream[..takeover].iter().all(|m| m.body["node"] == "a"));
    assert!(stream[takeover..].iter().all(|m| m.body["node"] == "c"));
    // Every committed event once, in order: the old primary's journal from its first
    // event, then the new owner's right after the events it followed.
    let seqs = |part: &[Published]| part.iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(&stream[..takeover]),
        (1..=takeover as u64).collect::<Vec<_>>()
    );
    let followed = stream[takeover].seq;
    assert_eq!(
        followed, takeover as u64,
        "the new owner followed every event"
    );
    assert_eq!(
        seqs(&stream[takeover + 1..]),
        (followed + 1..=followed + (stream.len() - takeover - 1) as u64).collect::<Vec<_>>()
    );
    // The new owner crashes and restarts: it serves again, with every booking (from its
    // journal while its lease holds, else from the stream after taking the lease again).
    c_node.kill();
    let c_node = Server::start(&dir.path().join("c"), &env_c);
    partition_ready(&c, &c_node, 200).await;
    for id in acked.iter().chain([&new_id]) {
        let (status, body, _) =
            send(c.get(c_node.url(&format!("/v1/hotels/H1/reservations/{id}")))).await;
        assert_eq!(status, 200, "{id}: {body}");
    }
    // The old primary restarts: deposed, it moves its own data aside and stands by...
    let mut rejoined = Starting::spawn(&dir.path().join("a"), &env_a);
    let a_base = rejoined.wait_listening().expect("the old primary listens");
    let (status, body, _) = send(c.get(format!("{a_base}/readyz?partition=p1"))).await;
    assert_eq!(status, 503, "{body}");
    let retired = || {
        std::fs::read_dir(dir.path().join("a")).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("retired-")
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !retired() {
        assert!(
            Instant::now() < deadline,
            "the deposed primary kept its data in place"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...and takes the partition back, with every booking, when its new owner dies.
    c_node.kill();
    let a_node = tokio::task::spawn_blocking(move || rejoined.wait_ready())
        .await
        .unwrap()
        .expect("the old primary took the partition back");
    for id in acked.iter().chain([&new_id]) {
        let (status, body, _) =
            send(c.get(a_node.url(&format!("/v1/hotels/H1/reservations/{id}")))).await;
        assert_eq!(status, 200, "{id}: {body}");
    }
    let (status, body, _) = book(a_node.url(""), 1).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("sold_out")),
        "{body}"
    );
}

/// Node `a`, primary of partition `p1` (hotel `H1`), and node `c`, its standby.
struct Pair {
    file: String,
    a_listen: String,
    c_listen: String,
}

impl Pair {
    fn new(dir: &Path) -> Pair {
        let (a_listen, c_listen) = (
            format!("127.0.0.1:{}", free_port()),
            format!("127.0.0.1:{}", free_port()),
        );
        let file = dir.join("cluster.toml");
        std::fs::write(
            &file,
            format!(
                "lease_ttl_ms = {TEST_LEASE_TTL_MS}\n\
                 [[nodes]]\nid = \"a\"\naddress = \"{a_listen}\"\n\
                 [[nodes]]\nid = \"c\"\naddress = \"{c_listen}\"\n\
                 [[partitions]]\nid = \"p1\"\nprimary = \"a\"\nstandbys = [\"c\"]\nhotels = [\"H1\"]\n"
            ),
        )
        .unwrap();
        Pair {
            file: file.to_str().unwrap().to_owned(),
            a_listen,
            c_listen,
        }
    }

    /// The environment of node `id` (`a` or `c`).
    fn env<'a>(&'a self, nats: &'a Nats, id: &'static str) -> [(&'a str, &'a str); 4] {
        let listen = if id == "a" {
            &self.a_listen
        } else {
            &self.c_listen
        };
        [
            ("INNKEEP_CLUSTER_NODE_ID", id),
            ("INNKEEP_CLUSTER_FILE", self.file.as_str()),
            ("INNKEEP_CLUSTER_NATS_URL", nats.url.as_str()),
            ("INNKEEP_LISTEN", listen.as_str()),
        ]
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_primary_whose_standby_took_over_writes_nothing_more() {
    let nats = Nats::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pair = Pair::new(dir.path());
    let c = client();
    let a = Server::start(&dir.path().join("a"), &pair.env(&nats, "a"));
    let standby = Starting::spawn(&dir.path().join("c"), &pair.env(&nats, "c"));
    hotel_at(&c, &a.url(""), "H1", 2).await;
    let arrival = plus(today("Asia/Shanghai"), 1);
    let book = |base: String, day: i64| {
        let c = c.clone();
        let stay = booking(plus(arrival, day), plus(arrival, day + 1));
        async move {
            send(
                c.post(format!("{base}/v1/hotels/H1/reservations"))
                    .json(&stay),
            )
            .await
        }
    };
    let (status, body, _) = book(a.url(""), 0).await;
    assert_eq!(status, 201, "{body}");
    let acked = body["id"].as_str().unwrap().to_owned();
    // The primary stalls; its standby takes the partition over meanwhile.
    signal_node(&a, "-STOP");
    wait_stopped(&a);
    let waiting = tokio::spawn(book(a.url(""), 1));
    let c_node = tokio::task::spawn_blocking(move || standby.wait_ready())
        .await
        .unwrap()
        .expect("the standby took over");
    let (status, body, _) = send(c.get(c_node.url("/readyz?partition=p1"))).await;
    assert_eq!(status, 200, "{body}");
    // The old primary runs again: the booking that waited, and every later one, is
    // refused; it says it lost the lease.
    signal_node(&a, "-CONT");
    let (status, body, _) = waiting.await.unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("not_owner")),
        "{body}"
    );
    let (status, body, _) = book(a.url(""), 2).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("not_owner")),
        "{body}"
    );
    wait_logged(&a, "lost this partition's lease");
    // The new owner has the acknowledged booking and sells on.
    let (status, body, _) =
        send(c.get(c_node.url(&format!("/v1/hotels/H1/reservations/{acked}")))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = book(c_node.url(""), 1).await;
    assert_eq!(status, 201, "{body}");
    // Nothing of the old primary's reached the stream after the takeover.
    let stream = read_stream(&nats, "p1").await;
    let takeover = stream
        .iter()
        .position(|m| m.body["type"] == "partition.taken_over")
        .expect("a takeover message");
    assert!(stream[takeover..].iter().all(|m| m.body["node"] == "c"));
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_behind_haproxy_lose_no_acknowledged_booking_when_a_primary_dies_under_load() {
    let nats = Nats::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (port_a, port_b, port_c, port_proxy) = (free_port(), free_port(), free_port(), free_port());
    let addr = |port: u16| format!("127.0.0.1:{port}");
    let (addr_a, addr_b, addr_c) = (addr(port_a), addr(port_b), addr(port_c));
    // `a` serves H1 and `b` H2; `c` stands by for both.
    let cluster_file = dir.path().join("cluster.toml");
    std::fs::write(
        &cluster_file,
        format!(
            "lease_ttl_ms = {TEST_LEASE_TTL_MS}\n\
             [[nodes]]\nid = \"a\"\naddress = \"{addr_a}\"\n\
             [[nodes]]\nid = \"b\"\naddress = \"{addr_b}\"\n\
             [[nodes]]\nid = \"c\"\naddress = \"{addr_c}\"\n\
             [[partitions]]\nid = \"p1\"\nprimary = \"a\"\nstandbys = [\"c\"]\nhotels = [\"H1\"]\n\
             [[partitions]]\nid = \"p2\"\nprimary = \"b\"\nstandbys = [\"c\"]\nhotels = [\"H2\"]\n"
        ),
    )
    .unwrap();
    let file = cluster_file.to_str().unwrap();
    let env = |id: &'static str, listen: &'static str| {
        [
            ("INNKEEP_LISTEN", listen),
            ("INNKEEP_CLUSTER_NODE_ID", id),
            ("INNKEEP_CLUSTER_FILE", file),
            ("INNKEEP_CLUSTER_NATS_URL", nats.url.as_str()),
        ]
    };
    let (addr_a, addr_b, addr_c): (&'static str, &'static str, &'static str) =
        (addr_a.leak(), addr_b.leak(), addr_c.leak());
    let a = Server::start(&dir.path().join("a"), &env("a", addr_a));
    let b = Server::start(&dir.path().join("b"), &env("b", addr_b));
    let mut standby = Starting::spawn(&dir.path().join("c"), &env("c", addr_c));
    assert!(standby.wait_logged("standing by"), "c never stood by");
    let generated = Command::new(env!("CARGO_BIN_EXE_innkeep"))
        .args(["cluster", "haproxy-config", "--file", file, "--bind"])
        .arg(format!("127.0.0.1:{port_proxy}"))
        .output()
        .unwrap();
    assert!(generated.status.success(), "{generated:?}");
    let config = dir.path().join("haproxy.cfg");
    std::fs::write(&config, &generated.stdout).unwrap();
    let proxy = Proxy::start(&config, port_proxy).await;
    let c = client();
    const ROOMS: usize = 3;
    hotel_at(&c, &proxy.base, "H1", ROOMS).await;
    hotel_at(&c, &proxy.base, "H2", ROOMS).await;

    // Clients book through the proxy in both hotels, over more nights than rooms can take,
    // until told to stop; each keeps what was acknowledged and how many H2 bookings failed.
    let stop = tokio_util::sync::CancellationToken::new();
    let arrival = plus(today("Asia/Shanghai"), 1);
    let clients: Vec<_> = (0..6u64)
        .map(|k| {
            let (c, base, stop) = (c.clone(), proxy.base.clone(), stop.clone());
            let hotel = if k % 2 == 0 { "H1" } else { "H2" };
            tokio::spawn(async move {
                let (mut acked, mut h2_failed) = (Vec::new(), 0);
                let mut rng = crate::harness::Rng(k * 7919 + 1);
                while !stop.is_cancelled() {
                    let night = rng.below(20) as i64;
                    let stay = booking(plus(arrival, night), plus(arrival, night + 1));
                    let url = format!("{base}/v1/hotels/{hotel}/reservations");
                    match try_send(c.post(&url).json(&stay)).await {
                        Ok((201, body, _)) => acked.push(body["id"].as_str().unwrap().to_owned()),
                        // Full that night, or (H1, while its primary is gone) not served.
                        Ok((409, _, _)) => {}
                        _ if hotel == "H2" => h2_failed += 1,
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
                (hotel, acked, h2_failed)
            })
        })
        .collect();
    // Some load, then `a` dies; its partition moves to `c`, and H1 sells again through the
    // proxy.
    tokio::time::sleep(Duration::from_secs(1)).await;
    a.kill();
    let c_node = tokio::task::spawn_blocking(move || standby.wait_ready())
        .await
        .unwrap()
        .expect("c took p1 over");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, _, _) = send(c.get(proxy.url("/readyz?partition=p1"))).await;
        let direct = send(c.get(c_node.url("/readyz?partition=p1"))).await.0;
        if status == 200 && direct == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "H1 never served again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let mut by_hotel: std::collections::HashMap<&str, Vec<String>> = Default::default();
    for task in clients {
        let (hotel, acked, h2_failed) = task.await.unwrap();
        // The other partition never stopped.
        assert_eq!(h2_failed, 0, "H2 bookings failed while p1 moved");
        by_hotel.entry(hotel).or_default().extend(acked);
    }
    // Every acknowledged booking is there, through the proxy, and no room-night is sold
    // twice.
    for (hotel, ids) in &by_hotel {
        assert!(!ids.is_empty(), "no booking in {hotel}");
        let mut sold = std::collections::HashSet::new();
        for id in ids {
            let (status, body, _) =
                send(c.get(proxy.url(&format!("/v1/hotels/{hotel}/reservations/{id}")))).await;
            assert_eq!(status, 200, "{hotel} {id}: {body}");
            let night = (body["room"].to_string(), body["arrival"].to_string());
            assert!(sold.insert(night.clone()), "{hotel}: {night:?} sold twice");
        }
    }
    drop((b, c_node, proxy));
}
