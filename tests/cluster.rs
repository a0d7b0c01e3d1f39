//! Two nodes partitioned by hotel behind HAProxy, whose configuration comes from the same
//! cluster file the nodes read (`innkeep cluster haproxy-config`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{booking, client, plus, send, today, Server, SECRET};
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
             [[partitions]]\nid = \"p1\"\nprimary = \"a\"\nstandbys = [\"b\"]\nhotels = [\"H1\"]\n\
             [[partitions]]\nid = \"p2\"\nprimary = \"b\"\nstandbys = [\"a\"]\nhotels = [\"H2\"]\n"
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
