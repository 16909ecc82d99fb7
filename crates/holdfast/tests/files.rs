//! The agent's `/files` endpoints and LIST_FILES / READ_FILE end to end: a real agent, a
//! container writing to its sandbox, and reads of what it wrote, confined to the
//! sandboxes. Needs root and a writable cgroup2, and says so when it skips.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use support::cluster::{command_task, Master, Scheduler};
use support::*;

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One `GET` with `Connection: close`; the body is taken as it came (the agent answers
/// these with a Content-Length, which is checked).
fn get(port: u16, target: &str) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let reply = Reply {
        status,
        headers,
        body,
    };
    let length = reply
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok());
    assert_eq!(
        length,
        Some(reply.body.len()),
        "GET {target}: Content-Length"
    );
    reply
}

/// A query value as a client encodes it.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'-' | b'_') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn a_sandbox_is_browsed_read_and_downloaded_and_nothing_outside_it() {
    let Some(mount) = cgroup2() else { return };
    let agent = Agent::start(&mount, &[]);
    let port = agent.port;
    // A task that plants links out of its sandbox, then writes more than one read
    // returns, and stays.
    agent.launch(
        "files1",
        "ln -s /etc/passwd passwd; ln -s /etc etc; mkdir sub; echo note > sub/note.txt; \
         echo err-line >&2; seq 1 20000; exec sleep 1000",
    );
    let expected: String = (1..=20000).map(|i| format!("{i}\n")).collect();
    let sandbox = agent.work_dir().join("containers/files1");
    let stdout = p(&sandbox.join("stdout"));

    // The web UI's size probe, until the task has written everything.
    wait_until("the task's output", Duration::from_secs(20), || {
        let r = get(
            port,
            &format!("/files/read?path={}&offset=-1", enc(&stdout)),
        );
        r.status == 200 && r.json()["offset"] == expected.len()
    });
    let probe = get(
        port,
        &format!("/files/read?path={}&offset=-1", enc(&stdout)),
    );
    assert_eq!(probe.json(), json!({"data": "", "offset": expected.len()}));
    assert_eq!(probe.header("content-type"), Some("application/json"));

    // Browse.
    let listing = get(port, &format!("/files/browse?path={}", enc(&p(&sandbox))));
    assert_eq!(listing.status, 200, "{}", listing.text());
    let entries = listing.json();
    let entries = entries.as_array().expect("array");
    let paths: Vec<&str> = entries.iter().filter_map(|e| e["path"].as_str()).collect();
    for name in ["etc", "passwd", "stderr", "stdout", "sub"] {
        assert!(
            paths.contains(&p(&sandbox.join(name)).as_str()),
            "{name} in {paths:?}"
        );
    }
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "sorted by path");
    let entry = |name: &str| {
        let want = p(&sandbox.join(name));
        entries
            .iter()
            .find(|e| e["path"] == want.as_str())
            .cloned()
            .expect("entry")
    };
    let out = entry("stdout");
    assert_eq!(out["size"], expected.len());
    assert_eq!(out["uid"], "root");
    assert_eq!(out["gid"], "root");
    assert_eq!(out["nlink"], 1);
    assert!(out["mtime"].is_f64(), "{out}");
    assert!(
        out["mode"].as_str().is_some_and(|m| m.starts_with("-rw")),
        "{out}"
    );
    assert!(entry("sub")["mode"]
        .as_str()
        .is_some_and(|m| m.starts_with('d')));
    // The planted links show as links, not as what they point at.
    assert!(entry("passwd")["mode"]
        .as_str()
        .is_some_and(|m| m.starts_with('l')));
    assert_eq!(entry("passwd")["size"], "/etc/passwd".len());
    let jsonp = get(
        port,
        &format!("/files/browse?path={}&jsonp=cb", enc(&p(&sandbox))),
    );
    assert_eq!(jsonp.header("content-type"), Some("text/javascript"));
    assert!(jsonp.text().starts_with("cb([{"), "{}", jsonp.text());

    // Read, by offset and length, as the fixtures show.
    let read = |offset: &str, length: Option<u64>| {
        let mut q = format!("/files/read?path={}&offset={offset}", enc(&stdout));
        if let Some(l) = length {
            q.push_str(&format!("&length={l}"));
        }
        get(port, &q)
    };
    assert_eq!(
        read("0", Some(10)).json(),
        json!({"data": "1\n2\n3\n4\n5\n", "offset": 0})
    );
    assert_eq!(
        read("4", Some(5)).json(),
        json!({"data": "3\n4\n5", "offset": 4})
    );
    assert_eq!(
        read(&expected.len().to_string(), None).json(),
        json!({"data": "", "offset": expected.len()})
    );
    let first = read("0", None).json();
    let capped = first["data"].as_str().expect("data");
    assert_eq!(capped.len(), 64 * 1024, "one read returns at most 64 KiB");
    assert_eq!(capped, &expected[..capped.len()]);
    // A client reads on from where each answer ended, as `tail -f` in the UI does.
    let mut whole = String::new();
    loop {
        let r = read(&whole.len().to_string(), Some(50_000)).json();
        let data = r["data"].as_str().expect("data");
        if data.is_empty() {
            break;
        }
        whole.push_str(data);
    }
    assert_eq!(whole, expected);

    let bad = read("-2", None);
    assert_eq!(bad.status, 400);
    assert!(
        bad.text().contains("Negative offset provided: -2"),
        "{}",
        bad.text()
    );
    assert_eq!(read("x", None).status, 400);
    let missing = get(
        port,
        &format!(
            "/files/read?path={}&offset=0",
            enc(&p(&sandbox.join("nope")))
        ),
    );
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body, b"");
    assert_eq!(
        missing.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let dir = get(
        port,
        &format!("/files/read?path={}&offset=0", enc(&p(&sandbox))),
    );
    assert_eq!(
        (dir.status, dir.text().as_str()),
        (400, "Cannot read a directory")
    );
    let stderr = get(
        port,
        &format!(
            "/files/read?path={}&offset=0",
            enc(&p(&sandbox.join("stderr")))
        ),
    );
    assert_eq!(stderr.json()["data"], "err-line\n");

    // Download.
    let d = get(port, &format!("/files/download?path={}", enc(&stdout)));
    assert_eq!(d.status, 200);
    assert_eq!(d.header("content-type"), Some("application/octet-stream"));
    assert_eq!(
        d.header("content-disposition"),
        Some("attachment; filename=stdout")
    );
    assert_eq!(d.body, expected.as_bytes());
    let note = get(
        port,
        &format!(
            "/files/download?path={}",
            enc(&p(&sandbox.join("sub/note.txt")))
        ),
    );
    assert_eq!(note.header("content-type"), Some("text/plain"));
    assert_eq!(note.body, b"note\n");

    // Nothing outside the sandboxes: not directly, not through the planted links, not
    // by climbing out, however it is spelled.
    for endpoint in ["browse", "read", "download"] {
        let ask = |path: &str| get(port, &format!("/files/{endpoint}?path={path}&offset=0"));
        let direct = ask(&enc("/etc/passwd"));
        assert_eq!(direct.status, 403, "{endpoint} /etc/passwd");
        assert!(
            direct.text().contains("not in a sandbox"),
            "{}",
            direct.text()
        );
        for link in ["passwd", "etc/passwd"] {
            let r = ask(&enc(&p(&sandbox.join(link))));
            assert_eq!(
                (r.status, r.body.as_slice()),
                (404, &b""[..]),
                "{endpoint} {link}"
            );
        }
        let meta = format!("{}/../../meta", p(&sandbox));
        assert_eq!(ask(&enc(&meta)).status, 403, "{endpoint} {meta}");
        let dotted = format!("{}/%2e%2e/%2E%2E/meta", enc(&p(&sandbox)));
        assert_eq!(ask(&dotted).status, 403, "{endpoint} {dotted}");
        assert!(!ask(&enc(&p(&sandbox.join("passwd"))))
            .text()
            .contains("root:"));
    }

    // What is served.
    let debug = get(port, "/files/debug").json();
    let root = p(&agent.work_dir().join("containers"));
    assert!(debug[&root].is_string(), "{debug}");

    // A nested container's sandbox is in its parent's.
    let (status, body) = agent.call(launch_body("n1", Some("files1"), "echo from-nested"));
    assert_eq!(status, 200, "{body}");
    agent.wait(nested("files1", "n1"));
    let n = get(
        port,
        &format!(
            "/files/read?path={}&offset=0",
            enc(&p(&sandbox.join("containers/n1/stdout")))
        ),
    );
    assert_eq!(n.json()["data"], "from-nested\n");

    // The operator API's LIST_FILES and READ_FILE, with the same confinement.
    let (status, body) =
        agent.call(json!({"type": "LIST_FILES", "list_files": {"path": p(&sandbox)}}));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["type"], "LIST_FILES");
    let infos = v["list_files"]["file_infos"]
        .as_array()
        .expect("file_infos");
    let info = infos
        .iter()
        .find(|f| f["path"] == stdout.as_str())
        .expect("stdout listed");
    assert_eq!(info["size"], expected.len());
    assert_eq!(info["mode"].as_u64().map(|m| m & 0o170000), Some(0o100000));
    assert!(info["mtime"]["nanoseconds"].as_i64().is_some_and(|n| n > 0));
    let (status, body) = agent.call(
        json!({"type": "READ_FILE", "read_file": {"path": stdout, "offset": 0, "length": 10}}),
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["read_file"]["size"], expected.len());
    let data = holdfast_api::base64::decode(v["read_file"]["data"].as_str().expect("data"))
        .expect("base64");
    assert_eq!(data, b"1\n2\n3\n4\n5\n");
    let (status, _) =
        agent.call(json!({"type": "READ_FILE", "read_file": {"path": "/etc/passwd", "offset": 0}}));
    assert_eq!(status, 403);
    let (status, body) = agent.call(json!({"type": "READ_FILE", "read_file": {"path": p(&sandbox.join("passwd")), "offset": 0}}));
    assert_eq!((status, body.as_str()), (404, ""));

    assert_eq!(agent.kill(cid("files1"), None).0, 200);
    assert_eq!(
        agent.wait(cid("files1"))["wait_container"]["exit_status"],
        9
    );
}

#[test]
fn an_executors_latest_run_is_served_under_its_mesos_name() {
    let Some(mount) = cgroup2() else { return };
    let master = Master::start(&[]);
    let master_flag = format!("--master={}", master.addr());
    let agent = Agent::start(&mount, &[&master_flag, "--resources=cpus:1;mem:256"]);
    let mut s = Scheduler::subscribe(master.port, "files", &[]);
    let offers = s.offers();
    s.launch(&offers[0], vec![command_task("t1", "echo from-task", 0.1)]);
    loop {
        let st = s.next_update();
        assert_eq!(st["task_id"]["value"], "t1");
        match st["state"].as_str() {
            Some("TASK_FINISHED") => break,
            Some("TASK_STARTING" | "TASK_RUNNING") => {}
            other => panic!("t1 ended {other:?}: {st}"),
        }
    }
    let latest = format!("/frameworks/{}/executors/t1/runs/latest", s.id());

    let debug = get(agent.port, "/files/debug").json();
    let dir = debug[&latest]
        .as_str()
        .unwrap_or_else(|| panic!("{latest} in {debug}"));
    assert!(
        Path::new(dir).starts_with(std::fs::canonicalize(agent.work_dir()).expect("work dir")),
        "{dir}"
    );
    let listing = get(agent.port, &format!("/files/browse?path={}", enc(&latest))).json();
    let paths: Vec<&str> = listing
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert!(
        paths.contains(&format!("{latest}/stdout").as_str()),
        "{paths:?}"
    );
    let r = get(
        agent.port,
        &format!(
            "/files/read?path={}&offset=0",
            enc(&format!("{latest}/stdout"))
        ),
    );
    assert_eq!(r.json()["data"], "from-task\n");
    let up = format!("{latest}/../../../../../../meta");
    assert_eq!(
        get(
            agent.port,
            &format!("/files/read?path={}&offset=0", enc(&up))
        )
        .status,
        403
    );
    let other = format!("/frameworks/{}/executors/nope/runs/latest/stdout", s.id());
    assert_eq!(
        get(
            agent.port,
            &format!("/files/read?path={}&offset=0", enc(&other))
        )
        .status,
        403
    );
}
